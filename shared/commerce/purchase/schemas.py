"""Values of the purchase feature: what a Checkout Session tells us and the reports
services hand back to the entry points. Pure: no SDK imports. The bodies the entry
points accept are pydantic models apart from here (checkout's in `purchase.requests`,
reconcile's in `purchase.reconciliation`), so that a function that validates neither
(the webhook) does not build them at its cold start."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from commerce.errors import ConfigurationError, InvalidRequest, UpstreamError

LOCALES = ("en", "de")  # the storefront's languages (purchase.requests.Locale)


@dataclass(frozen=True)
class CheckoutResult:
    id: str
    url: str


class PaymentProviderError(UpstreamError):
    code = "payment_provider_error"
    default_detail = "The payment provider could not be reached; please try again in a moment."


class CheckoutNotConfigured(ConfigurationError):
    code = "checkout_disabled"
    default_detail = "Checkout is not configured (no price)."


class WebhookDisabled(ConfigurationError):
    code = "webhook_disabled"
    default_detail = "The webhook endpoint is disabled: no signing secret is configured."


class InvalidEvent(InvalidRequest):
    code = "invalid_event"
    default_detail = "The event could not be read."


PAID_STATUSES = frozenset({"paid", "no_payment_required"})  # a 100 % coupon is paid too

# The Stripe events the shop acts on (the webhook's handlers; reconciliation replays the
# charge events for refunds and disputes it finds in Stripe's lists).
SESSION_COMPLETED = "checkout.session.completed"
ASYNC_SUCCEEDED = "checkout.session.async_payment_succeeded"
ASYNC_FAILED = "checkout.session.async_payment_failed"
CHARGE_REFUNDED = "charge.refunded"
DISPUTE_CREATED = "charge.dispute.created"
DISPUTE_CLOSED = "charge.dispute.closed"
EARLY_FRAUD_WARNING = "radar.early_fraud_warning.created"
# Events that may need a Stripe lookup (`_session_of`) before their transaction.
CHARGE_EVENTS = (CHARGE_REFUNDED, DISPUTE_CREATED, DISPUTE_CLOSED, EARLY_FRAUD_WARNING)
DISPUTE_WON_STATUSES = frozenset({"won", "warning_closed"})


@dataclass(frozen=True)
class SessionFacts:
    """What fulfillment needs from a Checkout Session (webhook payload or API object)."""

    id: str
    status: str | None
    payment_status: str | None
    email: str | None
    amount_total: int | None
    currency: str | None
    payment_intent_id: str | None
    locale: str
    referral: str | None
    product_id: str | None
    livemode: bool

    @property
    def is_paid(self) -> bool:
        return self.payment_status in PAID_STATUSES

    @property
    def is_complete_and_paid(self) -> bool:
        return self.status == "complete" and self.is_paid

    def is_for(self, product_id: str) -> bool:
        """Whether the session sells this shop's product (its metadata says so)."""
        return self.product_id == product_id

    @classmethod
    def from_stripe(cls, session: Mapping[str, Any]) -> SessionFacts:
        session_id = session.get("id")
        if not isinstance(session_id, str) or not session_id:
            raise InvalidEvent("the Checkout Session has no id")
        metadata = _mapping(session.get("metadata"))
        details = _mapping(session.get("customer_details"))
        email = details.get("email") or session.get("customer_email")
        locale = str(metadata.get("locale") or session.get("locale") or "en")
        intent = session.get("payment_intent")
        if isinstance(intent, Mapping):  # expanded
            intent = intent.get("id")
        amount = session.get("amount_total")
        return cls(
            id=session_id,
            status=_opt_str(session.get("status")),
            payment_status=_opt_str(session.get("payment_status")),
            email=str(email) if email else None,
            amount_total=amount if isinstance(amount, int) else None,
            currency=_opt_str(session.get("currency")),
            payment_intent_id=_opt_str(intent),
            locale=locale if locale in LOCALES else "en",
            referral=_opt_str(metadata.get("ref")),
            product_id=_opt_str(metadata.get("product_id")),
            livemode=bool(session.get("livemode", False)),
        )


def _mapping(value: object) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _opt_str(value: object) -> str | None:
    return value if isinstance(value, str) and value else None


class Outcome(StrEnum):
    """What one delivery (or reconciliation step) did. Stored in the ledger."""

    FULFILLED = "fulfilled"
    ALREADY_FULFILLED = "already_fulfilled"
    BLOCKED = "blocked"  # refunded / revoked / failed / rejected before fulfillment
    REJECTED = "rejected"  # paid, but not for what we sell (domain/payments.py): no license
    PENDING = "pending"
    FAILED = "failed"
    REFUNDED = "refunded"
    PARTIALLY_REFUNDED = "partially_refunded"
    DISPUTED = "disputed"
    RESTORED = "restored"
    SUSPENDED = "suspended"  # early fraud warning: license suspended, ops alerted
    REVOKED = "revoked"
    NO_ORDER = "no_order"  # a charge that belongs to no Checkout Session of ours
    IGNORED = "ignored"  # an event type we do not act on
    DUPLICATE = "duplicate"  # the ledger already holds this event
    ALREADY_APPLIED = "already_applied"  # the order already shows it (webhook or reconcile)


@dataclass(frozen=True)
class DeliveryResult:
    event_id: str
    event_type: str
    outcome: Outcome
    order_id: str | None = None


@dataclass
class ReconcileReport:
    days: int
    examined: int = 0
    paid: int = 0
    already_fulfilled: int = 0
    repaired: int = 0
    blocked: int = 0
    rejected: int = 0
    failed: int = 0
    repaired_sessions: list[str] = field(default_factory=list)
    refunds_examined: int = 0
    refunds_applied: int = 0
    disputes_examined: int = 0
    disputes_applied: int = 0
    applied: list[str] = field(default_factory=list)  # "<charge/dispute id>:<outcome>"

    def as_dict(self) -> dict[str, Any]:
        return {
            "days": self.days,
            "examined": self.examined,
            "paid": self.paid,
            "already_fulfilled": self.already_fulfilled,
            "repaired": self.repaired,
            "blocked": self.blocked,
            "rejected": self.rejected,
            "failed": self.failed,
            "repaired_sessions": list(self.repaired_sessions),
            "refunds_examined": self.refunds_examined,
            "refunds_applied": self.refunds_applied,
            "disputes_examined": self.disputes_examined,
            "disputes_applied": self.disputes_applied,
            "applied": list(self.applied),
        }
