"""Builders for Stripe-shaped JSON objects (plain dicts, fields as the API returns them)."""

from __future__ import annotations

import operator
import secrets
import string
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from .errors import StripeError, invalid_param
from .params import as_dict, as_int, as_optional_str

JSON = dict[str, Any]

_ALPHABET = string.ascii_letters + string.digits
ZERO_DECIMAL_CURRENCIES = frozenset((
    "bif", "clp", "djf", "gnf", "jpy", "kmf", "krw", "mga", "pyg", "rwf", "ugx", "vnd", "vuv",
    "xaf", "xof", "xpf",
))  # fmt: skip


def new_id(prefix: str, length: int = 24) -> str:
    return prefix + "".join(secrets.choice(_ALPHABET) for _ in range(length))


def now() -> int:
    return int(time.time())


def format_amount(amount: int, currency: str) -> str:
    if currency.lower() in ZERO_DECIMAL_CURRENCIES:
        return f"{amount} {currency.upper()}"
    return f"{amount / 100:.2f} {currency.upper()}"


def product(params: Mapping[str, Any], product_id: str, metadata: dict[str, str]) -> JSON:
    created = now()
    return {
        "id": product_id,
        "object": "product",
        "active": True,
        "attributes": [],
        "created": created,
        "default_price": None,
        "description": as_optional_str(params.get("description"), "description"),
        "images": [],
        "livemode": False,
        "marketing_features": [],
        "metadata": metadata,
        "name": params["name"],
        "package_dimensions": None,
        "shippable": None,
        "statement_descriptor": as_optional_str(
            params.get("statement_descriptor"), "statement_descriptor"
        ),
        "tax_code": None,
        "type": "service",
        "unit_label": as_optional_str(params.get("unit_label"), "unit_label"),
        "updated": created,
        "url": as_optional_str(params.get("url"), "url"),
    }


def price(
    *,
    product_id: str,
    currency: str,
    unit_amount: int,
    lookup_key: str | None,
    nickname: str | None,
    metadata: dict[str, str],
    active: bool,
    recurring: JSON | None,
) -> JSON:
    return {
        "id": new_id("price_"),
        "object": "price",
        "active": active,
        "billing_scheme": "per_unit",
        "created": now(),
        "currency": currency,
        "custom_unit_amount": None,
        "livemode": False,
        "lookup_key": lookup_key,
        "metadata": metadata,
        "nickname": nickname,
        "product": product_id,
        "recurring": recurring,
        "tax_behavior": "unspecified",
        "tiers_mode": None,
        "transform_quantity": None,
        "type": "recurring" if recurring else "one_time",
        "unit_amount": unit_amount,
        "unit_amount_decimal": str(unit_amount),
    }


def line_item(price_object: JSON, quantity: int, description: str) -> JSON:
    amount = int(price_object["unit_amount"]) * quantity
    return {
        "id": new_id("li_"),
        "object": "item",
        "amount_discount": 0,
        "amount_subtotal": amount,
        "amount_tax": 0,
        "amount_total": amount,
        "currency": price_object["currency"],
        "description": description,
        "price": price_object,
        "quantity": quantity,
    }


def payment_intent(session: JSON, data: Mapping[str, Any], metadata: dict[str, str]) -> JSON:
    pi_id = new_id("pi_")
    return {
        "id": pi_id,
        "object": "payment_intent",
        "amount": session["amount_total"],
        "amount_capturable": 0,
        "amount_received": 0,
        "capture_method": "automatic_async",
        "client_secret": f"{pi_id}_secret_{new_id('', 25)}",
        "confirmation_method": "automatic",
        "created": now(),
        "currency": session["currency"],
        "customer": None,
        "description": as_optional_str(data.get("description"), "payment_intent_data[description]"),
        "last_payment_error": None,
        "latest_charge": None,
        "livemode": False,
        "metadata": metadata,
        "payment_method": None,
        "payment_method_types": ["card"],
        "receipt_email": as_optional_str(
            data.get("receipt_email"), "payment_intent_data[receipt_email]"
        ),
        "statement_descriptor": None,
        "status": "requires_payment_method",
    }


def charge(intent: JSON, *, method: str, email: str, name: str | None) -> JSON:
    """A charge as created by a PaymentIntent; it carries the PaymentIntent's metadata."""
    details: JSON
    if method == "card":
        details = {
            "type": "card",
            "card": {
                "brand": "visa",
                "country": "US",
                "exp_month": 12,
                "exp_year": 2034,
                "funding": "credit",
                "last4": "4242",
            },
        }
    else:
        details = {"type": "sepa_debit", "sepa_debit": {"country": "DE", "last4": "3000"}}
    return {
        "id": new_id("ch_"),
        "object": "charge",
        "amount": intent["amount"],
        "amount_captured": 0,
        "amount_refunded": 0,
        "balance_transaction": None,
        "billing_details": {"address": None, "email": email, "name": name, "phone": None},
        "captured": False,
        "created": now(),
        "currency": intent["currency"],
        "customer": None,
        "description": intent["description"],
        "disputed": False,
        "failure_code": None,
        "failure_message": None,
        "livemode": False,
        "metadata": dict(intent["metadata"]),
        "outcome": None,
        "paid": False,
        "payment_intent": intent["id"],
        "payment_method": new_id("pm_"),
        "payment_method_details": details,
        "receipt_email": intent["receipt_email"],
        "refunded": False,
        "status": "pending",
    }


def refund(charge_object: JSON, amount: int, reason: str | None, metadata: dict[str, str]) -> JSON:
    return {
        "id": new_id("re_"),
        "object": "refund",
        "amount": amount,
        "balance_transaction": new_id("txn_"),
        "charge": charge_object["id"],
        "created": now(),
        "currency": charge_object["currency"],
        "metadata": metadata,
        "payment_intent": charge_object["payment_intent"],
        "reason": reason,
        "receipt_number": None,
        "source_transfer_reversal": None,
        "status": "succeeded",
        "transfer_reversal": None,
    }


def dispute(charge_object: JSON, reason: str) -> JSON:
    created = now()
    return {
        "id": new_id("dp_"),
        "object": "dispute",
        "amount": charge_object["amount"],
        "balance_transactions": [],
        "charge": charge_object["id"],
        "created": created,
        "currency": charge_object["currency"],
        "evidence": {},
        "evidence_details": {
            "due_by": created + 7 * 86400,
            "has_evidence": False,
            "past_due": False,
            "submission_count": 0,
        },
        "is_charge_refundable": False,
        "livemode": False,
        "metadata": {},
        "payment_intent": charge_object["payment_intent"],
        "reason": reason,
        "status": "needs_response",
    }


FRAUD_TYPES = (
    "card_never_received", "fraudulent_card_application", "made_with_counterfeit_card",
    "made_with_lost_card", "made_with_stolen_card", "misc", "unauthorized_use_of_card",
)  # fmt: skip


def coupon(
    coupon_id: str,
    *,
    percent_off: float | None,
    amount_off: int | None,
    currency: str | None,
    duration: str,
    name: str | None,
    metadata: dict[str, str],
) -> JSON:
    return {
        "id": coupon_id,
        "object": "coupon",
        "amount_off": amount_off,
        "created": now(),
        "currency": currency,
        "duration": duration,
        "duration_in_months": None,
        "livemode": False,
        "max_redemptions": None,
        "metadata": metadata,
        "name": name,
        "percent_off": percent_off,
        "redeem_by": None,
        "times_redeemed": 0,
        "valid": True,
    }


def early_fraud_warning(charge_object: JSON, fraud_type: str) -> JSON:
    """A Radar early fraud warning on a charge (fields as in Stripe's fixture)."""
    return {
        "id": new_id("issfr_"),
        "object": "radar.early_fraud_warning",
        "actionable": not charge_object["refunded"] and not charge_object["disputed"],
        "charge": charge_object["id"],
        "created": now(),
        "fraud_type": fraud_type,
        "livemode": False,
        "payment_intent": charge_object["payment_intent"],
    }


def event(
    event_type: str,
    data_object: JSON,
    *,
    api_version: str,
    pending_webhooks: int,
    request: JSON,
    previous_attributes: JSON | None = None,
) -> JSON:
    data: JSON = {"object": data_object}
    if previous_attributes is not None:
        data["previous_attributes"] = previous_attributes
    return {
        "id": new_id("evt_"),
        "object": "event",
        "api_version": api_version,
        "created": now(),
        "data": data,
        "livemode": False,
        "pending_webhooks": pending_webhooks,
        "request": request,
        "type": event_type,
    }


_COMPARISONS: dict[str, Callable[[int, int], bool]] = {
    "gt": operator.gt,
    "gte": operator.ge,
    "lt": operator.lt,
    "lte": operator.le,
}


def created_filter(value: Any, param: str = "created") -> Callable[[int], bool]:
    """`created=123` or `created[gte]=...&created[lt]=...` as a predicate."""
    if value is None:
        return lambda _created: True
    if not isinstance(value, dict):
        exact = as_int(value, param)
        return lambda created: created == exact
    limits: list[tuple[Callable[[int, int], bool], int]] = []
    for name, raw in as_dict(value, param).items():
        compare = _COMPARISONS.get(name)
        if compare is None:
            raise StripeError(
                400,
                f"Received unknown parameter: {param}[{name}]",
                param=f"{param}[{name}]",
                code="parameter_unknown",
            )
        limits.append((compare, as_int(raw, f"{param}[{name}]")))
    return lambda created: all(compare(created, bound) for compare, bound in limits)


def list_page(items: Sequence[JSON], params: Mapping[str, Any], url: str) -> JSON:
    """One page of a list, newest first, with Stripe's cursor parameters."""
    limit = as_int(params.get("limit", 10), "limit")
    if not 1 <= limit <= 100:
        raise invalid_param(
            "limit", "This value must be greater than or equal to 1 and less than or equal to 100."
        )
    starting_after = params.get("starting_after")
    ending_before = params.get("ending_before")
    ids = [item["id"] for item in items]
    window: Sequence[JSON]
    if starting_after:
        if starting_after not in ids:
            raise invalid_param("starting_after", f"No such object: '{starting_after}'")
        window = items[ids.index(starting_after) + 1 :]
        page = list(window[:limit])
    elif ending_before:
        if ending_before not in ids:
            raise invalid_param("ending_before", f"No such object: '{ending_before}'")
        window = items[: ids.index(ending_before)]
        page = list(window[-limit:])
    else:
        window = items
        page = list(window[:limit])
    return {
        "object": "list",
        "data": page,
        "has_more": len(window) > limit,
        "url": url,
    }


def checkout_session(
    *,
    session_id: str,
    params: Mapping[str, Any],
    items: Sequence[JSON],
    metadata: dict[str, str],
    url: str,
    expires_at: int,
    locale: str | None,
    allow_promotion_codes: bool | None,
    customer_email: str | None,
) -> JSON:
    subtotal = sum(int(item["amount_subtotal"]) for item in items)
    return {
        "id": session_id,
        "object": "checkout.session",
        "adaptive_pricing": {"enabled": False},
        "after_expiration": None,
        "allow_promotion_codes": allow_promotion_codes,
        "amount_subtotal": subtotal,
        "amount_total": subtotal,
        "automatic_tax": {"enabled": False, "liability": None, "status": None},
        "billing_address_collection": params.get("billing_address_collection"),
        "cancel_url": params.get("cancel_url"),
        "client_reference_id": params.get("client_reference_id"),
        "client_secret": None,
        "consent": None,
        "consent_collection": None,
        "created": now(),
        "currency": items[0]["currency"],
        "custom_fields": [],
        "custom_text": {
            "after_submit": None,
            "shipping_address": None,
            "submit": None,
            "terms_of_service_acceptance": None,
        },
        "customer": None,
        "customer_creation": params.get("customer_creation", "if_required"),
        "customer_details": None,
        "customer_email": customer_email,
        "expires_at": expires_at,
        "invoice": None,
        "livemode": False,
        "locale": locale,
        "metadata": metadata,
        "mode": "payment",
        "payment_intent": None,
        "payment_link": None,
        "payment_method_collection": "if_required",
        "payment_method_types": ["card"],
        "payment_status": "unpaid",
        "phone_number_collection": {"enabled": False},
        "recovered_from": None,
        "shipping_address_collection": None,
        "shipping_cost": None,
        "shipping_options": [],
        "status": "open",
        "submit_type": params.get("submit_type"),
        "subscription": None,
        "success_url": params.get("success_url"),
        "total_details": {"amount_discount": 0, "amount_shipping": 0, "amount_tax": 0},
        "ui_mode": "hosted",
        "url": url,
    }
