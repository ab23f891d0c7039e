"""Values of the purchase feature: the checkout request, what a Checkout Session tells us,
and the reports services hand back to the entry points. Pure: no SDK imports."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictStr, field_validator

from commerce.domain.email_address import check_address
from commerce.errors import ConfigurationError, InvalidRequest, UpstreamError

LOCALES = ("en", "de")
Locale = Literal["en", "de"]
_REF = r"^[A-Za-z0-9][A-Za-z0-9_-]{0,31}$"
# A per-click random id from the storefront: 16 random bytes base64url-encoded are 22
# characters; anything shorter could be guessed or shared, anything longer is not ours.
CLICK_ID_PATTERN = r"^[A-Za-z0-9_-]{22,64}$"


class CheckoutRequest(BaseModel):
    """What the storefront (script or plain form) sends to start a purchase."""

    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=True)

    email: StrictStr | None = Field(default=None, max_length=254)
    locale: Locale = "en"
    ref: StrictStr | None = Field(default=None, pattern=_REF)
    # Made fresh by the page for each click on Buy (site.js, or the form's inline
    # script); retries of that click carry it again. Absent (no script ran): no
    # idempotency key at all, never one shared with other buyers.
    click_id: StrictStr | None = Field(default=None, pattern=CLICK_ID_PATTERN)

    @field_validator("email")
    @classmethod
    def _email_shape(cls, value: str | None) -> str | None:
        if value is None or value == "":
            return None
        checked = check_address(value)  # the same rule as on arrival from Stripe
        if checked.address is None:
            raise ValueError("not a valid e-mail address")
        return checked.address


class ReconcileRequest(BaseModel):
    """Optional body of the `reconcile` function.

    Cloud Scheduler posts `{"trigger": "scheduler"}` (infra/terraform/modules/shop/
    scheduler.tf; tests/integration/test_scheduled_and_queued_calls.py sends exactly that body);
    a person may post `{"days": N}` to look further back. `trigger` only names the caller
    and changes nothing; any other field (or another trigger) is refused, so a typo such
    as `{"day": 7}` is a 400 rather than a silently ignored option.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    days: int | None = Field(default=None, ge=1, le=30, strict=True)
    trigger: Literal["scheduler"] | None = None


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
