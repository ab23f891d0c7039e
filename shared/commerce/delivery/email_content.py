"""What the fulfillment e-mail says, rendered from Jinja2 templates per locale.

The worker gathers ids from the job, re-derives the license key and the download
token (neither is stored or queued in plaintext), and renders HTML (autoescaped)
and plain text from `commerce/templates/email/<locale>/`, falling back to English.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from commerce.domain.releases import Release

if TYPE_CHECKING:
    import jinja2

TEMPLATE_ROOT = Path(__file__).resolve().parent.parent / "templates" / "email"
LOCALES = ("en", "de")
DEFAULT_LOCALE = "en"
_ZERO_DECIMAL = {"BIF", "CLP", "DJF", "GNF", "JPY", "KMF", "KRW", "MGA", "PYG", "RWF", "UGX",
                 "VND", "VUV", "XAF", "XOF", "XPF"}  # fmt: skip


def pick_locale(requested: str | None) -> str:
    language = (requested or "").replace("_", "-").split("-", 1)[0].lower()
    return language if language in LOCALES else DEFAULT_LOCALE


def format_amount(minor_units: int | None, currency: str | None, locale: str) -> str:
    if minor_units is None or not currency:
        return "-"
    code = currency.upper()
    number = f"{minor_units:,}" if code in _ZERO_DECIMAL else f"{minor_units / 100:,.2f}"
    if locale == "de":
        number = number.replace(",", "\u2009").replace(".", ",")
    return f"{number} {code}"


def format_date(moment: datetime | None, locale: str) -> str:
    if moment is None:
        return "-"
    if locale == "de":
        return moment.strftime("%d.%m.%Y %H:%M UTC")
    return moment.strftime("%Y-%m-%d %H:%M UTC")


def format_size(size: int) -> str:
    value = float(size)
    for unit in ("B", "KB", "MB", "GB"):
        if value < 1024 or unit == "GB":
            return f"{int(value)} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{size} B"


@dataclass(frozen=True)
class ReceiptLine:
    order_id: str
    amount: str
    date: str


@dataclass(frozen=True)
class LicenseLine:
    key: str  # plaintext: only ever rendered into the message, never stored or logged


@dataclass(frozen=True)
class DownloadLine:
    link: str  # contains the token: only ever rendered into the message
    expires: str
    max_redemptions: int
    remaining: int


@dataclass(frozen=True)
class EmailContent:
    kind: str
    locale: str
    product_name: str
    seller_name: str
    support_email: str
    receipts: tuple[ReceiptLine, ...]
    licenses: tuple[LicenseLine, ...]
    downloads: tuple[DownloadLine, ...]
    release: Release | None

    def context(self) -> dict[str, Any]:
        files = []
        if self.release is not None:
            files = [
                {"name": f.name, "size": format_size(f.size), "sha256": f.sha256}
                for f in self.release.files
            ]
        return {
            "kind": self.kind,
            "product_name": self.product_name,
            "seller_name": self.seller_name,
            "support_email": self.support_email,
            "receipts": self.receipts,
            "licenses": self.licenses,
            "downloads": self.downloads,
            "release_version": self.release.version if self.release else None,
            "files": files,
        }


@dataclass(frozen=True)
class RenderedEmail:
    subject: str
    text: str
    html: str


@lru_cache(maxsize=1)
def environment() -> jinja2.Environment:
    import jinja2  # only the worker renders; keep it off other functions' cold start

    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(TEMPLATE_ROOT)),
        autoescape=jinja2.select_autoescape(enabled_extensions=("html",), default=False),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )


def _template(env: jinja2.Environment, locale: str, name: str) -> jinja2.Template:
    import jinja2

    try:
        return env.get_template(f"{locale}/{name}")
    except jinja2.TemplateNotFound:
        return env.get_template(f"{DEFAULT_LOCALE}/{name}")


def render(content: EmailContent) -> RenderedEmail:
    env = environment()
    context = content.context()
    subject = _template(env, content.locale, "fulfillment.subject.txt").render(context)
    return RenderedEmail(
        subject=" ".join(subject.split()),
        text=_template(env, content.locale, "fulfillment.txt").render(context),
        html=_template(env, content.locale, "fulfillment.html").render(context),
    )
