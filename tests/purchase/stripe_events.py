"""Stripe-shaped events for tests, signed with the official library.

Field names and shapes follow Stripe's published fixtures (stripe/openapi
`openapi/fixtures3.json`, resources `checkout.session`, `item`, `charge`, `dispute`,
`refund`, `radar.early_fraud_warning`); tests/purchase/test_stripe_shapes.py holds
these builders and the Stripe double to them."""

from __future__ import annotations

import json
import secrets
import time
from typing import Any

import stripe

API_VERSION = "2026-10-28.endive"
PRICE_ID = "price_test_genx"  # tests.purchase.conftest.make_settings: STRIPE_PRICE_ID
PRICE_AMOUNT = 4900


def new_id(prefix: str) -> str:
    return prefix + secrets.token_hex(12)


def checkout_session(
    session_id: str | None = None,
    *,
    payment_status: str = "paid",
    status: str = "complete",
    email: str | None = "buyer@example.com",
    payment_intent: str | None = None,
    product_id: str = "genx",
    locale: str = "en",
    ref: str = "",
    amount_total: int | None = None,
    amount_subtotal: int = PRICE_AMOUNT,
    amount_discount: int = 0,
    currency: str = "eur",
    mode: str = "payment",
    livemode: bool = False,
) -> dict[str, Any]:
    """A session as Stripe sends it in an event (no `line_items`: Stripe includes them
    only when a retrieve expands them; see `line_items`)."""
    metadata = {"product_id": product_id, "ref": ref, "storefront_version": "1", "locale": locale}
    if amount_total is None:
        amount_total = amount_subtotal - amount_discount
    return {
        "id": session_id or new_id("cs_test_"),
        "object": "checkout.session",
        "amount_subtotal": amount_subtotal,
        "amount_total": amount_total,
        "client_reference_id": "cr_test",
        "created": int(time.time()),
        "currency": currency,
        "customer_details": {"email": email, "name": "Jane Buyer"} if email else None,
        "customer_email": None,
        "livemode": livemode,
        "locale": locale,
        "metadata": metadata,
        "mode": mode,
        "payment_intent": payment_intent or new_id("pi_"),
        "payment_status": payment_status,
        "status": status,
        "total_details": {
            "amount_discount": amount_discount,
            "amount_shipping": 0,
            "amount_tax": 0,
        },
        "url": None,
    }


def line_item(
    *,
    price_id: str = PRICE_ID,
    unit_amount: int = PRICE_AMOUNT,
    quantity: int = 1,
    currency: str = "eur",
    amount_discount: int = 0,
) -> dict[str, Any]:
    """One line item (`item`) with its price expanded, as in a session's `line_items`."""
    subtotal = unit_amount * quantity
    return {
        "id": new_id("li_"),
        "object": "item",
        "amount_discount": amount_discount,
        "amount_subtotal": subtotal,
        "amount_tax": 0,
        "amount_total": subtotal - amount_discount,
        "currency": currency,
        "description": "GENX",
        "price": {
            "id": price_id,
            "object": "price",
            "active": True,
            "currency": currency,
            "livemode": False,
            "product": "prod_genx",
            "type": "one_time",
            "unit_amount": unit_amount,
            "unit_amount_decimal": str(unit_amount),
        },
        "quantity": quantity,
    }


def line_items(session_id: str, *items: dict[str, Any]) -> dict[str, Any]:
    """A session's `line_items` list (what `expand[]=line_items` puts on it)."""
    return {
        "object": "list",
        "data": list(items),
        "has_more": False,
        "url": f"/v1/checkout/sessions/{session_id}/line_items",
    }


def as_retrieved(session: dict[str, Any], *items: dict[str, Any]) -> dict[str, Any]:
    """`session` as a retrieve with `expand[]=line_items` answers: by default one line
    item of the configured price at the session's subtotal and currency."""
    if not items:
        items = (
            line_item(
                unit_amount=session["amount_subtotal"],
                currency=session["currency"],
                amount_discount=session["total_details"]["amount_discount"],
            ),
        )
    return {**session, "line_items": line_items(session["id"], *items)}


def early_fraud_warning(charge_id: str, payment_intent: str | None) -> dict[str, Any]:
    return {
        "id": new_id("issfr_"),
        "object": "radar.early_fraud_warning",
        "actionable": True,
        "charge": charge_id,
        "created": int(time.time()),
        "fraud_type": "made_with_stolen_card",
        "livemode": False,
        "payment_intent": payment_intent,
    }


def charge(payment_intent: str, *, amount: int = 4900, amount_refunded: int = 0) -> dict[str, Any]:
    return {
        "id": new_id("ch_"),
        "object": "charge",
        "amount": amount,
        "amount_refunded": amount_refunded,
        "currency": "eur",
        "payment_intent": payment_intent,
        "refunded": amount_refunded >= amount,
        "metadata": {"product_id": "genx"},
    }


def refund(charge_object: dict[str, Any], amount: int | None = None) -> dict[str, Any]:
    """A refund as `refunds.list` answers with `expand[]=data.charge` (the charge as it
    stands after every refund)."""
    return {
        "id": new_id("re_"),
        "object": "refund",
        "amount": charge_object["amount_refunded"] if amount is None else amount,
        "charge": charge_object,
        "created": int(time.time()),
        "currency": charge_object["currency"],
        "metadata": {},
        "payment_intent": charge_object["payment_intent"],
        "reason": "requested_by_customer",
        "status": "succeeded",
    }


def dispute(payment_intent: str, *, status: str = "needs_response") -> dict[str, Any]:
    return {
        "id": new_id("dp_"),
        "object": "dispute",
        "amount": 4900,
        "charge": new_id("ch_"),
        "currency": "eur",
        "payment_intent": payment_intent,
        "reason": "fraudulent",
        "status": status,
    }


def event(
    event_type: str, data_object: dict[str, Any], event_id: str | None = None
) -> dict[str, Any]:
    return {
        "id": event_id or new_id("evt_"),
        "object": "event",
        "api_version": API_VERSION,
        "created": int(time.time()),
        "data": {"object": data_object},
        "livemode": False,
        "pending_webhooks": 1,
        "request": {"id": None, "idempotency_key": None},
        "type": event_type,
    }


def signed(evt: dict[str, Any], secret: str, *, timestamp: int | None = None) -> tuple[bytes, str]:
    """(raw body, Stripe-Signature header) exactly as Stripe would send them."""
    payload = json.dumps(evt, indent=2)
    header = stripe.WebhookSignature.generate_signature_header(payload, secret, timestamp)
    return payload.encode(), header
