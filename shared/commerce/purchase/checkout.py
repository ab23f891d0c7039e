"""Starting a purchase: one Stripe Checkout Session per click.

Guest checkout in `payment` mode for the one configured Price, promotion codes
allowed, the buyer's language, attribution in metadata (copied onto the
PaymentIntent so refunds and disputes can be traced).

Idempotency comes from the click, not from who clicked: the storefront makes a random
`click_id` for every click on Buy and sends it again with any retry of that click, so
a double submission or a retried request yields the same session, while two buyers
behind one NAT who click at the same moment get two sessions. The Stripe idempotency
key is a hash of that id together with the client's network and the request's
parameters (so a leaked id replayed from elsewhere, or with other parameters, is a new
session rather than someone else's, and Stripe never sees one key with two parameter
sets). A request without a click id (a plain form post from a browser that runs no
script) gets no idempotency key of ours: at worst a second, unused session that
expires, never a session shared with another buyer.
"""

from __future__ import annotations

import hashlib
import secrets
from typing import Any

from commerce.clock import Clock
from commerce.logs import get_logger
from commerce.purchase.gateway import StripeGateway
from commerce.purchase.requests import CheckoutRequest
from commerce.purchase.schemas import (
    CheckoutNotConfigured,
    CheckoutResult,
    PaymentProviderError,
)
from commerce.ratelimit import RateLimiter
from commerce.settings import Settings

DEFAULT_LOCALE = "en"
_log = get_logger("commerce.purchase.checkout")


def idempotency_key(client_network: str, request: CheckoutRequest) -> str | None:
    """The Stripe idempotency key of this click, or None when the page sent no click id."""
    if request.click_id is None:
        return None
    material = "\x1f".join(
        (
            "checkout-click/1",
            request.click_id,
            client_network,
            (request.email or "").lower(),
            request.locale,
            request.ref or "",
        )
    )
    return "checkout-" + hashlib.sha256(material.encode()).hexdigest()[:40]


def client_reference_id(key: str | None) -> str:
    """Opaque per-click id for attribution. Derived from the idempotency key because a
    repeated request must send identical parameters (Stripe refuses otherwise); random
    when there is no key."""
    if key is None:
        return "cr_" + secrets.token_hex(12)
    return "cr_" + hashlib.sha256(b"client-reference:" + key.encode()).hexdigest()[:24]


def storefront_page(storefront_url: str, locale: str, page: str) -> str:
    """`https://shop/success.html`, or `https://shop/de/success.html` for German."""
    base = storefront_url.rstrip("/")
    prefix = "" if locale == DEFAULT_LOCALE else f"/{locale}"
    return f"{base}{prefix}/{page}"


def session_params(settings: Settings, request: CheckoutRequest, reference: str) -> dict[str, Any]:
    storefront = str(settings.storefront_url)
    metadata = {
        "product_id": settings.product_id,
        "ref": request.ref or "",
        "storefront_version": settings.storefront_version,
        "locale": request.locale,
    }
    params: dict[str, Any] = {
        "mode": "payment",
        "line_items": [{"price": settings.stripe_price_id, "quantity": 1}],
        "allow_promotion_codes": True,
        "locale": request.locale,
        "client_reference_id": reference,
        "metadata": metadata,
        "payment_intent_data": {"metadata": dict(metadata)},
        "success_url": storefront_page(storefront, request.locale, "success.html")
        + "?session_id={CHECKOUT_SESSION_ID}",
        "cancel_url": storefront_page(storefront, request.locale, "cancel.html"),
    }
    if request.email:
        params["customer_email"] = request.email
    return params


class CheckoutService:
    def __init__(
        self, *, settings: Settings, gateway: StripeGateway, rate_limiter: RateLimiter, clock: Clock
    ) -> None:
        self.settings = settings
        self.gateway = gateway
        self.rate_limiter = rate_limiter
        self.clock = clock

    def start(self, request: CheckoutRequest, client_network: str) -> CheckoutResult:
        self.rate_limiter.check(f"checkout:{client_network}", self.settings.checkout_rate_limit)
        if not self.settings.stripe_price_id:
            raise CheckoutNotConfigured("Checkout is not configured: STRIPE_PRICE_ID is empty.")
        key = idempotency_key(client_network, request)
        session = self.gateway.create_checkout_session(
            session_params(self.settings, request, client_reference_id(key)), key
        )
        session_id, url = session.get("id"), session.get("url")
        if not isinstance(session_id, str) or not isinstance(url, str):
            raise PaymentProviderError("The payment provider returned no checkout page.")
        _log.info(
            "checkout session created",
            extra={
                "event": "checkout.created",
                "session_id": session_id,
                "locale": request.locale,
                "ref": request.ref,
                "idempotency_key_hash": key[-12:] if key else None,
            },
        )
        return CheckoutResult(session_id, url)
