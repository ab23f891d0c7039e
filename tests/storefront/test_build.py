import json
import re
import shutil
from html.parser import HTMLParser
from pathlib import Path

import pytest

from commerce.storefront import build
from commerce.storefront.build import (
    PAGES,
    ReleaseInfo,
    SiteBuildError,
    key_paths,
    release_from_manifest,
    render_site,
)
from commerce.storefront.messages import MESSAGES
from tests.storefront.conftest import make_settings

SOURCE = Path(__file__).resolve().parents[2] / "site"
RELEASE = ReleaseInfo("1.4.2", "2026-02-20")


def locale(name: str) -> dict:
    return json.loads((SOURCE / "locales" / f"{name}.json").read_text(encoding="utf-8"))


def strings(tree) -> list[str]:
    if isinstance(tree, dict):
        return [s for value in tree.values() for s in strings(value)]
    if isinstance(tree, list):
        return [s for value in tree for s in strings(value)]
    return [tree] if isinstance(tree, str) else []


class Text(HTMLParser):
    """Visible text of a page (script and style excluded)."""

    def __init__(self) -> None:
        super().__init__()
        self.parts: list[str] = []
        self._skip = 0

    def handle_starttag(self, tag, attrs):
        if tag in ("script", "style"):
            self._skip += 1

    def handle_endtag(self, tag):
        if tag in ("script", "style"):
            self._skip -= 1

    def handle_data(self, data):
        if not self._skip:
            self.parts.append(data)

    @classmethod
    def of(cls, html: str) -> str:
        parser = cls()
        parser.feed(html)
        return " ".join(" ".join(parser.parts).split())


@pytest.fixture
def site(tmp_path):
    settings = make_settings(
        product_name="GENX",
        price_display="€49",
        seller_name="Example Audio GmbH",
        seller_country="Germany",
        support_email="help@genx.example",
        refund_window_days=30,
        checkout_url="http://127.0.0.1:9320/",
        order_status_url="http://127.0.0.1:9324/",
        resend_url="http://127.0.0.1:9325/",
    )
    out = tmp_path / "site"
    render_site(settings, source=SOURCE, out=out, release=RELEASE)
    return out


def read(site: Path, path: str) -> str:
    return (site / path).read_text(encoding="utf-8")


def test_every_page_is_built_in_english_at_the_root_and_german_under_de(site):
    for page in PAGES:
        assert '<html lang="en">' in read(site, page)
        assert '<html lang="de">' in read(site, f"de/{page}")
    assert (site / "assets" / "site.css").is_file()
    assert (site / "assets" / "site.js").is_file()


def test_the_locale_files_have_the_same_strings(tmp_path):
    assert key_paths(locale("en")) == key_paths(locale("de"))


def test_german_pages_show_no_english_sentence(site):
    english = {s for s in strings(locale("en")) if len(s) > 12 and "{" not in s}
    german = set(strings(locale("de")))
    only_english = english - german
    assert only_english
    for page in PAGES:
        text = Text.of(read(site, f"de/{page}"))
        leaked = [s for s in only_english if s in text]
        assert leaked == [], f"de/{page} shows English: {leaked[:3]}"


def test_pages_are_filled_from_settings_and_the_release(site):
    product = Text.of(read(site, "index.html"))
    assert "€49" in product
    assert "1.4.2" in product
    assert "2026-02-20" in product
    support = Text.of(read(site, "support.html"))
    assert "help@genx.example" in support
    refund = Text.of(read(site, "refund.html"))
    assert "30 days" in refund
    terms = Text.of(read(site, "de/terms.html"))
    assert "Example Audio GmbH" in terms
    assert "Germany" in terms


def test_the_forms_post_to_the_configured_functions_with_the_page_locale(site):
    index = read(site, "index.html")
    assert 'action="http://127.0.0.1:9320/"' in index
    assert re.search(r'name="locale" value="en"', index)
    assert 'name="locale" value="de"' in read(site, "de/index.html")
    assert 'action="http://127.0.0.1:9325/"' in read(site, "de/resend.html")
    assert 'data-order-status="http://127.0.0.1:9324/"' in read(site, "success.html")


@pytest.mark.parametrize("page", ["index.html", "de/index.html"])
def test_the_buy_form_gets_its_click_id_in_the_browser_never_at_build_time(site, page):
    """The built page carries an empty click_id and the inline script that fills it on
    submit from the browser's secure random source (the browser tests run it)."""
    index = read(site, page)
    form = index.split("data-buy", 1)[1].split("</form>", 1)[0]
    script = index.split("</form>", 1)[1].split("</script>", 1)[0]

    assert '<input type="hidden" name="click_id" value="" autocomplete="off">' in form
    assert script.lstrip().startswith("<script>")
    assert "crypto.getRandomValues" in script
    assert "Math.random" not in script


def test_function_urls_default_to_paths_under_the_public_base_url(tmp_path):
    urls = build.function_urls(make_settings(public_base_url="https://api.shop.example/"))
    assert urls == {
        "checkout": "https://api.shop.example/checkout",
        "order_status": "https://api.shop.example/order_status",
        "resend": "https://api.shop.example/resend_links",
    }


@pytest.mark.parametrize("page", ["terms.html", "privacy.html", "refund.html", "eula.html"])
def test_legal_pages_carry_a_draft_banner_until_settings_mark_them_final(tmp_path, page):
    draft = tmp_path / "draft"
    final = tmp_path / "final"
    render_site(make_settings(legal_final=False), source=SOURCE, out=draft, release=RELEASE)
    render_site(make_settings(legal_final=True), source=SOURCE, out=final, release=RELEASE)
    for prefix in ("", "de/"):
        assert "draft-banner" in read(draft, prefix + page)
        assert "draft-banner" not in read(final, prefix + page)
    assert "draft-banner" not in read(draft, "index.html")


def test_links_between_pages_resolve_to_built_files(site):
    for page in PAGES:
        for prefix in ("", "de/"):
            html = read(site, prefix + page)
            for href in re.findall(r'(?:href|src)="([^"#:]+?)(?:\?[^"]*)?"', html):
                target = (site / prefix / href).resolve()
                assert target.is_file(), f"{prefix}{page} links to missing {href}"


def test_every_page_has_a_title_one_h1_and_a_main_landmark(site):
    for page in PAGES:
        for prefix in ("", "de/"):
            html = read(site, prefix + page)
            assert re.search(r"<title>[^<]+</title>", html)
            assert html.count("<h1") == 1, prefix + page
            assert '<main id="main"' in html


def test_a_missing_string_stops_the_build(tmp_path):
    source = tmp_path / "source"

    shutil.copytree(SOURCE, source)
    de = locale("de")
    del de["cancel"]["text"]
    (source / "locales" / "de.json").write_text(json.dumps(de), encoding="utf-8")
    with pytest.raises(SiteBuildError, match=r"cancel\.text"):
        render_site(make_settings(), source=source, out=tmp_path / "out", release=RELEASE)


def test_an_unknown_placeholder_stops_the_build(tmp_path):
    source = tmp_path / "source"

    shutil.copytree(SOURCE, source)
    en = locale("en")
    en["cancel"]["text"] = "Nothing was charged by {sellr}."
    (source / "locales" / "en.json").write_text(json.dumps(en), encoding="utf-8")
    with pytest.raises(SiteBuildError, match="placeholder"):
        render_site(make_settings(), source=source, out=tmp_path / "out", release=RELEASE)


def test_the_release_comes_from_a_signed_manifest_or_its_envelope():
    manifest = {"version": "2.0.1", "channel": "stable", "date": "2026-04-01T10:00:00+00:00"}
    assert release_from_manifest(manifest) == ReleaseInfo("2.0.1", "2026-04-01")
    envelope = {"manifest": json.dumps(manifest), "signature": "abc"}
    assert release_from_manifest(envelope) == ReleaseInfo("2.0.1", "2026-04-01")
    with pytest.raises(SiteBuildError):
        release_from_manifest({"channel": "stable"})


def test_without_a_manifest_the_fallback_release_file_is_used():
    assert (
        build.load_release(SOURCE, None).version
        == locale("en")["product"]["changelog"][0]["version"]
    )


def test_the_command_builds_from_the_environment(tmp_path, monkeypatch, capsys):
    for name, value in {
        "ENVIRONMENT": "local",
        "GCP_PROJECT": "demo-genx-test",
        "STOREFRONT_URL": "http://127.0.0.1:9310",
        "PUBLIC_BASE_URL": "http://127.0.0.1:9322",
        "ARTIFACTS_BUCKET": "genx-artifacts-test",
        "PRODUCT_NAME": "GENX Pro",
    }.items():
        monkeypatch.setenv(name, value)
    manifest = tmp_path / "manifest.json"
    manifest.write_text(json.dumps({"version": "3.1.0", "date": "2026-05-05T00:00:00Z"}))
    out = tmp_path / "out"
    code = build.main(["--source", str(SOURCE), "--out", str(out), "--manifest", str(manifest)])
    assert code == 0
    assert "GENX Pro" in read(out, "index.html")
    assert "3.1.0" in read(out, "de/index.html")
    assert "built 20 pages" in capsys.readouterr().out


def test_the_command_reports_a_bad_configuration_in_one_line(tmp_path, monkeypatch, capsys):
    monkeypatch.delenv("STOREFRONT_URL", raising=False)
    monkeypatch.setenv("ENVIRONMENT", "local")
    code = build.main(["--source", str(SOURCE), "--out", str(tmp_path / "out")])
    assert code == 1
    assert "STOREFRONT_URL" in capsys.readouterr().err


@pytest.mark.parametrize("name", ["en", "de"])
def test_the_functions_answer_with_the_sentences_of_the_site(name):
    site_strings = locale(name)["resend"]
    ours = MESSAGES[name]
    assert ours["resend_neutral"] == site_strings["done"]
    assert ours["resend_title"] == site_strings["title"]
    assert ours["resend_rate_limited"] == site_strings["rate_limited"]
    assert ours["resend_invalid"] == site_strings["invalid"]
    assert ours["resend_unavailable"] == site_strings["error"]
    assert ours["resend_back"] == site_strings["back"]
