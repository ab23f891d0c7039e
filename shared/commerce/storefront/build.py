"""Build the static storefront: every page in every locale, into one folder that can be
copied to a Cloud Storage bucket as it is.

    python -m commerce.storefront.build [--source site] [--out build/site]
                                        [--manifest releases/1.2.0/manifest.json]

Configuration comes from the same `Settings` as the backend (product name, price,
seller, support contact, refund window, `legal_final`, function URLs); the latest
release's version and date come from a release manifest when one is given, else from
`site/release.json`. Every visible string comes from `site/locales/<locale>.json`;
a missing key stops the build (StrictUndefined), so no page ships half translated.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jinja2
from markupsafe import Markup, escape

from commerce.errors import CommerceError
from commerce.settings import Settings, load_settings
from commerce.storefront.messages import DEFAULT_LOCALE, SUPPORTED_LOCALES

PAGES = (
    "index.html",
    "success.html",
    "cancel.html",
    "support.html",
    "resend.html",
    "terms.html",
    "privacy.html",
    "refund.html",
    "eula.html",
    "404.html",
)
LEGAL_PAGES = ("terms.html", "privacy.html", "refund.html", "eula.html")
DEFAULT_SOURCE = Path("site")
DEFAULT_OUT = Path("build/site")


class SiteBuildError(Exception):
    """The site cannot be built as configured (message names what to fix)."""


@dataclass(frozen=True)
class ReleaseInfo:
    version: str
    date: str  # ISO date, YYYY-MM-DD


def release_from_manifest(data: Mapping[str, Any]) -> ReleaseInfo:
    """Version and date of a release manifest (the signed envelope or the bare manifest)."""
    inner = data.get("manifest")
    if isinstance(inner, str):
        inner = json.loads(inner)
    body: Mapping[str, Any] = inner if isinstance(inner, Mapping) else data
    version = body.get("version")
    when = body.get("published_at") or body.get("released_at") or body.get("date")
    if not isinstance(version, str) or not version:
        raise SiteBuildError("the release manifest has no version")
    if not isinstance(when, str) or len(when) < 10:
        raise SiteBuildError("the release manifest has no publication date")
    return ReleaseInfo(version=version, date=when[:10])


def load_release(source: Path, manifest: Path | None) -> ReleaseInfo:
    path = manifest if manifest is not None else source / "release.json"
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise SiteBuildError(f"cannot read release information from {path}: {exc}") from None
    if not isinstance(data, Mapping):
        raise SiteBuildError(f"{path} must hold a JSON object")
    return release_from_manifest(data)


def load_locale(source: Path, locale: str) -> dict[str, Any]:
    path = source / "locales" / f"{locale}.json"
    data = json.loads(path.read_text(encoding="utf-8"))
    if not isinstance(data, dict):
        raise SiteBuildError(f"{path} must hold a JSON object")
    return data


def key_paths(data: Any, prefix: str = "") -> set[str]:
    """Every key path of a locale tree (list items count by position)."""
    if isinstance(data, Mapping):
        paths: set[str] = set()
        for key, value in data.items():
            paths |= key_paths(value, f"{prefix}.{key}" if prefix else str(key))
        return paths
    if isinstance(data, list):
        paths = set()
        for index, value in enumerate(data):
            paths |= key_paths(value, f"{prefix}[{index}]")
        return paths
    return {prefix}


def function_urls(settings: Settings) -> dict[str, str]:
    base = str(settings.public_base_url).rstrip("/")
    return {
        "checkout": settings.checkout_url or f"{base}/checkout",
        "order_status": settings.order_status_url or f"{base}/order_status",
        "resend": settings.resend_url or f"{base}/resend_links",
    }


def placeholders(settings: Settings) -> dict[str, str]:
    """Values locale strings may use as `{name}`."""
    return {
        "product": settings.product_name,
        "price": settings.price_display,
        "seller_name": settings.seller_name,
        "seller_country": settings.seller_country,
        "seller_address": settings.seller_address or settings.seller_country,
        "support_email": settings.support_email,
        "refund_window_days": str(settings.refund_window_days),
        "download_ttl_hours": str(settings.download_token_ttl_hours),
        "download_max": str(settings.download_max_redemptions),
        "activation_limit": str(settings.license_activation_limit),
    }


# Filled in by the browser (site.js), so the build keeps them as `{name}`.
RUNTIME_PLACEHOLDERS = frozenset({"email"})


class _Placeholders(dict[str, str]):
    def __missing__(self, key: str) -> str:
        if key in RUNTIME_PLACEHOLDERS:
            return "{" + key + "}"
        raise KeyError(key)


class Translator:
    """`t("a.b")` -> the locale's string at that path with `{placeholders}` filled."""

    def __init__(self, tree: Mapping[str, Any], values: Mapping[str, str], locale: str) -> None:
        self.tree = tree
        self.values = values
        self.locale = locale

    def lookup(self, path: str) -> Any:
        node: Any = self.tree
        for part in path.split("."):
            if not isinstance(node, Mapping) or part not in node:
                raise SiteBuildError(f"locale {self.locale} has no string {path!r}")
            node = node[part]
        return node

    def fill(self, value: Any) -> Any:
        if isinstance(value, str):
            try:
                return value.format_map(_Placeholders(self.values))
            except (KeyError, ValueError) as exc:
                raise SiteBuildError(f"locale {self.locale}: bad placeholder in {value!r}") from exc
        if isinstance(value, Mapping):
            return {key: self.fill(item) for key, item in value.items()}
        if isinstance(value, list):
            return [self.fill(item) for item in value]
        return value

    def __call__(self, path: str) -> Any:
        return self.fill(self.lookup(path))


def with_slot(text: str, name: str, tag: str = "strong") -> Markup:
    """Escape `text` and turn its `{name}` into an empty element the script fills."""
    slot = Markup(f'<{tag} class="slot-{name}"></{tag}>')  # noqa: S704 - constant markup
    return Markup(escape(text)).replace("{" + name + "}", slot)  # noqa: S704


def page_url(from_locale: str, to_locale: str, page: str, base: str = "") -> str:
    """Link from a page in `from_locale` to `page` in `to_locale`.

    Relative by default (naming `index.html`), so the built folder works under any
    prefix and without a web server's directory index; with `base` (the storefront
    URL) absolute.
    """
    folder = "" if to_locale == DEFAULT_LOCALE else f"{to_locale}/"
    if base:
        return base.rstrip("/") + "/" + folder + ("" if page == "index.html" else page)
    if from_locale == to_locale:
        return page
    up = "" if from_locale == DEFAULT_LOCALE else "../"
    return f"{up}{folder}{page}"


def environment(source: Path) -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(source / "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )


def render_site(
    settings: Settings,
    *,
    source: Path = DEFAULT_SOURCE,
    out: Path = DEFAULT_OUT,
    release: ReleaseInfo | None = None,
    locales: Sequence[str] = SUPPORTED_LOCALES,
) -> list[Path]:
    """Render every page for every locale into `out` (replaced); returns the files written."""
    release = release or load_release(source, None)
    env = environment(source)
    values = placeholders(settings)
    urls = function_urls(settings)
    trees = {locale: load_locale(source, locale) for locale in locales}
    reference = key_paths(trees[DEFAULT_LOCALE])
    for locale, tree in trees.items():
        missing = reference - key_paths(tree)
        if missing:
            raise SiteBuildError(f"locale {locale} lacks {sorted(missing)[:5]}")
    if out.exists():
        shutil.rmtree(out)
    written: list[Path] = []
    shutil.copytree(source / "assets", out / "assets")
    written.extend(sorted(p for p in (out / "assets").rglob("*") if p.is_file()))
    lang_names = {locale: str(trees[locale]["meta"]["lang_name"]) for locale in locales}
    base = str(settings.storefront_url).rstrip("/")
    for locale in locales:
        folder = out if locale == DEFAULT_LOCALE else out / locale
        folder.mkdir(parents=True, exist_ok=True)
        t = Translator(trees[locale], values, locale)
        for page in PAGES:
            # The 404 page is served at whatever path was missing: absolute links only.
            link_base = base if page == "404.html" else ""
            assets = (
                f"{base}/assets/"
                if link_base
                else ("assets/" if locale == DEFAULT_LOCALE else "../assets/")
            )
            context = {
                "t": t,
                "with_slot": with_slot,
                "locale": locale,
                "locales": locales,
                "lang_names": lang_names,
                "page": page,
                "assets": assets,
                "url": lambda target, lang=locale, b=link_base: page_url(lang, lang, target, b),
                "switch_url": {
                    other: page_url(locale, other, page, link_base)
                    for other in locales
                    if other != locale
                },
                "alternates": {other: page_url(locale, other, page, base) for other in locales},
                "canonical": page_url(locale, locale, page, base),
                "settings": settings,
                "product": settings.product_name,
                "price": settings.price_display,
                "release": release,
                "functions": urls,
                "is_legal": page in LEGAL_PAGES,
                "legal_final": settings.legal_final,
                "asset_version": settings.storefront_version,
            }
            html = env.get_template(page).render(context)
            target = folder / page
            target.write_text(html, encoding="utf-8")
            written.append(target)
    return written


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    parser.add_argument("--source", type=Path, default=DEFAULT_SOURCE)
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--manifest", type=Path, help="a release manifest.json (optional)")
    args = parser.parse_args(argv)
    try:
        settings = load_settings()
        release = load_release(args.source, args.manifest)
        written = render_site(settings, source=args.source, out=args.out, release=release)
    except (SiteBuildError, CommerceError, jinja2.TemplateError, OSError) as exc:
        print(f"site build failed: {exc}", file=sys.stderr)
        return 1
    pages = sum(1 for path in written if path.suffix == ".html")
    print(f"built {pages} pages ({release.version}, {release.date}) into {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
