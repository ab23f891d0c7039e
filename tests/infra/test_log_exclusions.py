"""No download token or Checkout Session id is stored in a platform request log.

The URLs come from the code that makes them (the e-mailed download link, the listing's
per-platform links, Stripe's success URL, the success page's order-status poll, and
the Referer those pages send on); the URL map routes them (locals.tf path rules);
each becomes the log entries Google writes for it (the load balancer's for every
request, Cloud Run's for those reaching a function) and must be dropped by one of the
project's log exclusions (logging.tf). Requests without a secret must stay logged.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from pathlib import Path
from urllib.parse import quote, urlsplit, urlunsplit

import pytest
from infra_helpers import TERRAFORM_ROOT, append, replace_once

from commerce.delivery.endpoints import file_link
from commerce.grants import download_link
from commerce.purchase.checkout import session_params
from commerce.purchase.requests import CheckoutRequest
from commerce.settings import Settings
from infra import log_exclusions as lx

SHOP = Path("modules/shop")
SHOP_URL = "https://shop.example"  # locals.tf: every *_URL setting is under the shop's domain
TOKEN = secrets.token_urlsafe(32)
SESSION_ID = "cs_live_" + secrets.token_urlsafe(40)
SETTINGS = Settings(
    _env_file=None,  # type: ignore[call-arg]
    environment="local",
    gcp_project="genx-prod",
    storefront_url=SHOP_URL,
    public_base_url=SHOP_URL,
    order_status_url=f"{SHOP_URL}/api/order-status",
    artifacts_bucket="genx-prod-artifacts",
    stripe_price_id="price_x",
)


def success_page(locale: str) -> str:
    template = session_params(SETTINGS, CheckoutRequest(locale=locale), "ref")["success_url"]
    assert "{CHECKOUT_SESSION_ID}" in template
    return str(template).replace("{CHECKOUT_SESSION_ID}", SESSION_ID)


def order_status_poll() -> str:
    # site/assets/site.js: box.dataset.orderStatus + "?session_id=" + encodeURIComponent(id)
    return f"{SETTINGS.order_status_url}?session_id={quote(SESSION_ID, safe='')}"


# (url, referer) of every request that carries a secret in its URL or Referer.
SECRET_REQUESTS: list[tuple[str, str | None]] = [
    (download_link(str(SETTINGS.public_base_url), TOKEN), None),
    (file_link(str(SETTINGS.public_base_url), TOKEN, "windows-x86_64"), None),
    (
        file_link(str(SETTINGS.public_base_url), TOKEN, "linux-x86_64"),
        download_link(SHOP_URL, TOKEN),
    ),
    (success_page("en"), "https://checkout.stripe.com/"),
    (success_page("de"), None),
    (order_status_poll(), success_page("en")),
    (f"{SHOP_URL}/assets/site.js?v=3", success_page("de")),
    (f"{SHOP_URL}/de/index.html", success_page("de")),  # the language switch keeps the query
]

PLAIN_REQUESTS: list[tuple[str, str | None]] = [
    (f"{SHOP_URL}/", None),
    (f"{SHOP_URL}/de/index.html", f"{SHOP_URL}/"),
    (f"{SHOP_URL}/api/checkout", f"{SHOP_URL}/"),
    (f"{SHOP_URL}/api/webhook/stripe", None),
    (f"{SHOP_URL}/api/order-status", None),  # the uptime check
    (f"{SHOP_URL}/api/resend", f"{SHOP_URL}/resend.html"),
    (f"{SHOP_URL}/api/license/validate", None),
]


def run_service(function: str) -> str:
    return "shop-" + function.replace("_", "-")


def entries_for(url: str, referer: str | None, rules: dict[str, list[str]]) -> list[dict]:
    """The request log entries Google writes for one request through the shop's LB."""
    found = [lx.load_balancer_entry(url, referer)]
    function = lx.route(url, rules)
    if function is not None:
        service = run_service(function)
        parts = urlsplit(url)
        run_url = urlunsplit(("https", f"{service}-a1b2c3d4e5-ew.a.run.app", *parts[2:]))
        # Cloud Run logs the URL with the Host it was called with; cover both.
        found.append(lx.cloud_run_entry(service, url, referer))
        found.append(lx.cloud_run_entry(service, run_url, referer))
    return found


def leaks(module: Path, requests: list[tuple[str, str | None]] = SECRET_REQUESTS) -> list[str]:
    exclusions = lx.project_exclusions(module)
    rules = lx.path_rules(module)
    found = []
    for url, referer in requests:
        for entry in entries_for(url, referer, rules):
            if not lx.excluded_by(entry, exclusions):
                found.append(f"{entry['logName']} would store {url} (referer {referer})")
    return found


# -- the real tree ---------------------------------------------------------------------


def test_the_secret_urls_go_where_the_exclusions_assume() -> None:
    rules = lx.path_rules(TERRAFORM_ROOT / SHOP)
    assert lx.route(download_link(SHOP_URL, TOKEN), rules) == "download"
    assert lx.route(file_link(SHOP_URL, TOKEN, "macos-universal"), rules) == "download"
    assert lx.route(order_status_poll(), rules) == "order_status"
    assert lx.route(success_page("en"), rules) is None  # the storefront bucket


def test_no_request_log_entry_with_a_token_or_session_id_is_stored() -> None:
    assert leaks(TERRAFORM_ROOT / SHOP) == []


def test_both_request_logs_have_an_exclusion() -> None:
    sources = {e.source for e in lx.project_exclusions(TERRAFORM_ROOT / SHOP)}
    assert sources == {
        "google_logging_project_exclusion.secret_urls[cloud_run]",
        "google_logging_project_exclusion.secret_urls[load_balancer]",
    }


def test_requests_without_a_secret_stay_logged() -> None:
    exclusions = lx.project_exclusions(TERRAFORM_ROOT / SHOP)
    rules = lx.path_rules(TERRAFORM_ROOT / SHOP)
    for url, referer in PLAIN_REQUESTS:
        for entry in entries_for(url, referer, rules):
            assert lx.excluded_by(entry, exclusions) == [], (url, referer)


def test_no_other_sink_bypasses_the_exclusions() -> None:
    # Exclusions apply to the _Default sink only; another sink would need its own.
    assert lx.other_sinks(TERRAFORM_ROOT) == []


def test_the_storefront_bucket_writes_no_usage_logs() -> None:
    assert lx.usage_logged_public_buckets(TERRAFORM_ROOT / SHOP) == []


def test_usage_logs_on_the_storefront_bucket_are_caught(terraform_copy: Path) -> None:
    replace_once(
        terraform_copy / SHOP / "storage.tf",
        "  # No `logging` block (usage logs): see the checkov skip above.\n",
        "  logging {\n    log_bucket = google_storage_bucket.access_logs.name\n  }\n",
    )
    assert lx.usage_logged_public_buckets(terraform_copy / SHOP) == ["storefront"]


# -- the evaluator ---------------------------------------------------------------------


def test_the_query_evaluator_follows_cloud_loggings_rules() -> None:
    entry = lx.cloud_run_entry("shop-download", f"{SHOP_URL}/D/abc")
    assert lx.matches('httpRequest.requestUrl:"/d/"', entry)  # has: case-insensitive
    assert lx.matches('log_id("run.googleapis.com/requests")', entry)
    assert not lx.matches('log_id("requests")', entry)
    assert lx.matches('resource.type="cloud_run_revision"', entry)
    assert not lx.matches('httpRequest.referer:"x"', entry)  # missing field
    # OR binds tighter than AND: `a OR b AND c` is `(a OR b) AND c`.
    assert not lx.matches(
        'resource.type="x" OR resource.type="cloud_run_revision" AND severity="ERROR"', entry
    )
    assert lx.matches('NOT severity="ERROR"', entry)
    with pytest.raises(lx.UnsupportedQuery):
        lx.matches('httpRequest.requestUrl=~"/d/.*"', entry)


# -- seeded leaks: each must be caught --------------------------------------------------


def _no_cloud_run_exclusion(root: Path) -> None:
    replace_once(
        root / SHOP / "logging.tf",
        '    cloud_run     = "resource.type=\\"cloud_run_revision\\" AND '
        'log_id(\\"run.googleapis.com/requests\\")"\n',
        "",
    )


def _query_only(root: Path) -> None:
    replace_once(
        root / SHOP / "logging.tf",
        'httpRequest.requestUrl:\\"/d/\\" OR ',
        "",
    )


def _referer_forgotten(root: Path) -> None:
    replace_once(
        root / SHOP / "logging.tf",
        ' OR httpRequest.referer:\\"session_id=\\"',
        "",
    )


def _exclusion_disabled(root: Path) -> None:
    replace_once(
        root / SHOP / "logging.tf",
        "  filter      = ",
        "  disabled    = true\n  filter      = ",
    )


def _downloads_moved_to_another_path(root: Path) -> None:
    # The token path served by a new route the filter does not name.
    replace_once(root / SHOP / "locals.tf", 'path_rules  = ["/d/*"]', 'path_rules  = ["/get/*"]')


@pytest.mark.parametrize(
    "seed", [_no_cloud_run_exclusion, _query_only, _referer_forgotten, _exclusion_disabled]
)
def test_the_check_catches(seed: Callable[[Path], None], terraform_copy: Path) -> None:
    seed(terraform_copy)
    assert leaks(terraform_copy / SHOP) != []


def test_a_link_format_the_filter_does_not_name_is_caught(terraform_copy: Path) -> None:
    _downloads_moved_to_another_path(terraform_copy)
    moved = [(f"{SHOP_URL}/get/{TOKEN}", None)]
    assert leaks(terraform_copy / SHOP, moved) != []


def test_a_second_sink_is_caught(terraform_copy: Path) -> None:
    append(
        terraform_copy / SHOP / "logging.tf",
        'resource "google_logging_project_sink" "archive" {\n'
        '  name        = "archive"\n'
        '  destination = "storage.googleapis.com/some-bucket"\n'
        "}\n",
    )
    assert lx.other_sinks(terraform_copy) != []
