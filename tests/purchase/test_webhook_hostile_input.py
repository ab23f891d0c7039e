"""The `stripe_webhook` function against hostile or malformed deliveries, through
functions-framework's test client, on Google's Firestore emulator: every one is a 400
with a stable code, nothing but an audit entry is written, never a 5xx (which Stripe
would retry for three days)."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import functions_framework
import pytest
import stripe

from commerce.bootstrap import Container, use_container
from tests.purchase import stripe_events as se
from tests.purchase.conftest import WEBHOOK_SECRET, count_documents, stripe_knows

SOURCE = str(Path(__file__).resolve().parents[2] / "functions" / "main.py")


@pytest.fixture
def webhook(container: Container) -> Iterator[Any]:
    use_container(container)
    yield functions_framework.create_app("stripe_webhook", SOURCE).test_client()
    use_container(None)


def post(client: Any, payload: bytes, header: str) -> Any:
    return client.post(
        "/", data=payload, headers={"Stripe-Signature": header, "Content-Type": "application/json"}
    )


def signed_raw(payload: bytes, timestamp: int | None = None) -> tuple[bytes, str]:
    header = stripe.WebhookSignature.generate_signature_header(
        payload.decode(), WEBHOOK_SECRET, timestamp
    )
    return payload, header


def refused(answer: Any, code: str) -> dict[str, Any]:
    assert answer.status_code == 400, answer.get_data(as_text=True)
    body: dict[str, Any] = answer.get_json()
    assert body["error"] == code
    assert set(body) == {"error", "detail"}
    return body


def audit_entries(container: Container) -> list[Any]:
    return container.audit_log.recent(action="webhook.refused")


def test_a_well_formed_event_is_still_fulfilled(container, webhook):
    evt = se.event("checkout.session.completed", se.checkout_session())
    stripe_knows(container.stripe_gateway, evt)  # Stripe created it (verified before fulfilling)
    answer = post(webhook, *se.signed(evt, WEBHOOK_SECRET))
    assert answer.status_code == 200
    assert answer.get_json()["outcome"] == "fulfilled"


@pytest.mark.parametrize(
    "header",
    [
        "t=1,v1=" + "\u00e9" * 64,  # bytes 0xC3 0xA9 ... as werkzeug hands them over
        "t=\u0661\u0662,v1=" + "a" * 64,
        "t=1,t=2,v1=" + "a" * 64,
        "\u00ff" * 300,
        "t=1,v1=" + "a" * 64 + ",v1=zz",
    ],
)
def test_a_malformed_signature_header_is_a_400_and_writes_nothing(container, webhook, header):
    payload, _ = se.signed(se.event("checkout.session.completed", se.checkout_session()),
                           WEBHOOK_SECRET)  # fmt: skip
    refused(post(webhook, payload, header), "invalid_signature")
    assert count_documents(container.db) == {}


def test_non_ascii_header_bytes_on_the_wire_are_a_400(container, webhook):
    payload, header = se.signed(se.event("customer.created", {"id": "cus_1"}), WEBHOOK_SECRET)
    environ = {"HTTP_STRIPE_SIGNATURE": header.replace("v1=", "v1=\xc3\xa9", 1)}
    answer = webhook.post("/", data=payload, environ_overrides=environ)
    refused(answer, "invalid_signature")


def test_a_signature_dated_an_hour_ahead_is_refused(container, webhook):
    payload, header = se.signed(se.event("checkout.session.completed", se.checkout_session()),
                                WEBHOOK_SECRET, timestamp=int(time.time()) + 3600)  # fmt: skip
    body = refused(post(webhook, payload, header), "invalid_signature")
    assert "future" in body["detail"]
    assert count_documents(container.db) == {}


def test_a_signature_a_minute_ahead_is_within_the_skew(container, webhook):
    payload, header = se.signed(se.event("customer.created", {"id": "cus_1"}), WEBHOOK_SECRET,
                                timestamp=int(time.time()) + 60)  # fmt: skip
    assert post(webhook, payload, header).status_code == 200


@pytest.mark.parametrize(
    ("session_id", "what"),
    [
        ("cs_test_a/b", "slash"),
        ("cs_test_" + "x" * 1600, "over 1,500 bytes"),
        ("cs_test_..", "dots"),
    ],
)
def test_a_signed_event_whose_session_id_cannot_be_stripes_is_refused_and_audited(
    container, webhook, session_id, what
):
    evt = se.event("checkout.session.completed", se.checkout_session(session_id))
    refused(post(webhook, *se.signed(evt, WEBHOOK_SECRET)), "invalid_stripe_id")

    (entry,) = audit_entries(container)
    assert entry.event_id == evt["id"]
    assert entry.details == {
        "reason": "invalid_stripe_id",
        "field": "data.object.id",
        "stripe_event_type": "checkout.session.completed",
    }
    assert session_id not in json.dumps(entry.model_dump(mode="json"))
    assert count_documents(container.db) == {"audit_log": 1}, what


def test_a_signed_event_whose_own_id_is_malformed_is_audited_without_it(container, webhook):
    evt = se.event("customer.created", {"id": "cus_1"}, event_id="evt_" + "/" * 2000)
    refused(post(webhook, *se.signed(evt, WEBHOOK_SECRET)), "invalid_stripe_id")
    (entry,) = audit_entries(container)
    assert entry.event_id is None
    assert entry.details["field"] == "id"


def test_a_refund_whose_payment_intent_is_malformed_is_refused(container, webhook):
    evt = se.event("charge.refunded", se.charge("pi_" + "a" * 300))
    refused(post(webhook, *se.signed(evt, WEBHOOK_SECRET)), "invalid_stripe_id")
    assert audit_entries(container)[0].details["field"] == "data.object.payment_intent"


@pytest.mark.parametrize(
    ("payload", "code"),
    [
        (b"[" * 5000 + b"]" * 5000, "body_too_deep"),
        (b'{"id": "evt_1", "n": ' + b"9" * 5000 + b"}", "number_too_long"),
        (b'{"id": "evt_1", "type": "\\ud800"}', "invalid_encoding"),
        (b'{"id": "evt_1", "id": "evt_2"}', "invalid_json"),
        (b'["not an event"]', "invalid_event"),
    ],
)
def test_a_signed_body_that_is_not_strict_json_is_refused_and_audited(
    container, webhook, payload, code
):
    refused(post(webhook, *signed_raw(payload)), code)
    (entry,) = audit_entries(container)
    assert entry.details["reason"] == code


def test_an_unsigned_malformed_body_is_refused_without_an_audit_entry(container, webhook):
    answer = post(webhook, b"[" * 5000, "t=1,v1=" + "a" * 64)
    refused(answer, "invalid_signature")
    assert count_documents(container.db) == {}
