"""The adapter to Stripe: the one module of the purchase feature that imports `stripe`.

It wraps the official library's `StripeClient` (pointed at the local test double by
`STRIPE_API_BASE`, at Stripe itself otherwise), verifies webhook signatures, and turns
the library's errors into ours: a refused or unreachable provider is a 502
`payment_provider_error`, a bad signature a 400 `invalid_signature`. Callers get plain
dicts, never library objects.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator, Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import quote_plus

import stripe

from commerce import strict_json
from commerce.deadlines import DependencyTimeout, budget_left, remaining_budget
from commerce.errors import InvalidEncoding, InvalidSignature
from commerce.logs import get_logger
from commerce.purchase.schemas import InvalidEvent, PaymentProviderError
from commerce.purchase.stripe_shapes import check_not_future, parse_signature_header
from commerce.secrets import SecretName, SecretSource

if TYPE_CHECKING:
    from commerce.settings import Settings

WEBHOOK_TOLERANCE_SECONDS = 300
# One HTTP attempt to Stripe (connect, then each read); a Checkout Session is created in
# about a second. Within a request the attempt gets at most what is left of the budget.
STRIPE_ATTEMPT_SECONDS = 5.0
STRIPE_NETWORK_RETRIES = 2  # safe: every POST carries an idempotency key
# No retry with less than this left of the budget (the library pauses 0.5-1 s first).
STRIPE_RETRY_MIN_SECONDS = 2.0
LIST_PAGE_SIZE = 100  # Stripe's largest page
# Keyword arguments `StripeClient.raw_request` takes for itself, never as parameters.
_RAW_REQUEST_KEYS = frozenset({
    "api_key", "stripe_version", "stripe_account", "stripe_context", "max_network_retries",
    "idempotency_key", "content_type", "headers", "base", "usage",
})  # fmt: skip
_log = get_logger("commerce.purchase.gateway")


def verify_signature(
    payload: bytes, signature_header: str | None, secret: str, now: float | None = None
) -> None:
    """Check the `Stripe-Signature` of `payload` (raises InvalidSignature).

    The header's shape is checked first (`stripe_shapes`: the library would raise
    `TypeError` on non-ASCII text); the official library then checks the HMAC over the
    raw bytes and that the timestamp is at most 300 s old; last, a timestamp more than
    300 s ahead of our clock is refused (the library only looks at the past).
    Only the check: `construct_event` would also build a StripeObject tree that nothing
    here uses (about a millisecond per delivery).
    """
    if not signature_header:
        raise InvalidSignature("The Stripe-Signature header is missing.")
    header = parse_signature_header(signature_header)
    try:
        stripe.WebhookSignature.verify_header(
            payload, signature_header, secret, tolerance=WEBHOOK_TOLERANCE_SECONDS
        )
    except stripe.SignatureVerificationError:
        raise InvalidSignature() from None
    except UnicodeDecodeError:
        raise InvalidEncoding() from None
    check_not_future(header, time.time() if now is None else now)


def parse_event(payload: bytes) -> dict[str, Any]:
    """A verified payload -> the event (strict, bounded JSON; raises a 4xx CommerceError)."""
    event = strict_json.loads(payload)
    if not isinstance(event, dict) or not isinstance(event.get("id"), str):
        raise InvalidEvent("The body is not a Stripe event.")
    return event


def verify_event(payload: bytes, signature_header: str | None, secret: str) -> dict[str, Any]:
    """The event in `payload` after checking its `Stripe-Signature`."""
    verify_signature(payload, signature_header, secret)
    return parse_event(payload)


def _provider_error(exc: stripe.StripeError, action: str) -> PaymentProviderError:
    status = exc.http_status
    _log.warning(
        "stripe refused %s",
        action,
        extra={
            "event": "stripe.error",
            "action": action,
            "stripe_status": status,
            "stripe_code": exc.code,
            "stripe_request_id": exc.request_id,
            "error_type": type(exc).__name__,
        },
    )
    if isinstance(exc, stripe.APIConnectionError):
        return PaymentProviderError("The payment provider could not be reached; please retry.")
    if isinstance(exc, stripe.AuthenticationError | stripe.PermissionError):
        return PaymentProviderError("The shop's payment configuration was refused by Stripe.")
    if isinstance(exc, stripe.InvalidRequestError):
        return PaymentProviderError(f"The payment provider refused the request ({exc.code}).")
    return PaymentProviderError(f"The payment provider failed (HTTP {status}); please retry.")


class BudgetedRequestsClient(stripe.RequestsClient):
    """The library's `requests` transport, bounded by the request budget
    (commerce.deadlines): each attempt's timeout is the ceiling given or what is left of
    the budget when less, no retry starts with under STRIPE_RETRY_MIN_SECONDS left, and
    a call that starts or times out with nothing left is a 503 `dependency_timeout`.
    Without a budget (CLI) the ceiling and the retry count alone apply."""

    @property
    def _timeout(self) -> float:
        left = budget_left()
        return self._ceiling if left is None else max(0.001, min(self._ceiling, left))

    @_timeout.setter
    def _timeout(self, value: float) -> None:
        self._ceiling = float(value)

    def _should_retry(self, *args: Any, **kwargs: Any) -> bool:
        left = budget_left()
        if left is not None and left < STRIPE_RETRY_MIN_SECONDS:
            return False
        return bool(super()._should_retry(*args, **kwargs))

    def request_with_retries(self, *args: Any, **kwargs: Any) -> Any:
        remaining_budget()  # spent before the call: DependencyTimeout
        try:
            return super().request_with_retries(*args, **kwargs)
        except stripe.APIConnectionError:
            if budget_left() == 0:
                raise DependencyTimeout() from None
            raise


class StripeGateway:
    """Checkout Sessions through the official client, created on first use."""

    def __init__(self, secrets: SecretSource, api_base: str = "") -> None:
        self._secrets = secrets
        self._api_base = api_base
        self._client: stripe.StripeClient | None = None
        self._lock = threading.Lock()

    @classmethod
    def from_settings(cls, settings: Settings, secrets: SecretSource) -> StripeGateway:
        return cls(secrets, settings.stripe_api_base)

    @property
    def client(self) -> stripe.StripeClient:
        with self._lock:
            if self._client is None:
                key = self._secrets.get(SecretName.STRIPE_SECRET_KEY)  # fail closed
                self._client = stripe.StripeClient(
                    key,
                    base_addresses={"api": self._api_base} if self._api_base else None,
                    max_network_retries=STRIPE_NETWORK_RETRIES,
                    http_client=BudgetedRequestsClient(timeout=STRIPE_ATTEMPT_SECONDS),
                )
            return self._client

    def _call(
        self,
        method: str,
        path: str,
        params: Mapping[str, Any] | None = None,
        *,
        idempotency_key: str | None = None,
    ) -> dict[str, Any]:
        """One call through the official client's `raw_request`: the library's transport,
        authentication, retries, idempotency keys and errors (a refusal raises the same
        `StripeError` as its typed services), answered as the JSON Stripe sent.

        Not the typed services (`client.v1...`): they turn each answer into the
        resource's class, and the first answer of a kind imports that class's module
        (`stripe.checkout._session` alone is about 10 ms of CPU at a cold start, the
        largest part of `stripe` that checkout, the webhook and reconcile loaded), only
        for `to_dict()` to turn it back into the JSON this adapter hands on."""
        fields = dict(params or {})
        if _RAW_REQUEST_KEYS & fields.keys():
            raise ValueError(
                f"parameter names the library reserves: {_RAW_REQUEST_KEYS & fields.keys()}"
            )
        if idempotency_key:
            fields["idempotency_key"] = idempotency_key
        answer = self.client.raw_request(method, path, **fields)
        data = answer.data
        if not isinstance(data, dict):
            raise stripe.APIError("Stripe answered with something other than a JSON object.")
        return data

    def _pages(self, path: str, params: Mapping[str, Any]) -> Iterator[dict[str, Any]]:
        """Every item of a list, page after page (`starting_after` the last item, as
        the library's `auto_paging_iter` does)."""
        query = {**params, "limit": LIST_PAGE_SIZE}
        while True:
            page = self._call("get", path, query)
            items = _items(page)
            yield from items
            if page.get("has_more") is not True or not items:
                return
            query = {**query, "starting_after": items[-1].get("id")}

    def create_checkout_session(
        self, params: Mapping[str, Any], idempotency_key: str | None
    ) -> dict[str, Any]:
        """Create a session; without a key of ours the library still sends one of its
        own per call (it does so for every POST), so its retries stay safe."""
        try:
            return self._call(
                "post", "/v1/checkout/sessions", params, idempotency_key=idempotency_key
            )
        except stripe.StripeError as exc:
            raise _provider_error(exc, "checkout.sessions.create") from None

    @property
    def livemode(self) -> bool:
        """Whether the configured key is a live-mode key (`sk_live_`/`rk_live_`)."""
        key = self._secrets.get(SecretName.STRIPE_SECRET_KEY)  # fail closed
        return key.startswith(("sk_live_", "rk_live_"))

    def session_with_line_items(self, session_id: str) -> dict[str, Any] | None:
        """The session as Stripe knows it, line items expanded; None when Stripe never
        created it (404). Any other failure raises PaymentProviderError."""
        try:
            return self._call(
                "get", f"/v1/checkout/sessions/{_path_id(session_id)}", {"expand": ["line_items"]}
            )
        except stripe.InvalidRequestError as exc:
            if exc.http_status == 404:
                _log.warning(
                    "stripe does not know the session",
                    extra={"event": "stripe.session_unknown", "order_id": session_id},
                )
                return None
            raise _provider_error(exc, "checkout.sessions.retrieve") from None
        except stripe.StripeError as exc:
            raise _provider_error(exc, "checkout.sessions.retrieve") from None

    def payment_intent_with_charge(self, payment_intent_id: str) -> dict[str, Any]:
        """The PaymentIntent with its latest charge expanded (refund state before fulfilling)."""
        try:
            return self._call(
                "get",
                f"/v1/payment_intents/{_path_id(payment_intent_id)}",
                {"expand": ["latest_charge"]},
            )
        except stripe.StripeError as exc:
            raise _provider_error(exc, "payment_intents.retrieve") from None

    def retrieve_charge(self, charge_id: str) -> dict[str, Any]:
        try:
            return self._call("get", f"/v1/charges/{_path_id(charge_id)}")
        except stripe.StripeError as exc:
            raise _provider_error(exc, "charges.retrieve") from None

    def refunds_created_since(self, since: datetime) -> Iterator[dict[str, Any]]:
        """Every refund created at or after `since`, its charge expanded (all pages)."""
        try:
            yield from self._pages(
                "/v1/refunds",
                {"created": {"gte": int(since.timestamp())}, "expand": ["data.charge"]},
            )
        except stripe.StripeError as exc:
            raise _provider_error(exc, "refunds.list") from None

    def disputes_created_since(self, since: datetime) -> Iterator[dict[str, Any]]:
        """Every dispute created at or after `since` (all pages)."""
        try:
            yield from self._pages("/v1/disputes", {"created": {"gte": int(since.timestamp())}})
        except stripe.StripeError as exc:
            raise _provider_error(exc, "disputes.list") from None

    def retrieve_checkout_session(self, session_id: str) -> dict[str, Any]:
        try:
            return self._call("get", f"/v1/checkout/sessions/{_path_id(session_id)}")
        except stripe.StripeError as exc:
            raise _provider_error(exc, "checkout.sessions.retrieve") from None

    def sessions_for_payment_intent(self, payment_intent_id: str) -> list[dict[str, Any]]:
        try:
            return _items(
                self._call(
                    "get",
                    "/v1/checkout/sessions",
                    {"payment_intent": payment_intent_id, "limit": 3},
                )
            )
        except stripe.StripeError as exc:
            raise _provider_error(exc, "checkout.sessions.list") from None

    def sessions_created_since(self, since: datetime) -> Iterator[dict[str, Any]]:
        """Every Checkout Session created at or after `since`, newest first (all pages)."""
        try:
            yield from self._pages(
                "/v1/checkout/sessions", {"created": {"gte": int(since.timestamp())}}
            )
        except stripe.StripeError as exc:
            raise _provider_error(exc, "checkout.sessions.list") from None


def _items(page: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The objects of one page of a list (a malformed page is the provider's error)."""
    items = page.get("data")
    if not isinstance(items, list) or not all(isinstance(item, dict) for item in items):
        raise stripe.APIError("Stripe answered a list without its objects.")
    return items


def _path_id(object_id: str) -> str:
    """An id as one path segment (what the library's typed services send)."""
    return quote_plus(object_id)
