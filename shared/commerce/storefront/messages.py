"""The few sentences the functions themselves show to storefront visitors.

The static pages take every string from `site/locales/<locale>.json`; these are the
same sentences for answers the functions render (the no-JavaScript re-send page and
its errors). A test keeps both in step.
"""

from __future__ import annotations

SUPPORTED_LOCALES = ("en", "de")
DEFAULT_LOCALE = "en"

MESSAGES: dict[str, dict[str, str]] = {
    "en": {
        "resend_title": "Re-send my download links",
        "resend_neutral": (
            "Thank you. If this address has bought {product}, an e-mail with fresh download "
            "links and the license key is on its way. It can take a few minutes; please "
            "check your spam folder too."
        ),
        "resend_rate_limited": "Too many requests. Please wait a while and try again.",
        "resend_invalid": "Please enter a valid e-mail address.",
        "resend_unavailable": "The service is temporarily unavailable. Please try again later.",
        "resend_back": "Back to the shop",
    },
    "de": {
        "resend_title": "Download-Links erneut senden",
        "resend_neutral": (
            "Danke. Wenn mit dieser Adresse {product} gekauft wurde, ist eine E-Mail mit neuen "
            "Download-Links und dem Lizenzschlüssel unterwegs. Das kann einige Minuten "
            "dauern; bitte sehen Sie auch im Spam-Ordner nach."
        ),
        "resend_rate_limited": (
            "Zu viele Anfragen. Bitte warten Sie eine Weile und versuchen Sie es erneut."
        ),
        "resend_invalid": "Bitte geben Sie eine gültige E-Mail-Adresse ein.",
        "resend_unavailable": (
            "Der Dienst ist vorübergehend nicht erreichbar. Bitte versuchen Sie es später erneut."
        ),
        "resend_back": "Zurück zum Shop",
    },
}


def supported_locale(value: str | None) -> str:
    """`de-DE` -> `de`; anything unknown -> the default locale."""
    short = (value or "").split("-", 1)[0].strip().lower()
    return short if short in SUPPORTED_LOCALES else DEFAULT_LOCALE


def message(locale: str, key: str, **values: str) -> str:
    """The sentence `key` in `locale`, with `{placeholders}` filled from `values`."""
    return MESSAGES[supported_locale(locale)][key].format(**values)
