"""Shapes of what Stripe sends (`commerce.purchase.stripe_shapes`): the Stripe-Signature
header and the ids that become document ids. The good ids are those of Stripe's own
published fixtures (stripe/openapi, openapi/fixtures3.json, `resources`)."""

from __future__ import annotations

import contextlib
import time
from typing import Any

import pytest
import stripe
from hypothesis import given
from hypothesis import strategies as st

from commerce.errors import CommerceError, InvalidSignature
from commerce.purchase import stripe_shapes as shapes
from commerce.purchase.gateway import verify_signature

# Ids of `resources` in Stripe's openapi/fixtures3.json (stripe/openapi @ f6c2a48f).
FIXTURE_IDS = {
    "checkout.session": "cs_test_a1YS1URlnyQCN5fUUduORoQ7Pw41PJqDWkIVQCpJPqkfIhd6tVY8XB1OLY",
    "charge": "ch_1PgafuB7WZ01zgkWXYmPNZs8",
    "dispute": "dp_1Pgc71B7WZ01zgkWMevJiAUx",
    "event": "evt_1Pgc76B7WZ01zgkWwyRHS12y",
    "payment_intent": "pi_1PgafyB7WZ01zgkWSjxsAJo3",
    "refund": "re_1Pgc72B7WZ01zgkWqPvrRrPE",
    "radar.early_fraud_warning": "issfr_1Pgc79B7WZ01zgkWxwDzEIPX",
}
SECRET = "whsec_" + "s" * 32
PAYLOAD = b'{"id": "evt_1"}'


def event(event_type: str, obj: dict[str, Any], event_id: str = FIXTURE_IDS["event"]) -> Any:
    return {"id": event_id, "type": event_type, "data": {"object": obj}}


def session_event(**obj: Any) -> Any:
    return event("checkout.session.completed", {"id": FIXTURE_IDS["checkout.session"], **obj})


def refused_field(evt: Any) -> str:
    with pytest.raises(shapes.MalformedStripeId) as caught:
        shapes.check_event_ids(evt)
    assert caught.value.status == 400
    assert caught.value.code == "invalid_stripe_id"
    return caught.value.field


# -- ids -------------------------------------------------------------------------------


def test_the_ids_of_stripes_published_fixtures_have_the_expected_shapes() -> None:
    ids = FIXTURE_IDS
    assert shapes.is_stripe_id(ids["checkout.session"], shapes.CHECKOUT_SESSION_PREFIXES)
    assert shapes.is_stripe_id(ids["charge"], shapes.CHARGE_PREFIXES)
    assert shapes.is_stripe_id(ids["dispute"], shapes.DISPUTE_PREFIXES)
    assert shapes.is_stripe_id(ids["event"], shapes.EVENT_PREFIXES)
    assert shapes.is_stripe_id(ids["payment_intent"], shapes.PAYMENT_INTENT_PREFIXES)
    assert not shapes.is_stripe_id(ids["refund"], shapes.CHARGE_PREFIXES)
    assert not shapes.is_stripe_id(ids["radar.early_fraud_warning"], shapes.EVENT_PREFIXES)


def test_events_built_from_the_fixture_objects_pass() -> None:
    ids = FIXTURE_IDS
    shapes.check_event_ids(session_event(payment_intent=ids["payment_intent"]))
    shapes.check_event_ids(session_event(payment_intent=None))
    shapes.check_event_ids(
        event("charge.refunded", {"id": ids["charge"], "payment_intent": ids["payment_intent"]})
    )
    shapes.check_event_ids(
        event(
            "charge.dispute.closed",
            {
                "id": ids["dispute"],
                "charge": ids["charge"],
                "payment_intent": ids["payment_intent"],
            },
        )
    )
    shapes.check_event_ids(
        event("radar.early_fraud_warning.created", {"id": ids["radar.early_fraud_warning"]})
    )
    shapes.check_event_ids(event("charge.refunded", {"id": "py_3Pgaf", "payment_intent": None}))
    shapes.check_event_ids(event("charge.dispute.created", {"id": "du_1Pgc7"}))


@pytest.mark.parametrize(
    "bad",
    [
        "evt_1/../x",
        "evt_" + "a" * 252,  # 256 characters
        "evt_",
        "evt_1 2",
        "evt_ü",
        "cs_test_a1YS1",
        "",
        None,
        7,
    ],
)
def test_an_event_id_without_stripes_shape_is_refused(bad: Any) -> None:
    assert refused_field(event("customer.created", {"id": "cus_1"}, event_id=bad)) == "id"


@pytest.mark.parametrize(
    "bad",
    ["cs_test_a/b", "cs_test_" + "x" * 1600, "cs_other_abc", "pi_123", "cs_test_", {"id": 1}],
)
def test_a_session_id_without_stripes_shape_is_refused(bad: Any) -> None:
    assert refused_field(event("checkout.session.completed", {"id": bad})) == "data.object.id"


def test_a_payment_intent_without_stripes_shape_is_refused_also_when_expanded() -> None:
    field = "data.object.payment_intent"
    assert refused_field(session_event(payment_intent="pi_1/2")) == field
    assert refused_field(session_event(payment_intent={"id": "ch_1"})) == field
    charge = {"id": FIXTURE_IDS["charge"], "payment_intent": "x" * 2000}
    assert refused_field(event("charge.refunded", charge)) == field


def test_charge_and_dispute_ids_are_checked_for_the_events_we_act_on() -> None:
    assert refused_field(event("charge.refunded", {"id": "re_1"})) == "data.object.id"
    assert refused_field(event("charge.dispute.created", {"id": "ch_1"})) == "data.object.id"
    dispute = {"id": FIXTURE_IDS["dispute"], "charge": "ch_a/b"}
    assert refused_field(event("charge.dispute.closed", dispute)) == "data.object.charge"


def test_the_objects_of_events_we_only_record_are_not_read() -> None:
    shapes.check_event_ids(event("customer.created", {"id": "weird/but/unused"}))
    shapes.check_event_ids({"id": FIXTURE_IDS["event"], "type": "x", "data": "not an object"})


@given(st.text(max_size=300))
def test_is_stripe_id_accepts_only_prefix_then_word_characters(text: str) -> None:
    accepted = shapes.is_stripe_id(text, shapes.EVENT_PREFIXES)
    tail = text[4:]
    expected = (
        text.startswith("evt_")
        and len(tail) > 0
        and len(text) <= 255
        and all(c.isascii() and (c.isalnum() or c == "_") for c in tail)
    )
    assert accepted == expected


# -- the Stripe-Signature header --------------------------------------------------------


def header_for(payload: bytes, timestamp: int | None = None) -> str:
    header: str = stripe.WebhookSignature.generate_signature_header(
        payload.decode(), SECRET, timestamp
    )
    return header


def test_a_header_as_stripe_writes_it_is_parsed() -> None:
    v1, v0 = "a" * 64, "b" * 64
    parsed = shapes.parse_signature_header(f"t=1492774577,v1={v1},v0={v0},v1={'c' * 64}")
    assert parsed == shapes.SignatureHeader(1492774577, (v1, "c" * 64))


@pytest.mark.parametrize(
    "header",
    [
        "t=1,v1=" + "é" * 64,  # non-ASCII (latin-1 decoded bytes)
        "t=1,v1=" + "\u0661" * 64,
        "t=١٢٣,v1=" + "a" * 64,  # digits int() would take
        "t=1,t=2,v1=" + "a" * 64,  # two timestamps
        "v1=" + "a" * 64,
        "t=1",
        "t=1,v1=xyz",
        "t=1,v1=" + "A" * 64,
        "t=1,v1=" + "a" * 64 + ",",
        "t=1,,v1=" + "a" * 64,
        "t=1 ,v1=" + "a" * 64,
        "t=" + "9" * 13 + ",v1=" + "a" * 64,
        "t=1,v1=" + "a" * 64 + ",v0=" + "b" * 3000,
        "garbage",
        "=",
        "t=1=2,v1=" + "a" * 64,
        "\x00",
    ],
)
def test_a_malformed_header_is_an_invalid_signature(header: str) -> None:
    with pytest.raises(InvalidSignature):
        shapes.parse_signature_header(header)


@given(
    st.integers(min_value=0, max_value=2**40),
    st.text(max_size=80),
    st.sampled_from(["v1", "v0", "t", "x"]),
)
def test_verifying_any_header_shaped_text_is_a_400_never_a_crash(
    timestamp: int, value: str, scheme: str
) -> None:
    with pytest.raises(CommerceError) as caught:
        verify_signature(PAYLOAD, f"t={timestamp},v1={value},{scheme}={value}", SECRET)
    assert caught.value.status == 400


@given(st.text(max_size=200))
def test_parsing_any_header_text_raises_nothing_but_invalid_signature(header: str) -> None:
    with contextlib.suppress(InvalidSignature):
        shapes.parse_signature_header(header)


@given(st.binary(max_size=120))
def test_verifying_any_header_bytes_is_a_400_never_a_crash(raw: bytes) -> None:
    # Werkzeug hands header bytes over decoded as latin-1.
    with pytest.raises(CommerceError) as caught:
        verify_signature(PAYLOAD, raw.decode("latin-1"), SECRET)
    assert caught.value.status == 400


def test_a_signature_from_the_future_beyond_the_skew_is_refused() -> None:
    now = int(time.time())
    header = header_for(PAYLOAD, now + 3600)
    with pytest.raises(InvalidSignature) as caught:
        verify_signature(PAYLOAD, header, SECRET, now=now)
    assert "future" in caught.value.detail
    just_outside = header_for(PAYLOAD, now + shapes.SIGNATURE_FUTURE_SKEW_SECONDS + 1)
    with pytest.raises(InvalidSignature):
        verify_signature(PAYLOAD, just_outside, SECRET, now=now)


def test_a_signature_within_the_skew_is_accepted() -> None:
    now = int(time.time())
    verify_signature(PAYLOAD, header_for(PAYLOAD, now + 60), SECRET, now=now)
    verify_signature(PAYLOAD, header_for(PAYLOAD, now - 60), SECRET, now=now)


def test_a_body_that_is_not_utf8_is_refused_before_any_comparison() -> None:
    with pytest.raises(CommerceError) as caught:
        verify_signature(b"\xff{}", "t=1,v1=" + "a" * 64, SECRET)
    assert caught.value.code == "invalid_encoding"
