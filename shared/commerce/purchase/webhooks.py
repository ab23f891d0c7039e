"""The Stripe webhook: verify, then route each event (a table of handlers by event type)
to one fulfillment change.

Fail closed: without a signing secret nothing is read (503 `webhook_disabled`); an
event whose signature is missing, malformed, wrong, older than 300 s or more than 300 s
in the future is refused (400 `invalid_signature`) before anything is written. A signed
event that is not strict JSON or whose ids lack Stripe's shape (`stripe_shapes`) is
refused with 400 and audited (`webhook.refused`), so no id becomes a document id that
Firestore would reject. Every accepted event ends in the
ledger exactly once, acted on or merely acknowledged. A paid session is fulfilled
only after Stripe confirms it is what we sell (`purchase.verification`); otherwise the
order is `rejected` and Stripe gets a 2xx (retrying cannot change the verdict). Errors
worth retrying (storage contention, Stripe unreachable while verifying a session or
resolving a charge) surface as 5xx so Stripe delivers again; the transaction guarantees
the retry finds nothing half-done, and nothing is fulfilled unverified.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from commerce.audit import Auditor
from commerce.errors import InvalidRequest
from commerce.logs import get_logger
from commerce.purchase.fulfillment import Change, Fulfillment
from commerce.purchase.gateway import StripeGateway, parse_event, verify_signature
from commerce.purchase.schemas import (
    ASYNC_FAILED,
    ASYNC_SUCCEEDED,
    CHARGE_EVENTS,
    CHARGE_REFUNDED,
    DISPUTE_CLOSED,
    DISPUTE_CREATED,
    DISPUTE_WON_STATUSES,
    EARLY_FRAUD_WARNING,
    SESSION_COMPLETED,
    DeliveryResult,
    InvalidEvent,
    Outcome,
    SessionFacts,
    WebhookDisabled,
)
from commerce.purchase.stripe_shapes import EVENT_PREFIXES, check_event_ids, is_stripe_id
from commerce.purchase.verification import PaidSessions
from commerce.secrets import SecretName, SecretSource
from commerce.unit_of_work import Storage

_log = get_logger("commerce.purchase.webhooks")
Handler = Callable[[str, str, Mapping[str, Any]], Change]  # (event id, type, data object)
Ledger = dict[str, str]  # ledger_id, event_type
ChargeAction = Callable[[str, Mapping[str, Any], Ledger], Change]  # (session id, object, ledger)


class WebhookService:
    def __init__(
        self,
        *,
        secrets: SecretSource,
        fulfillment: Fulfillment,
        storage: Storage,
        gateway: StripeGateway,
        auditor: Auditor,
        paid_sessions: PaidSessions,
    ) -> None:
        self.auditor = auditor
        self.secrets = secrets
        self.fulfillment = fulfillment
        self.storage = storage
        self.gateway = gateway
        self.paid_sessions = paid_sessions
        # Stripe event dispatch: one handler per event type we act on; any other type
        # is acknowledged once (IGNORED).
        self._handlers: dict[str, Handler] = {
            SESSION_COMPLETED: self._on_session,
            ASYNC_SUCCEEDED: self._on_session,
            ASYNC_FAILED: self._on_session,
            CHARGE_REFUNDED: self._on_charge(self._refunded),
            DISPUTE_CREATED: self._on_charge(self._dispute_opened),
            DISPUTE_CLOSED: self._on_charge(self._dispute_closed),
            EARLY_FRAUD_WARNING: self._on_charge(self._fraud_warning),
        }

    def handle(self, payload: bytes, signature_header: str | None) -> DeliveryResult:
        secret = self.secrets.get_optional(SecretName.STRIPE_WEBHOOK_SECRET)
        if not secret:
            raise WebhookDisabled()
        verify_signature(payload, signature_header, secret)
        event = self._signed_event(payload)
        event_id: str = event["id"]
        event_type = str(event.get("type", ""))
        try:
            # The ledger read inside each transaction decides what is a duplicate. This
            # extra read before it only spares a repeated charge or dispute event its
            # Stripe lookup; for every other event it would add a round trip to each
            # first delivery to save a transaction on a repeat (measured in
            # docs/performance.md, "Webhook fulfillment").
            if event_type in CHARGE_EVENTS and self.fulfillment.already_recorded(event_id):
                change = Change(Outcome.DUPLICATE)
            else:
                change = self._dispatch(event_id, event_type, _data_object(event))
        except Exception as exc:
            # Stripe will retry; the alert on `webhook.failed` tells a person if it persists.
            _log.error(
                "stripe event %s not applied",
                event_type,
                extra={
                    "event": "webhook.failed",
                    "stripe_event_id": event_id,
                    "stripe_event_type": event_type,
                    "error_type": type(exc).__name__,
                    "code": getattr(exc, "code", None),
                },
            )
            raise
        _log.info(
            "stripe event %s: %s",
            event_type,
            change.outcome.value,
            extra={
                "event": "webhook.processed",
                "stripe_event_id": event_id,
                "stripe_event_type": event_type,
                "outcome": change.outcome.value,
                "order_id": change.order_id,
            },
        )
        return DeliveryResult(event_id, event_type, change.outcome, change.order_id)

    def _signed_event(self, payload: bytes) -> dict[str, Any]:
        """The verified payload as an event whose ids can be stored; otherwise 400, and,
        since Stripe signed it and will not send it again, an audit entry and an error
        log for a person (the malformed value itself is never stored)."""
        event: dict[str, Any] = {}
        try:
            event = parse_event(payload)
            check_event_ids(event)
        except InvalidRequest as error:
            raw_id = event.get("id")
            event_id = raw_id if is_stripe_id(raw_id, EVENT_PREFIXES) else None
            event_type = str(event.get("type", ""))[:100]
            field = getattr(error, "field", None)
            self.auditor.record(
                "webhook.refused",
                event_id=event_id,
                reason=error.code,
                field=field,
                stripe_event_type=event_type,
            )
            _log.error(
                "signed stripe event refused: %s",
                error.code,
                extra={
                    "event": "webhook.refused",
                    "code": error.code,
                    "field": field,
                    "stripe_event_id": event_id,
                    "stripe_event_type": event_type,
                },
            )
            raise
        return event

    def apply(self, ledger_id: str, event_type: str, obj: Mapping[str, Any]) -> Change:
        """Apply a Stripe object as if `event_type` had been delivered for it, through
        the same handler, once per `ledger_id` (reconciliation repairing missed events)."""
        return self._dispatch(ledger_id, event_type, obj)

    def _dispatch(self, event_id: str, event_type: str, obj: Mapping[str, Any]) -> Change:
        handler = self._handlers.get(event_type)
        if handler is None:
            return self.fulfillment.record_only(event_id, event_type, Outcome.IGNORED)
        return handler(event_id, event_type, obj)

    # -- one handler per event type (the table is built in __init__) -------------------
    def _on_session(self, event_id: str, event_type: str, obj: Mapping[str, Any]) -> Change:
        ledger = {"ledger_id": event_id, "event_type": event_type}
        session = SessionFacts.from_stripe(obj)
        if not self.fulfillment.is_our_session(session):
            return self.fulfillment.record_only(event_id, event_type, Outcome.IGNORED)
        if event_type == ASYNC_FAILED:
            return self.fulfillment.mark_failed(session, event_id=event_id, **ledger)
        if session.is_paid:  # verified with Stripe first: fulfilled or rejected
            return self.paid_sessions.settle(session, event_id=event_id, reported=obj, **ledger)
        return self.fulfillment.record_pending(session, event_id=event_id, **ledger)

    def _on_charge(self, act: ChargeAction) -> Handler:
        """A charge, dispute or fraud-warning event: find our session (order) first,
        then act. Objects without a PaymentIntent (an early fraud warning of an older
        API version) name their charge, which names it."""

        def handle(event_id: str, event_type: str, obj: Mapping[str, Any]) -> Change:
            intent = obj.get("payment_intent")
            charge = obj.get("charge")
            if not intent and isinstance(charge, str) and charge:
                intent = self.gateway.retrieve_charge(charge).get("payment_intent")
            session_id = self._session_of(intent)
            if session_id is None:
                return self.fulfillment.record_only(event_id, event_type, Outcome.NO_ORDER)
            return act(session_id, obj, {"ledger_id": event_id, "event_type": event_type})

        return handle

    def _refunded(self, session_id: str, obj: Mapping[str, Any], ledger: Ledger) -> Change:
        amount = _int(obj.get("amount"))
        refunded = _int(obj.get("amount_refunded"))
        return self.fulfillment.record_refund(
            session_id,
            payment_intent_id=_str(obj.get("payment_intent")),
            amount_refunded=refunded,
            fully_refunded=bool(obj.get("refunded")) or (0 < amount <= refunded),
            **ledger,
        )

    def _dispute_opened(self, session_id: str, obj: Mapping[str, Any], ledger: Ledger) -> Change:
        return self.fulfillment.open_dispute(session_id, **ledger)

    def _dispute_closed(self, session_id: str, obj: Mapping[str, Any], ledger: Ledger) -> Change:
        status = str(obj.get("status", ""))
        if status == "lost" or status in DISPUTE_WON_STATUSES:
            won = status in DISPUTE_WON_STATUSES
            return self.fulfillment.close_dispute(session_id, won=won, **ledger)
        return self.fulfillment.record_only(
            ledger["ledger_id"], ledger["event_type"], Outcome.IGNORED
        )

    def _fraud_warning(self, session_id: str, obj: Mapping[str, Any], ledger: Ledger) -> Change:
        return self.fulfillment.suspend_for_fraud_warning(
            session_id,
            warning_id=_str(obj.get("id")) or ledger["ledger_id"],
            fraud_type=_str(obj.get("fraud_type")),
            actionable=obj.get("actionable") is True,
            **ledger,
        )

    def _session_of(self, payment_intent: object) -> str | None:
        """The Checkout Session (= order id) a charge or dispute belongs to, if ours.

        Our order knows its PaymentIntent once a session event arrived; before that
        (events out of order) Stripe is asked which session created the PaymentIntent.
        """
        if isinstance(payment_intent, Mapping):
            payment_intent = payment_intent.get("id")
        if not isinstance(payment_intent, str) or not payment_intent:
            return None
        with self.storage.batch() as uow:
            found = uow.orders.where("payment_intent_id", "==", payment_intent, limit=1)
        if found:
            return found[0].id
        for raw in self.gateway.sessions_for_payment_intent(payment_intent):
            session = SessionFacts.from_stripe(raw)
            if self.fulfillment.is_our_session(session):
                return session.id
        return None


def _data_object(event: Mapping[str, Any]) -> Mapping[str, Any]:
    data = event.get("data")
    obj = data.get("object") if isinstance(data, Mapping) else None
    if not isinstance(obj, Mapping):
        raise InvalidEvent("The event carries no data object.")
    return obj


def _int(value: object) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def _str(value: object) -> str | None:
    return value if isinstance(value, str) and value else None
