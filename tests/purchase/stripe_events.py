"""Stripe-shaped events for tests, signed with the official library."""

from __future__ import annotations

import json
import secrets
import time
from typing import Any

import stripe

API_VERSION = "2026-10-28.endive"


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
    amount_total: int = 4900,
) -> dict[str, Any]:
    metadata = {"product_id": product_id, "ref": ref, "storefront_version": "1", "locale": locale}
    return {
        "id": session_id or new_id("cs_test_"),
        "object": "checkout.session",
        "amount_subtotal": amount_total,
        "amount_total": amount_total,
        "client_reference_id": "cr_test",
        "created": int(time.time()),
        "currency": "eur",
        "customer_details": {"email": email, "name": "Jane Buyer"} if email else None,
        "customer_email": None,
        "livemode": False,
        "locale": locale,
        "metadata": metadata,
        "mode": "payment",
        "payment_intent": payment_intent or new_id("pi_"),
        "payment_status": payment_status,
        "status": status,
        "url": None,
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
