"""The storefront in real Chromium against the whole local stack."""

from __future__ import annotations

import hashlib
import json
import re
import secrets
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import pytest

from commerce.storefront.build import PAGES
from tests.e2e.conftest import (
    RELEASE_FILE,
    E2EStack,
    Session,
    download_links,
    screenshot,
    serious_axe_violations,
    wait_for,
)

SUCCESS_TEXT = {
    "en": re.compile(r"Payment received\. E-mail sent to ([a-z]\*\*\*@example\.com)\."),
    "de": re.compile(r"Zahlung erhalten\. E-Mail an ([a-z]\*\*\*@example\.com) gesendet\."),
}
BUY_LABEL = {"en": re.compile(r"^Buy GENX for"), "de": re.compile(r"^GENX für .* kaufen$")}


def new_buyer(tag: str) -> str:
    return f"{tag}-{secrets.token_hex(4)}@example.com"


def pay_on_the_double(page, email: str) -> None:
    """The Stripe double's hosted page: enter the e-mail and press Pay."""
    page.wait_for_url(re.compile(r"/pay/cs_"))
    page.get_by_label("E-mail").fill(email)
    page.get_by_role("button", name="Pay", exact=True).click()


def product_page(e2e_stack: E2EStack, locale: str = "en") -> str:
    """The product page with a unique `?ref=` (the script passes it on to checkout as
    attribution; sessions are per click anyway, see the click-id tests below)."""
    return e2e_stack.page_url("index.html", locale) + f"?ref=e2e{secrets.token_hex(6)}"


def buy(e2e_stack: E2EStack, page, locale: str, email: str, shots: str | None = None) -> str:
    """From the product page to the success page; returns the session id."""
    page.goto(product_page(e2e_stack, locale))
    page.get_by_role("button", name=BUY_LABEL[locale]).click()
    page.wait_for_url(re.compile(r"/pay/cs_"))
    if shots:
        screenshot(page, f"{shots}-stripe-double-pay")
    pay_on_the_double(page, email)
    page.wait_for_url(re.compile(r"/success\.html\?session_id=cs_"))
    match = re.search(r"session_id=(cs_[A-Za-z0-9_]+)", page.url)
    assert match
    return match.group(1)


# -- every page: renders, no console errors, no serious accessibility violations ---------


@pytest.mark.parametrize("locale", ["en", "de"])
def test_every_page_renders_without_errors_and_passes_axe(e2e_stack, session: Session, locale):
    page = session.page
    for name in PAGES:
        page.goto(e2e_stack.page_url(name, locale))
        page.wait_for_load_state("networkidle")
        assert page.locator("html").get_attribute("lang") == locale
        assert page.locator("h1").count() == 1
        screenshot(page, f"{locale}-{name.removesuffix('.html')}")
        violations = serious_axe_violations(page)
        assert violations == [], f"{locale}/{name}: {violations}"


@pytest.mark.parametrize("name", ["index.html", "success.html", "resend.html", "terms.html"])
def test_pages_fit_a_phone_screen_without_sideways_scrolling(e2e_stack, session: Session, name):
    page = session.page
    page.set_viewport_size({"width": 360, "height": 740})
    page.goto(e2e_stack.page_url(name, "de"))
    assert page.evaluate("document.documentElement.scrollWidth") <= 360
    screenshot(page, f"de-{name.removesuffix('.html')}-phone")


def test_the_product_page_shows_the_published_release(e2e_stack, session: Session):
    page = session.page
    page.goto(e2e_stack.page_url())
    version = e2e_stack.manifest["version"]
    assert page.locator(".release-version").inner_text() == version
    assert e2e_stack.manifest["date"][:10] in page.locator(".release time").inner_text()


def test_the_language_switch_leads_to_the_same_page_in_german(e2e_stack, session: Session):
    page = session.page
    page.goto(e2e_stack.page_url("support.html"))
    page.get_by_role("link", name="Deutsch").click()
    page.wait_for_url(re.compile(r"/de/support\.html$"))
    assert page.get_by_role("heading", level=1).inner_text() == "FAQ und Support"
    page.get_by_role("link", name="English").click()
    page.wait_for_url(re.compile(r"/support\.html$"))
    assert page.get_by_role("heading", level=1).inner_text() == "FAQ and support"


def test_legal_pages_show_the_draft_banner_while_not_final(e2e_stack, session: Session):
    page = session.page
    for name in ("terms.html", "privacy.html", "refund.html", "eula.html"):
        page.goto(e2e_stack.page_url(name, "de"))
        assert page.locator(".draft-banner").is_visible()


# -- purchase -----------------------------------------------------------------------------


@pytest.mark.parametrize("locale", ["en", "de"])
def test_a_buyer_pays_gets_the_email_and_downloads_the_release(e2e_stack, session: Session, locale):
    page = session.page
    email = new_buyer(f"buyer-{locale}")

    buy(e2e_stack, page, locale, email, shots=f"{locale}-purchase")

    status = page.locator("#order-status [data-state='fulfilled']")
    status.wait_for(state="visible", timeout=90_000)
    text = status.inner_text()
    masked = SUCCESS_TEXT[locale].search(text)
    assert masked, text
    assert masked.group(1) == email[0] + "***@example.com"
    screenshot(page, f"{locale}-purchase-success-paid")

    (message,) = e2e_stack.mailbox.wait_for(email)
    (link,) = download_links(message)
    page.goto(link)
    screenshot(page, f"{locale}-purchase-download-page")
    file_link = page.get_by_role("link", name=re.compile(re.escape(RELEASE_FILE)))
    with page.expect_download() as started:
        file_link.click()
    downloaded = started.value.path()
    digest = hashlib.sha256(Path(downloaded).read_bytes()).hexdigest()
    (entry,) = [f for f in e2e_stack.manifest["files"] if f["name"] == RELEASE_FILE]
    assert digest == entry["sha256"]


CLICK_ID = re.compile(r"[A-Za-z0-9_-]{22}")


def click_buy(page, locale: str = "en") -> Any:
    """Press Buy and return the request that went to the checkout function."""
    with page.expect_request(lambda request: request.method == "POST") as sent:
        page.get_by_role("button", name=BUY_LABEL[locale]).click()
    return sent.value


def pay_page_session(page) -> str:
    page.wait_for_url(re.compile(r"/pay/cs_"))
    match = re.search(r"/pay/(cs_[A-Za-z0-9_]+)", page.url)
    assert match
    return match.group(1)


def test_two_buyers_on_one_network_clicking_together_get_two_sessions(
    e2e_stack, session: Session, another_session: Session
):
    """Both browsers come from 127.0.0.1 with the same page, ref and locale: only the
    random per-click ids tell the clicks apart."""
    url = product_page(e2e_stack)
    pages = [session.page, another_session.page]
    for page in pages:
        page.goto(url)

    clicks = [json.loads(click_buy(page).post_data)["click_id"] for page in pages]
    sessions = [pay_page_session(page) for page in pages]

    assert all(CLICK_ID.fullmatch(click) for click in clicks), clicks
    assert clicks[0] != clicks[1]
    assert sessions[0] != sessions[1]


def test_when_site_js_does_not_run_the_plain_form_post_carries_a_fresh_click_id(
    e2e_stack, session: Session
):
    """The inline script alone fills the id on submit; coming back to the page and
    pressing Buy again is a new click with a new id."""
    page = session.page
    page.route(
        "**/site.js*",
        lambda route: route.fulfill(status=200, content_type="text/javascript", body=""),
    )
    page.goto(product_page(e2e_stack))

    first = click_buy(page)
    first_session = pay_page_session(page)
    page.go_back()
    page.wait_for_url(re.compile(r"/index\.html"))
    second = click_buy(page)
    second_session = pay_page_session(page)

    ids = [parse_qs(r.post_data, keep_blank_values=True)["click_id"][0] for r in (first, second)]
    assert first.headers["content-type"].startswith("application/x-www-form-urlencoded")
    assert all(CLICK_ID.fullmatch(click) for click in ids), ids
    assert ids[0] != ids[1]
    assert first_session != second_session


def test_without_javascript_the_buy_button_still_reaches_checkout(
    e2e_stack, session_without_js: Session
):
    page = session_without_js.page
    email = new_buyer("nojs")
    page.goto(product_page(e2e_stack))

    sent = click_buy(page)
    page.wait_for_url(re.compile(r"/pay/cs_"))
    pay_on_the_double(page, email)
    page.wait_for_url(re.compile(r"/success\.html\?session_id=cs_"))

    # No script ran: no click id, so no idempotency key (never one shared with others).
    assert parse_qs(sent.post_data, keep_blank_values=True)["click_id"] == [""]

    assert page.get_by_text("The live order status needs JavaScript.").is_visible()
    screenshot(page, "en-nojs-success")
    (message,) = e2e_stack.mailbox.wait_for(email)
    assert download_links(message)


def test_cancelling_on_the_checkout_page_lands_on_the_cancel_page(e2e_stack, session: Session):
    page = session.page
    page.goto(product_page(e2e_stack))
    page.get_by_role("button", name=BUY_LABEL["en"]).click()
    page.wait_for_url(re.compile(r"/pay/cs_"))
    page.get_by_role("button", name="Cancel").click()
    page.wait_for_url(re.compile(r"/cancel\.html"))
    assert page.get_by_role("heading", level=1).inner_text() == "Checkout cancelled"
    screenshot(page, "en-cancel-after-checkout")


# -- re-send ------------------------------------------------------------------------------


def test_resend_answers_a_buyer_and_a_stranger_alike_and_mails_only_the_buyer(
    e2e_stack, session: Session
):
    page = session.page
    buyer = new_buyer("resend")
    stranger = new_buyer("stranger")
    buy(e2e_stack, page, "en", buyer)
    e2e_stack.mailbox.wait_for(buyer)  # the purchase e-mail

    answers = {}
    for address in (stranger, buyer):
        page.goto(e2e_stack.page_url("resend.html"))
        page.get_by_label("E-mail address").fill(address)
        page.get_by_role("button", name="Send the links").click()
        status = page.locator(".resend-form .form-status")
        wait_for("the re-send answer", lambda s=status: "Thank you" in s.inner_text())
        answers[address] = status.inner_text()
    screenshot(page, "en-resend-answer")

    assert answers[buyer] == answers[stranger]
    second = e2e_stack.mailbox.wait_for(buyer, count=2)
    assert all(download_links(message) for message in second)
    # The stranger's request was made first; had it produced mail, it would be here.
    assert e2e_stack.mailbox.to(stranger) == []


def test_resend_without_javascript_answers_with_the_same_sentence(
    e2e_stack, session_without_js: Session
):
    page = session_without_js.page
    page.goto(e2e_stack.page_url("resend.html", "de"))
    page.get_by_label("E-Mail-Adresse").fill(new_buyer("nojs-stranger"))
    page.get_by_role("button", name="Links senden").click()
    page.wait_for_load_state()
    assert "Wenn mit dieser Adresse GENX gekauft wurde" in page.inner_text("main")
    screenshot(page, "de-resend-nojs-answer")
    page.get_by_role("link", name="Zurück zum Shop").click()
    page.wait_for_url(re.compile(r"/de/resend\.html$"))
