"""The double and the test builders hold to Stripe's shape, not to our guess of it.

Two sources this project did not write: Stripe's published fixtures (field names and
JSON types per resource, extracted into stripe_fields.json by stripe_fields.py) and
the official library's resource classes (generated from Stripe's OpenAPI spec; they
also declare the expandable and optional fields the fixtures leave out, such as a
session's `line_items` or a fraud warning's `payment_intent`). Every field the double
or a builder produces must be one Stripe has, with the fixture's JSON type where both
are set; and every field our code reads must exist in Stripe's objects.
"""

from __future__ import annotations

from typing import Any

import pytest
import stripe

from tests.purchase import stripe_events as se

from .conftest import Double
from .stripe_fields import json_type, load

FIXTURE = load()
LIBRARY = {
    "checkout.session": stripe.checkout.Session,
    "item": stripe.LineItem,
    "price": stripe.Price,
    "payment_intent": stripe.PaymentIntent,
    "charge": stripe.Charge,
    "refund": stripe.Refund,
    "dispute": stripe.Dispute,
    "radar.early_fraud_warning": stripe.radar.EarlyFraudWarning,
    "event": stripe.Event,
}
# What shared/commerce reads from each object (purchase/verification.py, schemas.py,
# webhooks.py, reconciliation.py).
READ_BY_US = {
    "checkout.session": {
        "id", "status", "payment_status", "mode", "livemode", "currency", "amount_subtotal",
        "amount_total", "total_details", "line_items", "metadata", "customer_details",
        "customer_email", "locale", "payment_intent",
    },
    "item": {"price", "quantity", "currency"},
    "price": {"id", "unit_amount"},
    "payment_intent": {"id", "latest_charge"},
    "charge": {"id", "amount", "amount_refunded", "refunded", "payment_intent"},
    "refund": {"charge"},
    "dispute": {"id", "status", "payment_intent", "charge"},
    "radar.early_fraud_warning": {"id", "charge", "payment_intent", "fraud_type", "actionable"},
    "event": {"id", "type", "data"},
}  # fmt: skip


def stripe_fields(resource: str) -> set[str]:
    declared = set(getattr(LIBRARY[resource], "__annotations__", {})) - {"OBJECT_NAME"}
    return set(FIXTURE[resource]) | declared


def assert_stripe_shaped(resource: str, obj: dict[str, Any]) -> None:
    unknown = set(obj) - stripe_fields(resource)
    assert not unknown, f"{resource}: fields Stripe does not have: {sorted(unknown)}"
    for name, value in obj.items():
        expected = FIXTURE[resource].get(name, "null")
        if value is None or expected == "null" or (isinstance(value, dict) and "object" in value):
            continue  # unset on one side, or an expanded object in place of its id
        assert json_type(value) == expected, f"{resource}.{name}: {json_type(value)} != {expected}"


@pytest.mark.parametrize("resource", sorted(READ_BY_US))
def test_every_field_we_read_exists_in_stripes_objects(resource: str) -> None:
    assert READ_BY_US[resource] <= stripe_fields(resource)


def test_the_event_builders_are_stripe_shaped() -> None:
    session = se.checkout_session()
    retrieved = se.as_retrieved(session)
    (item,) = retrieved["line_items"]["data"]
    charge = se.charge("pi_1", amount_refunded=4900)

    assert_stripe_shaped("checkout.session", retrieved)
    assert_stripe_shaped("item", item)
    assert_stripe_shaped("price", item["price"])
    assert_stripe_shaped("charge", charge)
    assert_stripe_shaped("refund", se.refund(charge))
    assert_stripe_shaped("dispute", se.dispute("pi_1"))
    assert_stripe_shaped("radar.early_fraud_warning", se.early_fraud_warning("ch_1", "pi_1"))
    assert_stripe_shaped("event", se.event("checkout.session.completed", session))


def test_the_doubles_objects_are_stripe_shaped(
    client: stripe.StripeClient, open_session: stripe.checkout.Session, stripe_double: Double
) -> None:
    stripe_double.control(f"sessions/{open_session.id}/pay", outcome="paid").raise_for_status()
    stripe_double.control(f"sessions/{open_session.id}/refund", amount="100").raise_for_status()
    stripe_double.control(f"sessions/{open_session.id}/dispute").raise_for_status()
    stripe_double.control(f"sessions/{open_session.id}/early_fraud_warning").raise_for_status()

    session = client.v1.checkout.sessions.retrieve(
        open_session.id, {"expand": ["line_items"]}
    ).to_dict(for_json=True)
    intent = client.v1.payment_intents.retrieve(session["payment_intent"]).to_dict(for_json=True)
    charge = client.v1.charges.retrieve(intent["latest_charge"]).to_dict(for_json=True)
    (refund,) = client.v1.refunds.list().to_dict(for_json=True)["data"]
    (dispute,) = client.v1.disputes.list().to_dict(for_json=True)["data"]
    (warning,) = client.v1.radar.early_fraud_warnings.list().to_dict(for_json=True)["data"]
    events = [e.to_dict(for_json=True) for e in client.v1.events.list({"limit": 100}).data]

    assert_stripe_shaped("checkout.session", session)
    for item in session["line_items"]["data"]:
        assert_stripe_shaped("item", item)
        assert_stripe_shaped("price", item["price"])
    assert_stripe_shaped("payment_intent", intent)
    assert_stripe_shaped("charge", charge)
    assert_stripe_shaped("refund", refund)
    assert_stripe_shaped("dispute", dispute)
    assert_stripe_shaped("radar.early_fraud_warning", warning)
    for event in events:
        assert_stripe_shaped("event", event)


def test_a_shape_check_catches_an_invented_field_and_a_wrong_type() -> None:
    with pytest.raises(AssertionError, match="fields Stripe does not have"):
        assert_stripe_shaped("checkout.session", {**se.checkout_session(), "amount": 1})
    with pytest.raises(AssertionError, match="created: string != integer"):
        assert_stripe_shaped("checkout.session", {**se.checkout_session(), "created": "1"})
