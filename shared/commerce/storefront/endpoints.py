"""Small HTML answers of the storefront functions for visitors without JavaScript.

A plain form post (no JavaScript) navigates to the function's URL, so the function
answers a minimal page in the visitor's language with the same sentence the script
would show inline, and a link back to the storefront.
"""

from __future__ import annotations

from html import escape

import flask

from commerce.errors import CommerceError, RateLimited
from commerce.settings import Settings
from commerce.storefront.messages import DEFAULT_LOCALE, message, supported_locale

_PAGE = """<!doctype html>
<html lang="{lang}">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="robots" content="noindex">
<title>{title} · {product}</title>
<style>
body{{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;max-width:40rem;
margin:3rem auto;padding:0 1rem;line-height:1.6;color:#1a1a1a;background:#fff}}
a{{color:#0b4fa8}}
</style>
</head>
<body>
<main>
<h1>{title}</h1>
<p role="status">{text}</p>
<p><a href="{back_url}">{back}</a></p>
</main>
</body>
</html>
"""


def storefront_page_url(settings: Settings, locale: str, page: str) -> str:
    base = str(settings.storefront_url).rstrip("/")
    prefix = "" if locale == DEFAULT_LOCALE else f"/{locale}"
    return f"{base}{prefix}/{page}"


def resend_page(settings: Settings, locale: str, key: str, status: int) -> flask.Response:
    locale = supported_locale(locale)
    html = _PAGE.format(
        lang=locale,
        title=escape(message(locale, "resend_title")),
        product=escape(settings.product_name),
        text=escape(message(locale, key, product=settings.product_name)),
        back_url=escape(storefront_page_url(settings, locale, "resend.html"), quote=True),
        back=escape(message(locale, "resend_back")),
    )
    response = flask.Response(html, status=status, mimetype="text/html")
    response.headers["Cache-Control"] = "no-store"
    return response


def resend_error_page(settings: Settings, locale: str, error: CommerceError) -> flask.Response:
    """The HTML form of an error: the same status and headers, a sentence instead of JSON."""
    if isinstance(error, RateLimited):
        key = "resend_rate_limited"
    elif error.status < 500:
        key = "resend_invalid"
    else:
        key = "resend_unavailable"
    response = resend_page(settings, locale, key, error.status)
    for name, value in error.headers.items():
        response.headers[name] = value
    return response
