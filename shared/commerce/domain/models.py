"""Documents the backend keeps, as validated values. Storage layout: docs/data-model.md."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from enum import StrEnum
from typing import Any, Protocol, TypeVar

from pydantic import BaseModel, ConfigDict, Field

from commerce.domain.documents import Document as Document  # re-exported
from commerce.domain.email_address import usable_address
from commerce.domain.ids import derived_id as derived_id  # re-exported
from commerce.domain.orders import OrderState, is_entitled


def mask_email(email: str) -> str:
    """`jane@example.com` -> `j***@example.com` (for pages and support views). Never
    a control character: callers mask validated addresses, and anything else is
    masked to `***`."""
    address = usable_address(email)
    if address is None:
        return "***"
    local, _, domain = address.partition("@")
    return f"{local[:1]}***@{domain}"


class CheckoutFacts(Protocol):
    """What an order keeps of a Checkout Session (`purchase.schemas.SessionFacts`)."""

    @property
    def id(self) -> str: ...
    @property
    def email(self) -> str | None: ...
    @property
    def amount_total(self) -> int | None: ...
    @property
    def currency(self) -> str | None: ...
    @property
    def locale(self) -> str: ...
    @property
    def payment_intent_id(self) -> str | None: ...
    @property
    def referral(self) -> str | None: ...
    @property
    def livemode(self) -> bool: ...


class Order(Document):
    """Keyed by the Stripe Checkout Session id."""

    state: OrderState
    created_at: datetime
    updated_at: datetime
    customer_id: str | None = None
    email_masked: str | None = None
    amount_total: int | None = None
    amount_refunded: int = 0
    currency: str | None = None
    locale: str = "en"
    payment_intent_id: str | None = None
    license_id: str | None = None
    download_token_ids: tuple[str, ...] = ()
    # The document ids (token hashes) of every download grant issued for this order by
    # fulfillment and re-send, each added in the transaction that creates the grant, so
    # a refund or lost dispute reads and revokes them by key (a query inside its
    # transaction stalled the store under concurrent refunds: docs/performance.md,
    # "Launch day"). None: an order written before the list existed; its grants are
    # found by a query outside the transaction (`Fulfillment`). Update-check links are
    # not listed (short-lived; refused at redemption by the live entitlement check).
    download_grant_ids: tuple[str, ...] | None = None
    referral: str | None = None
    product_id: str = "genx"
    channel: str = "stable"
    livemode: bool = False
    last_event_id: str | None = None
    # Why a person must look at this order (`domain.email_address.AddressProblem`
    # values: paid, fulfilled, but no usable e-mail address); None when nothing is due.
    needs_attention: str | None = None
    # Why a paid session was not fulfilled (state `rejected`): a `payments.Rejection`.
    rejection_reason: str | None = None
    # Stripe Radar's early fraud warning on the payment (`issfr_...`): the license is
    # suspended (issued suspended if the warning came first) until support decides.
    fraud_warning_id: str | None = None

    @classmethod
    def from_session(
        cls,
        session: CheckoutFacts,
        *,
        state: OrderState,
        now: datetime,
        product_id: str,
        **fields: Any,
    ) -> Order:
        """A new order for `session` (the session's facts, then `fields`)."""
        return cls.model_validate(
            {
                "id": session.id,
                "state": state,
                "created_at": now,
                "updated_at": now,
                "product_id": product_id,
                "download_grant_ids": (),
                **session_facts(session),
                **fields,
            }
        )

    @classmethod
    def placeholder(
        cls, order_id: str, *, state: OrderState, now: datetime, product_id: str
    ) -> Order:
        """The order of a session whose payment events have not arrived yet (a refund or
        dispute came first): it records the state, so a later fulfillment is blocked."""
        return cls(
            id=order_id,
            state=state,
            created_at=now,
            updated_at=now,
            product_id=product_id,
            download_grant_ids=(),
        )

    def with_session(self, session: CheckoutFacts, **fields: Any) -> Order:
        """This order with `session`'s facts (and `fields`) written over it."""
        return self.model_copy(update={**session_facts(session), **fields})


def session_facts(session: CheckoutFacts) -> dict[str, Any]:
    """The fields an order takes from its Checkout Session."""
    return {
        "email_masked": mask_email(email) if (email := usable_address(session.email)) else None,
        "amount_total": session.amount_total,
        "currency": session.currency,
        "locale": session.locale,
        "payment_intent_id": session.payment_intent_id,
        "referral": session.referral,
        "livemode": session.livemode,
    }


class Customer(Document):
    """Keyed by `customer_id(normalized e-mail, pepper)`; the address is kept once, here."""

    email: str
    created_at: datetime
    updated_at: datetime
    locale: str = "en"
    order_ids: tuple[str, ...] = ()

    @classmethod
    def linked_to(
        cls,
        existing: Customer | None,
        *,
        customer_id: str,
        email: str,
        locale: str,
        order_id: str,
        now: datetime,
    ) -> Customer:
        """The customer once `order_id` is theirs: created by their first order (`email`
        normalized by the caller, kept once, here), each order listed once."""
        base = existing or cls(
            id=customer_id, email=email, created_at=now, updated_at=now, locale=locale
        )
        order_ids = tuple(dict.fromkeys((*base.order_ids, order_id)))
        return base.model_copy(update={"order_ids": order_ids, "updated_at": now})


class LicenseStatus(StrEnum):
    ACTIVE = "active"
    SUSPENDED = "suspended"  # dispute open, or an early fraud warning under review
    REVOKED = "revoked"


class Entitlement(StrEnum):
    """Whether a license (and its order) still entitles to downloads, updates and
    activations, and if not, why: the first reason in this order wins."""

    ENTITLED = "entitled"
    ORDER_REFUNDED = "order_refunded"
    ORDER_DISPUTED = "order_disputed"
    ORDER_REVOKED = "order_revoked"
    ORDER_NOT_ENTITLED = "order_not_entitled"
    LICENSE_REVOKED = "license_revoked"
    LICENSE_SUSPENDED = "license_suspended"


_ORDER_REFUSALS = {
    OrderState.REFUNDED: Entitlement.ORDER_REFUNDED,
    OrderState.DISPUTED: Entitlement.ORDER_DISPUTED,
    OrderState.REVOKED: Entitlement.ORDER_REVOKED,
}


def entitlement(order_state: OrderState | None, status: LicenseStatus | None) -> Entitlement:
    """The one entitlement rule: the order speaks first (a refund answers "refunded"
    even though fulfillment also revoked the license), then the license's own status.
    None: the order or license does not exist."""
    if order_state is None:
        return Entitlement.ORDER_NOT_ENTITLED
    if not is_entitled(order_state):
        return _ORDER_REFUSALS.get(order_state, Entitlement.ORDER_NOT_ENTITLED)
    if status is None or status is LicenseStatus.REVOKED:
        return Entitlement.LICENSE_REVOKED
    if status is LicenseStatus.SUSPENDED:
        return Entitlement.LICENSE_SUSPENDED
    return Entitlement.ENTITLED


class Seen(Protocol):
    """An activation as the activation policy sees it."""

    @property
    def id(self) -> str: ...
    @property
    def last_seen_at(self) -> datetime: ...


SeenT = TypeVar("SeenT", bound=Seen)


BETA_CHANNEL = "beta"


class License(Document):
    order_id: str
    customer_id: str | None
    key_hash: str
    key_hint: str
    generation: int = 1
    secret_id: str
    status: LicenseStatus = LicenseStatus.ACTIVE
    status_reason: str | None = None
    product_id: str = "genx"
    channel: str = "stable"
    # Beta releases only by an explicit opt-in set by support (`commerce license beta`).
    beta_opt_in: bool = False
    entitled_major_versions: tuple[int, ...] = (1,)
    activation_limit: int = 3
    # The order's state, written in every transaction that changes the order's state
    # (fulfillment, refunds, disputes, support revocation), so a license decision
    # needs the license document alone. A license only exists for a fulfilled order.
    order_state: OrderState = OrderState.FULFILLED
    # Ids of the machines bound to the license (`activations/{id}`). Every activation
    # and deactivation rewrites it in its transaction, so concurrent activations of one
    # license serialise on this document and never pass `activation_limit`.
    activation_ids: tuple[str, ...] = ()
    created_at: datetime
    updated_at: datetime

    def entitlement(self, order_state: OrderState | None = None) -> Entitlement:
        """`entitlement` of this license, with its order's state as mirrored on it, or
        as read from the order document (`order_state`) where that was read anyway."""
        return entitlement(order_state or self.order_state, self.status)

    @property
    def is_entitled(self) -> bool:
        return self.entitlement() is Entitlement.ENTITLED

    def allows_channel(self, channel: str) -> bool:
        """The release channels this license may ask for: its own, and `beta` only
        after support opted it in (never a channel the caller simply names)."""
        return channel == self.channel or (channel == BETA_CHANNEL and self.beta_opt_in)

    # -- standing: each returns the update to write (None: nothing changes) ----------
    def mirror(
        self, order_state: OrderState | None, now: datetime, **status_changes: Any
    ) -> dict[str, Any] | None:
        """The order's new state written on the license (`order_state`: license
        decisions read the license alone), with any change of its own status, as one
        update for the unit of work that changes the order."""
        state = order_state or self.order_state
        if self.order_state is state and not status_changes:
            return None
        return {**status_changes, "order_state": state, "updated_at": now}

    def revoke(
        self, reason: str, *, order_state: OrderState | None, now: datetime
    ) -> dict[str, Any] | None:
        """Revoked for good (refund, lost dispute); a revoked license stays as it was
        revoked and only mirrors its order."""
        if self.status is LicenseStatus.REVOKED:
            return self.mirror(order_state, now)
        return self.mirror(order_state, now, status=LicenseStatus.REVOKED, status_reason=reason)

    def suspend(
        self, *, order_state: OrderState, now: datetime, reason: str = "dispute"
    ) -> dict[str, Any] | None:
        """A dispute opened, or an early fraud warning (`reason`): an active license is
        suspended until it is decided."""
        if self.status is LicenseStatus.ACTIVE:
            return self.mirror(
                order_state, now, status=LicenseStatus.SUSPENDED, status_reason=reason
            )
        return self.mirror(order_state, now)

    def restore(self, *, order_state: OrderState, now: datetime) -> dict[str, Any] | None:
        """A dispute won: a suspended license is active again."""
        if self.status is LicenseStatus.SUSPENDED:
            return self.mirror(order_state, now, status=LicenseStatus.ACTIVE, status_reason=None)
        return self.mirror(order_state, now)

    # -- the activation policy ----------------------------------------------------------
    def make_room(
        self, holders: Sequence[SeenT], *, stale_before: datetime
    ) -> tuple[list[str], list[SeenT], bool]:
        """Room for one more machine: (the slots that stay, the activations released,
        whether one more fits).

        `holders` are the activations of the license that still exist (ids whose
        document vanished lose their slot). While the license is at its
        `activation_limit`, machines not seen since `stale_before` are released, the
        longest unseen first; no room when every slot is held by a machine seen since.
        """
        slots = [holder.id for holder in holders]
        stale = sorted(
            (holder for holder in holders if holder.last_seen_at < stale_before),
            key=lambda holder: holder.last_seen_at,
        )
        released: list[SeenT] = []
        while len(slots) >= self.activation_limit and stale:
            oldest = stale.pop(0)
            slots.remove(oldest.id)
            released.append(oldest)
        return slots, released, len(slots) < self.activation_limit


class Activation(Document):
    """`activations/{act_ + sha256(license id, fingerprint hash)}`: one machine binding."""

    license_id: str
    fingerprint_sha256: str
    label: str | None = None
    created_at: datetime
    last_seen_at: datetime


class WebhookEventRecord(Document):
    """The ledger entry of one Stripe event id: its existence means 'processed'."""

    type: str
    received_at: datetime
    outcome: str
    order_id: str | None = None
    purge_at: datetime | None = None


class EmailJobKind(StrEnum):
    FULFILLMENT = "fulfillment"
    RESEND = "resend"
    REISSUE = "reissue"


class EmailJobState(StrEnum):
    PENDING = "pending"
    SENDING = "sending"
    SENT = "sent"
    FAILED = "failed"  # permanent failure (bad address, provider 4xx)
    DEAD = "dead"  # attempts exhausted


class EmailJob(Document):
    """Outbox entry. Holds ids only: keys and tokens are re-derived by the worker."""

    kind: EmailJobKind
    state: EmailJobState = EmailJobState.PENDING
    customer_id: str
    order_ids: tuple[str, ...] = ()
    license_ids: tuple[str, ...] = ()
    download_token_ids: tuple[str, ...] = ()
    locale: str = "en"
    attempts: int = 0
    created_at: datetime
    updated_at: datetime
    enqueued_at: datetime | None = None
    # When the job is due (pending): at creation, at a re-queue, or the retry the worker
    # scheduled after a transient failure (`commerce.domain.email_retry`).
    next_attempt_at: datetime | None = None
    sent_at: datetime | None = None
    last_error: str | None = None
    provider_message_id: str | None = None


class AuditEntry(BaseModel):
    """One commerce-critical fact. Never holds keys, tokens, secrets or full e-mails."""

    model_config = ConfigDict(frozen=True)

    action: str
    at: datetime
    actor: str = "system"
    order_id: str | None = None
    license_id: str | None = None
    customer_id: str | None = None
    event_id: str | None = None
    details: dict[str, Any] = Field(default_factory=dict)
    purge_at: datetime | None = None
