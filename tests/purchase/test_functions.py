"""The `checkout`, `stripe_webhook` and `reconcile` functions through
`functions_framework.create_app(...).test_client()`, with the official `stripe`
library talking to the local Stripe double and Google's Firestore emulator behind."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import functions_framework
import pytest
import requests
import stripe
from werkzeug.serving import make_server

from commerce.bootstrap import Container, use_container
from commerce.domain.models import EmailJobState, LicenseStatus
from commerce.domain.orders import OrderState
from commerce.purchase import gateway
from commerce.purchase.fulfillment import fulfillment_job_id
from commerce.purchase.gateway import StripeGateway
from commerce.secrets import EnvSecrets
from emulators.stripe_setup import client_for, ensure_catalog
from tests.purchase import stripe_events as se
from tests.purchase.conftest import STOREFRONT, STRIPE_KEY, WEBHOOK_SECRET, make_settings
from tests.support.stripe_double import running_stripe_double
from tests.support.threads import run_copies

REPO = Path(__file__).resolve().parents[2]
SOURCE = str(REPO / "functions" / "main.py")
JSON_HEADERS = {"Content-Type": "application/json", "Origin": STOREFRONT}


@dataclass
class Double:
    url: str

    def control(self, path: str, **form: Any) -> dict[str, Any]:
        answer = requests.post(f"{self.url}/_double/{path}", data=form, timeout=10)
        assert answer.status_code == 200, answer.text
        body: dict[str, Any] = answer.json()
        return body

    def pending_deliveries(self) -> int:
        answer = requests.get(f"{self.url}/_double/events", timeout=10)
        return sum(
            1
            for summary in answer.json()["data"]
            for delivery in summary["deliveries"]
            if delivery["state"] == "pending"
        )

    def events(self, event_type: str) -> list[dict[str, Any]]:
        answer = requests.get(f"{self.url}/_double/events", params={"type": event_type}, timeout=10)
        return [summary["event"] for summary in answer.json()["data"]]


@pytest.fixture(scope="session")
def stripe_double(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Double]:
    log_dir = tmp_path_factory.mktemp("double")
    with running_stripe_double(log_dir, WEBHOOK_SECRET, async_delay=0.2) as url:
        yield Double(url)


@pytest.fixture
def double(stripe_double: Double) -> Double:
    stripe_double.control("reset")
    stripe_double.control("config", webhook_url="")
    return stripe_double


@pytest.fixture
def stripe_client(double: Double) -> stripe.StripeClient:
    return client_for(STRIPE_KEY, double.url)


@pytest.fixture
def price_id(stripe_client: stripe.StripeClient) -> str:
    return ensure_catalog(stripe_client).price_id


@pytest.fixture
def make_container(
    firestore_db: Any, secret_values: dict[str, str], clock: Any, email_queue: Any,
    double: Double, price_id: str,
) -> Iterator[Callable[..., Container]]:  # fmt: skip
    def build(**overrides: Any) -> Container:
        settings = make_settings(
            **{"stripe_api_base": double.url, "stripe_price_id": price_id, **overrides}
        )
        built = Container(settings, clock=clock, secrets=EnvSecrets(secret_values))
        built.db = firestore_db  # type: ignore[misc]
        built.email_queue = email_queue  # type: ignore[misc,assignment]
        use_container(built)
        return built

    yield build
    use_container(None)


@pytest.fixture
def container(make_container: Callable[..., Container]) -> Container:
    return make_container()


def client_of(target: str) -> Any:
    return functions_framework.create_app(target, SOURCE).test_client()


@pytest.fixture
def webhook_url(container: Container, double: Double) -> Iterator[str]:
    """The stripe_webhook function served over real HTTP, registered with the double."""
    server = make_server("127.0.0.1", 0, functions_framework.create_app("stripe_webhook", SOURCE),
                         threaded=True)  # fmt: skip
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{server.server_port}/"
    double.control("config", webhook_url=url)
    try:
        yield url
    finally:
        # Let the double finish its deliveries (it sends more events than we act on)
        # so no request of this test is still in a transaction when the next one starts.
        wait_until(lambda: not double.pending_deliveries(), "deliveries settled")
        double.control("config", webhook_url="")
        server.shutdown()
        thread.join(timeout=10)


def wait_until(condition: Callable[[], Any], what: str, timeout: float = 30.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"never happened: {what}")


def start_checkout(**body: Any) -> dict[str, Any]:
    answer = client_of("checkout").post("/", data=json.dumps(body), headers=JSON_HEADERS)
    assert answer.status_code == 200, answer.get_data(as_text=True)
    result: dict[str, Any] = answer.get_json()
    return result


def signed_post(
    event: dict[str, Any], secret: str = WEBHOOK_SECRET, *, client: Any = None, **kwargs: Any
) -> Any:
    payload, header = se.signed(event, secret, **kwargs)
    return (client or client_of("stripe_webhook")).post(
        "/", data=payload, headers={"Stripe-Signature": header, "Content-Type": "application/json"}
    )


# -- checkout ----------------------------------------------------------------------------------


def test_checkout_creates_a_payment_session_for_the_configured_price(
    container, stripe_client, price_id
):
    answer = client_of("checkout").post(
        "/",
        data=json.dumps({"email": "jane@example.com", "locale": "de", "ref": "friend-1"}),
        headers=JSON_HEADERS,
    )

    assert answer.status_code == 200
    assert answer.headers["Access-Control-Allow-Origin"] == STOREFRONT
    body = answer.get_json()
    assert set(body) == {"id", "url"}
    session = stripe_client.v1.checkout.sessions.retrieve(body["id"])
    assert session.mode == "payment"
    assert session.url == body["url"]
    assert session.customer_email == "jane@example.com"
    assert session.locale == "de"
    assert session.allow_promotion_codes is True
    assert session.success_url == f"{STOREFRONT}/de/success.html?session_id={{CHECKOUT_SESSION_ID}}"
    assert session.cancel_url == f"{STOREFRONT}/de/cancel.html"
    assert session.metadata.to_dict() == {
        "product_id": "genx", "ref": "friend-1", "storefront_version": "1", "locale": "de",
    }  # fmt: skip
    assert session.client_reference_id
    items = stripe_client.v1.checkout.sessions.line_items.list(body["id"])
    assert [item.price.id for item in items.data] == [price_id]


CLICK = "c1ick-0123456789abcdefghij"  # as the storefront makes one: 22+ base64url chars


def checkout_from(network: str, **body: Any) -> str:
    """The session id a buyer at `network` (the client address) gets for `body`."""
    answer = client_of("checkout").post(
        "/", data=json.dumps(body), headers=JSON_HEADERS, environ_base={"REMOTE_ADDR": network}
    )
    assert answer.status_code == 200, answer.get_data(as_text=True)
    session_id: str = answer.get_json()["id"]
    return session_id


def test_a_double_click_returns_the_same_session(container):
    first = start_checkout(email="jane@example.com", click_id=CLICK)
    second = start_checkout(email="jane@example.com", click_id=CLICK)
    assert first["id"] == second["id"]


def test_two_buyers_behind_one_nat_clicking_together_get_two_sessions(container, stripe_client):
    """Same network, same moment, same (empty) form: only the click ids differ."""
    first = checkout_from("198.51.100.7", locale="en", click_id="buyer-one-click-0000000001")
    second = checkout_from("198.51.100.7", locale="en", click_id="buyer-two-click-0000000002")

    assert first != second
    references = {
        stripe_client.v1.checkout.sessions.retrieve(s).client_reference_id for s in (first, second)
    }
    assert len(references) == 2


def test_a_click_id_replayed_from_another_network_is_another_session(container):
    here = checkout_from("198.51.100.7", click_id=CLICK)
    again = checkout_from("198.51.100.7", click_id=CLICK)
    elsewhere = checkout_from("203.0.113.9", click_id=CLICK)

    assert here == again
    assert elsewhere != here


def test_without_a_click_id_every_request_is_its_own_session(container):
    """A browser that ran no script sends no id: no key of ours, never a shared one."""
    first = checkout_from("198.51.100.7", locale="en")
    second = checkout_from("198.51.100.7", locale="en")

    assert first != second


def test_a_form_post_carries_the_click_id_of_the_inline_script(container):
    body = {"locale": "en", "click_id": CLICK}
    first = client_of("checkout").post("/", data=body)
    second = client_of("checkout").post("/", data=body)
    without = client_of("checkout").post("/", data={"locale": "en", "click_id": ""})

    assert first.status_code == second.status_code == without.status_code == 303
    assert first.headers["Location"] == second.headers["Location"]
    assert without.headers["Location"] != first.headers["Location"]


def test_a_form_post_is_redirected_to_the_payment_page(container):
    answer = client_of("checkout").post("/", data={"locale": "en", "email": ""})

    assert answer.status_code == 303
    assert answer.headers["Location"].startswith("http")


@pytest.mark.parametrize(
    ("body", "content_type", "status", "code"),
    [
        ("{not json", "application/json", 400, "invalid_json"),
        ('["a list"]', "application/json", 400, "invalid_request"),
        ('{"email": 5}', "application/json", 400, "invalid_request"),
        ('{"email": "not-an-address"}', "application/json", 400, "invalid_request"),
        ('{"locale": "fr"}', "application/json", 400, "invalid_request"),
        ('{"ref": "../../etc"}', "application/json", 400, "invalid_request"),
        ('{"price": "price_cheap"}', "application/json", 400, "invalid_request"),
        ('{"click_id": "short"}', "application/json", 400, "invalid_request"),
        ('{"click_id": "' + "x" * 65 + '"}', "application/json", 400, "invalid_request"),
        ('{"click_id": "has space 0123456789abcdef"}', "application/json", 400, "invalid_request"),
        ('{"click_id": 12345678901234567890123}', "application/json", 400, "invalid_request"),
        ('{"ref": "' + "x" * 4000 + '"}', "application/json", 413, "payload_too_large"),
        ("email=a@example.com", "text/plain", 415, "unsupported_media_type"),
    ],
)
def test_bad_checkout_input_is_refused_with_a_stable_code(
    container, body, content_type, status, code
):
    answer = client_of("checkout").post(
        "/", data=body, headers={"Content-Type": content_type, "Origin": STOREFRONT}
    )

    assert answer.status_code == status
    assert answer.get_json()["error"] == code
    assert "Traceback" not in answer.get_data(as_text=True)


def test_an_unreachable_payment_provider_answers_502(make_container):
    make_container(stripe_api_base="http://127.0.0.1:9")  # discard port: nothing listens

    answer = client_of("checkout").post("/", data="{}", headers=JSON_HEADERS)

    assert answer.status_code == 502
    assert answer.get_json()["error"] == "payment_provider_error"


def test_a_refused_price_answers_502_with_a_clear_message(make_container):
    make_container(stripe_price_id="price_does_not_exist")

    answer = client_of("checkout").post("/", data="{}", headers=JSON_HEADERS)

    assert answer.status_code == 502
    body = answer.get_json()
    assert body["error"] == "payment_provider_error"
    assert "refused" in body["detail"]


def test_too_many_checkouts_from_one_network_answer_429_with_retry_after(make_container):
    make_container(checkout_rate_limit=2)
    client = client_of("checkout")
    for locale in ("en", "de"):
        assert (
            client.post("/", json={"locale": locale}, headers={"Origin": STOREFRONT}).status_code
            == 200
        )

    answer = client.post("/", json={}, headers={"Origin": STOREFRONT})

    assert answer.status_code == 429
    assert answer.get_json()["error"] == "rate_limited"
    assert int(answer.headers["Retry-After"]) >= 1


def test_cors_allows_the_storefront_and_refuses_other_origins(container):
    client = client_of("checkout")
    allowed = client.options(
        "/", headers={"Origin": STOREFRONT, "Access-Control-Request-Method": "POST"}
    )
    refused = client.options(
        "/", headers={"Origin": "https://evil.test", "Access-Control-Request-Method": "POST"}
    )
    foreign_post = client.post("/", json={}, headers={"Origin": "https://evil.test"})

    assert allowed.status_code == 204
    assert allowed.headers["Access-Control-Allow-Origin"] == STOREFRONT
    assert refused.status_code == 403
    assert "Access-Control-Allow-Origin" not in foreign_post.headers


def test_checkout_refuses_get(container):
    assert client_of("checkout").get("/").status_code == 405


# -- webhook -----------------------------------------------------------------------------------


def order_of(container: Container, session_id: str) -> Any:
    return container.orders.get(session_id)


def test_a_purchase_through_the_pay_page_fulfils_once_and_a_refund_revokes(
    container, double, webhook_url, email_queue
):
    session_id = start_checkout(email="jane@example.com")["id"]

    double.control(f"sessions/{session_id}/pay", outcome="paid")

    order = wait_until(
        lambda: (o := order_of(container, session_id)) and o.state is OrderState.FULFILLED and o,
        "order fulfilled",
    )
    (license_,) = container.licenses.by_order(session_id)
    assert license_.status is LicenseStatus.ACTIVE
    assert len(container.download_tokens.by_order(session_id)) == 1
    job = container.email_jobs.get(fulfillment_job_id(session_id))
    assert job.state is EmailJobState.PENDING
    assert email_queue.job_ids == [job.id]
    assert order.payment_intent_id

    double.control(f"sessions/{session_id}/refund")

    wait_until(
        lambda: order_of(container, session_id).state is OrderState.REFUNDED, "order refunded"
    )
    assert container.licenses.by_order(session_id)[0].status is LicenseStatus.REVOKED
    assert all(g.revoked for g in container.download_tokens.by_order(session_id))


def test_a_delayed_payment_is_pending_first_and_fulfilled_when_it_succeeds(
    container, double, webhook_url
):
    session_id = start_checkout(email="sepa@example.com")["id"]

    double.control(f"sessions/{session_id}/pay", outcome="async_success")

    wait_until(
        lambda: (o := order_of(container, session_id)) and o.state is OrderState.FULFILLED,
        "delayed payment fulfilled",
    )
    assert len(container.licenses.by_order(session_id)) == 1


def test_a_real_event_delivered_ten_times_at_once_yields_one_license(container, double):
    session_id = start_checkout(email="jane@example.com")["id"]
    double.control(f"sessions/{session_id}/pay", outcome="paid")  # no webhook URL: kept
    (event,) = double.events("checkout.session.completed")
    # One app for every thread (as one function instance serves concurrent requests),
    # and one unsigned request first: Flask/werkzeug compile their routing when an app
    # is created and on its first request, which is not thread-safe on CPython 3.11 (a
    # SystemError in one thread now and then: seen when each delivery built its own
    # app); the test is about concurrent deliveries, not that.
    webhook = client_of("stripe_webhook")
    assert webhook.post("/", data=b"{}").status_code == 400
    barrier = threading.Barrier(10)
    statuses: list[list[int]] = []

    def deliver_like_stripe() -> None:
        barrier.wait()
        seen = []
        for _ in range(50):
            status = signed_post(event, client=webhook).status_code
            seen.append(status)
            if status < 500:
                break
        statuses.append(seen)

    run_copies(deliver_like_stripe, 10)

    assert [seen[-1] for seen in statuses] == [200] * 10
    assert len(container.licenses.by_order(session_id)) == 1
    assert len(container.download_tokens.by_order(session_id)) == 1
    assert len(container.email_jobs.in_state(EmailJobState.PENDING)) == 1


def test_a_refund_seen_before_completion_prevents_the_license(container, double):
    session_id = start_checkout(email="jane@example.com")["id"]
    double.control(f"sessions/{session_id}/pay", outcome="paid")
    double.control(f"sessions/{session_id}/refund")
    (completed,) = double.events("checkout.session.completed")
    (refunded,) = double.events("charge.refunded")

    # The order does not exist yet: the function asks Stripe (the double) for the session.
    assert signed_post(refunded).get_json()["outcome"] == "refunded"
    assert signed_post(completed).get_json()["outcome"] == "blocked"

    assert order_of(container, session_id).state is OrderState.REFUNDED
    assert container.licenses.by_order(session_id) == []


@pytest.mark.parametrize("forgery", ["wrong-secret", "stale", "missing", "tampered"])
def test_a_forged_or_replayed_event_changes_nothing(container, forgery):
    event = se.event("checkout.session.completed", se.checkout_session())
    if forgery == "wrong-secret":
        answer = signed_post(event, secret="whsec_forged")
    elif forgery == "stale":
        answer = signed_post(event, timestamp=int(time.time()) - 3600)
    else:
        payload, header = se.signed(event, WEBHOOK_SECRET)
        if forgery == "tampered":
            payload = payload.replace(b'"paid"', b'"PAID"')
        headers = {"Content-Type": "application/json"}
        if forgery != "missing":
            headers["Stripe-Signature"] = header
        answer = client_of("stripe_webhook").post("/", data=payload, headers=headers)

    assert answer.status_code == 400
    assert answer.get_json()["error"] == "invalid_signature"
    assert container.orders.get(event["data"]["object"]["id"]) is None
    assert container.webhook_events.get(event["id"]) is None


def test_without_a_signing_secret_the_webhook_is_disabled(container, secret_values):
    del secret_values["STRIPE_WEBHOOK_SECRET"]

    answer = signed_post(se.event("checkout.session.completed", se.checkout_session()))

    assert answer.status_code == 503
    assert answer.get_json()["error"] == "webhook_disabled"


# -- fulfil only what was paid (the official library asks the double) -------------------------


def session_on_the_double(stripe_client: stripe.StripeClient, **params: Any) -> str:
    """A session created at Stripe outside our checkout, carrying our product metadata."""
    session = stripe_client.v1.checkout.sessions.create(
        {
            "mode": "payment",
            "success_url": "http://elsewhere.test/ok",
            "metadata": {"product_id": "genx", "locale": "en", "ref": ""},
            **params,
        }
    )
    return session.id


def test_a_signed_event_for_a_session_stripe_never_created_is_rejected_with_a_2xx(
    container, double
):
    event = se.event("checkout.session.completed", se.checkout_session())
    session_id = event["data"]["object"]["id"]

    answer = signed_post(event)

    assert answer.status_code == 200
    assert answer.get_json()["outcome"] == "rejected"
    order = order_of(container, session_id)
    assert (order.state, order.rejection_reason) == (OrderState.REJECTED, "unknown_session")
    assert container.licenses.by_order(session_id) == []


@pytest.mark.parametrize(
    ("line_item", "reason"),
    [
        ({"price_data": {"currency": "eur", "unit_amount": 1, "product": "genx"}}, "wrong_price"),
        ({"price_data": {"currency": "jpy", "unit_amount": 1, "product": "genx"}}, "wrong_price"),
        ({"quantity": 2}, "wrong_quantity"),
    ],
    ids=["another-price", "1-jpy", "two-licenses"],
)
def test_a_paid_session_made_outside_our_checkout_is_rejected(
    container, double, stripe_client, price_id, line_item, reason
):
    item = {"price": price_id, "quantity": 1, **line_item}
    if "price_data" in item:
        del item["price"]
    session_id = session_on_the_double(stripe_client, line_items=[item])
    double.control(f"sessions/{session_id}/pay", outcome="paid")
    (completed,) = double.events("checkout.session.completed")

    answer = signed_post(completed)

    assert (answer.status_code, answer.get_json()["outcome"]) == (200, "rejected")
    order = order_of(container, session_id)
    assert (order.state, order.rejection_reason) == (OrderState.REJECTED, reason)
    assert container.licenses.by_order(session_id) == []
    assert container.email_jobs.in_state(EmailJobState.PENDING) == []


@pytest.mark.parametrize(
    ("coupon", "giveaways", "outcome", "amount"),
    [
        ({"percent_off": 20}, False, "fulfilled", 3920),
        ({"percent_off": 100}, False, "rejected", 0),
        ({"percent_off": 100}, True, "fulfilled", 0),
    ],
    ids=["20-percent-off", "free-giveaways-off", "free-giveaways-on"],
)
def test_a_discount_stripe_reports_is_honoured_and_free_orders_need_the_setting(
    make_container, double, stripe_client, price_id, coupon, giveaways, outcome, amount
):
    container = make_container(allow_giveaways=giveaways)
    code = stripe_client.v1.coupons.create(coupon).id
    session_id = session_on_the_double(
        stripe_client,
        line_items=[{"price": price_id, "quantity": 1}],
        discounts=[{"coupon": code}],
    )
    double.control(f"sessions/{session_id}/pay", outcome="paid")
    (completed,) = double.events("checkout.session.completed")

    assert signed_post(completed).get_json()["outcome"] == outcome

    order = order_of(container, session_id)
    assert order.amount_total == amount
    if outcome == "rejected":
        assert order.rejection_reason == "giveaway_not_allowed"
        assert container.licenses.by_order(session_id) == []
    else:
        assert len(container.licenses.by_order(session_id)) == 1
    giveaway_audits = [
        d.to_dict() for d in container.db.collection("audit_log").stream()
        if d.to_dict()["action"] == "order.giveaway"
    ]  # fmt: skip
    assert len(giveaway_audits) == (1 if amount == 0 and giveaways else 0)


def test_the_webhook_answers_503_when_stripe_cannot_be_asked_and_fulfils_on_retry(
    make_container, double
):
    make_container()
    session_id = start_checkout(email="jane@example.com")["id"]
    double.control(f"sessions/{session_id}/pay", outcome="paid")
    (completed,) = double.events("checkout.session.completed")
    unreachable = make_container(stripe_api_base="http://127.0.0.1:9")  # nothing listens

    answer = signed_post(completed)

    assert answer.status_code == 503
    assert answer.get_json()["error"] == "payment_provider_unavailable"
    assert unreachable.orders.get(session_id) is None
    make_container()
    assert signed_post(completed).get_json()["outcome"] == "fulfilled"


# -- reconcile ---------------------------------------------------------------------------------


def test_reconcile_fulfils_paid_sessions_whose_webhook_was_missed(container, double, caplog):
    paid_id = start_checkout(email="missed@example.com")["id"]
    double.control(f"sessions/{paid_id}/pay", outcome="paid")  # nobody listens
    start_checkout(email="abandoned@example.com", locale="de")  # open, never paid

    first = client_of("reconcile").post("/", json={"days": 2})
    second = client_of("reconcile").post("/", json={})

    assert first.status_code == 200
    assert first.get_json()["repaired"] == 1
    assert first.get_json()["repaired_sessions"] == [paid_id]
    assert first.get_json()["examined"] == 2
    assert second.get_json()["repaired"] == 0
    assert second.get_json()["already_fulfilled"] == 1
    assert order_of(container, paid_id).state is OrderState.FULFILLED
    assert len(container.licenses.by_order(paid_id)) == 1
    repaired_logs = [r for r in caplog.records if getattr(r, "event", "") == "reconcile.repaired"]
    assert [r.count for r in repaired_logs] == [1]


def test_reconcile_repairs_a_missed_refund_and_a_missed_dispute(container, double):
    refunded_id = start_checkout(email="refund@example.com")["id"]
    disputed_id = start_checkout(email="dispute@example.com")["id"]
    for session_id in (refunded_id, disputed_id):
        double.control(f"sessions/{session_id}/pay", outcome="paid")  # nobody listens
    assert client_of("reconcile").post("/", json={}).get_json()["repaired"] == 2
    double.control(f"sessions/{refunded_id}/refund")  # charge.refunded: missed
    double.control(f"sessions/{disputed_id}/dispute")  # charge.dispute.created: missed

    first = client_of("reconcile").post("/", json={}).get_json()
    second = client_of("reconcile").post("/", json={}).get_json()

    assert (first["refunds_applied"], first["disputes_applied"]) == (1, 1)
    assert (second["refunds_applied"], second["disputes_applied"]) == (0, 0)
    assert order_of(container, refunded_id).state is OrderState.REFUNDED
    assert container.licenses.by_order(refunded_id)[0].status is LicenseStatus.REVOKED
    assert all(g.revoked for g in container.download_tokens.by_order(refunded_id))
    assert order_of(container, disputed_id).state is OrderState.DISPUTED
    assert container.licenses.by_order(disputed_id)[0].status is LicenseStatus.SUSPENDED
    (late,) = double.events("charge.refunded")
    assert signed_post(late).get_json()["outcome"] == "already_applied"


def test_reconcile_never_fulfils_a_session_refunded_before_its_webhooks_arrived(container, double):
    session_id = start_checkout(email="gone@example.com")["id"]
    double.control(f"sessions/{session_id}/pay", outcome="paid")
    double.control(f"sessions/{session_id}/refund")  # both webhooks missed

    report = client_of("reconcile").post("/", json={}).get_json()

    assert (report["repaired"], report["blocked"]) == (0, 1)
    assert order_of(container, session_id).state is OrderState.REFUNDED
    assert container.licenses.by_order(session_id) == []
    assert container.email_jobs.in_state(EmailJobState.PENDING) == []


def test_an_early_fraud_warning_from_the_double_suspends_the_license(container, double):
    session_id = start_checkout(email="jane@example.com")["id"]
    double.control(f"sessions/{session_id}/pay", outcome="paid")
    (completed,) = double.events("checkout.session.completed")
    assert signed_post(completed).get_json()["outcome"] == "fulfilled"
    double.control(f"sessions/{session_id}/early_fraud_warning")
    (warned,) = double.events("radar.early_fraud_warning.created")

    answer = signed_post(warned)

    assert (answer.status_code, answer.get_json()["outcome"]) == (200, "suspended")
    (license_,) = container.licenses.by_order(session_id)
    assert (license_.status, license_.status_reason) == (
        LicenseStatus.SUSPENDED,
        "early_fraud_warning",
    )
    assert order_of(container, session_id).fraud_warning_id == warned["data"]["object"]["id"]


def test_reconcile_refuses_unknown_fields(container):
    answer = client_of("reconcile").post("/", json={"days": "all"})
    assert answer.status_code == 400


@pytest.mark.parametrize("body", [{"day": 7}, {"trigger": "cron"}, {"trigger": None, "x": 1}])
def test_reconcile_refuses_typos_and_unknown_triggers(container, body):
    answer = client_of("reconcile").post("/", json=body)
    assert answer.status_code == 400
    assert answer.get_json()["error"] == "invalid_request"


def test_reconcile_accepts_the_scheduler_trigger_beside_days(container, double):
    answer = client_of("reconcile").post("/", json={"trigger": "scheduler", "days": 1})
    assert answer.status_code == 200
    assert answer.get_json()["days"] == 1


# -- stripe setup ------------------------------------------------------------------------------


def test_stripe_setup_is_idempotent_and_replaces_the_price_when_the_amount_changes(
    stripe_client,
):
    first = ensure_catalog(stripe_client)
    again = ensure_catalog(stripe_client)
    changed = ensure_catalog(stripe_client, unit_amount=5900)

    assert again.price_id == first.price_id
    assert not again.price_created
    assert changed.price_id != first.price_id
    assert stripe_client.v1.prices.retrieve(first.price_id).active is False
    current = stripe_client.v1.prices.list({"lookup_keys": ["genx_standard"]}).data
    assert [price.id for price in current] == [changed.price_id]


def test_the_reconcile_command_prints_what_it_repaired(container, double):
    from typer.testing import CliRunner

    from commerce.cli import app

    paid_id = start_checkout(email="missed@example.com")["id"]
    double.control(f"sessions/{paid_id}/pay", outcome="paid")

    result = CliRunner().invoke(app, ["reconcile", "--json", "--days", "1"])

    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["repaired_sessions"] == [paid_id]  # the banner is on stderr
    assert order_of(container, paid_id).state is OrderState.FULFILLED


def test_reconcile_reads_every_page_of_stripes_lists(container, double, monkeypatch):
    paid = [start_checkout(email=f"page{n}@example.com")["id"] for n in range(5)]
    for session_id in paid:
        double.control(f"sessions/{session_id}/pay", outcome="paid")  # nobody listens
    for session_id in paid[:3]:
        double.control(f"sessions/{session_id}/refund")  # charge.refunded: missed
    asked: list[dict[str, Any]] = []
    call = StripeGateway._call

    def counted(self: StripeGateway, method: str, path: str, params: Any = None, **kw: Any) -> Any:
        asked.append({"path": path, **(params or {})})
        return call(self, method, path, params, **kw)

    monkeypatch.setattr(StripeGateway, "_call", counted)
    monkeypatch.setattr(gateway, "LIST_PAGE_SIZE", 2)

    report = client_of("reconcile").post("/", json={}).get_json()

    assert (report["examined"], report["paid"], report["blocked"]) == (5, 5, 3)
    assert report["repaired"] == 2
    assert report["refunds_examined"] == 3
    session_pages = [a for a in asked if a["path"] == "/v1/checkout/sessions" and "created" in a]
    assert [page.get("starting_after") is None for page in session_pages] == [True, False, False]
    assert all(page["limit"] == 2 for page in session_pages)
    assert len([a for a in asked if a["path"] == "/v1/refunds"]) == 2


_GATEWAY_PROBE = """
import json, sys
from commerce.purchase.gateway import StripeGateway
from commerce.secrets import EnvSecrets
from datetime import UTC, datetime, timedelta
api_base, key, price, watched = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4].split(",")
gw = StripeGateway(EnvSecrets({"STRIPE_SECRET_KEY": key}), api_base)
created = gw.create_checkout_session({
    "mode": "payment", "line_items": [{"price": price, "quantity": 1}],
    "success_url": "http://shop.test/ok", "cancel_url": "http://shop.test/no",
}, "probe-key-0001")
since = datetime.now(UTC) - timedelta(days=1)
answers = {
    "created": created["object"],
    "retrieved": gw.session_with_line_items(created["id"])["line_items"]["object"],
    "unknown": gw.session_with_line_items("cs_test_never_created"),
    "listed": [s["id"] for s in gw.sessions_created_since(since)].count(created["id"]),
    "refunds": list(gw.refunds_created_since(since)),
    "disputes": list(gw.disputes_created_since(since)),
}
print(json.dumps({"answers": answers, "loaded": [m for m in watched if m in sys.modules]}))
"""
_RESOURCE_MODULES = (
    "stripe.checkout._session",
    "stripe._refund",
    "stripe._dispute",
    "stripe._charge",
    "stripe._payment_intent",
    "stripe._line_item",
)


def test_the_gateway_answers_plain_json_without_loading_stripes_resource_classes(double, price_id):
    """Fresh interpreter: the calls go through the official client (its transport,
    retries and errors) but never build its typed objects, whose modules are the largest
    part of `stripe` at a cold start (docs/performance.md, "Cold start")."""
    result = subprocess.run(
        [sys.executable, "-c", _GATEWAY_PROBE, double.url, STRIPE_KEY, price_id,
         ",".join(_RESOURCE_MODULES)],
        capture_output=True, text=True, timeout=120, cwd=REPO, check=False,
        env={**os.environ, "PYTHONPATH": f"{REPO}:{REPO / 'shared'}"},
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    outcome = json.loads(result.stdout.strip().splitlines()[-1])

    assert outcome["answers"] == {
        "created": "checkout.session",
        "retrieved": "list",
        "unknown": None,
        "listed": 1,
        "refunds": [],
        "disputes": [],
    }
    assert outcome["loaded"] == []
