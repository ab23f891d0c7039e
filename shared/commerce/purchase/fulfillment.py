"""Order changes driven by payment events, each one Firestore transaction.

Every change commits together with its ledger entry (`webhook_events/{ledger id}`: a
Stripe event id, or `reconcile:<session id>`), so a change happens once per event or
not at all. Documents are keyed by Stripe's ids (order = Checkout Session id, license
and download grant and e-mail job ids derived from it), and every transaction first
reads the documents it may create: two deliveries racing for one session (the same
event twice, or `completed` and `async_payment_succeeded`) conflict in Firestore, the
loser re-runs, sees the winner's order and license, and changes nothing.

Plaintext keys and tokens exist here only in memory, long enough to hash them: the
e-mail worker re-derives them from the stored ids.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from commerce.clock import Clock
from commerce.domain.models import (
    Customer,
    EmailJobKind,
    License,
    LicenseStatus,
    Order,
    WebhookEventRecord,
    derived_id,
    mask_email,
)
from commerce.domain.orders import BLOCKING_STATES, OrderState, can_transition, transition
from commerce.grants import new_download_grant, new_email_job
from commerce.keys import normalize_email
from commerce.logs import get_logger
from commerce.purchase.schemas import Outcome, SessionFacts
from commerce.repositories import Transaction, run_transaction
from commerce.repositories.base import Repository, get_together

if TYPE_CHECKING:
    from commerce.audit import Auditor
    from commerce.email_queue import EmailQueue
    from commerce.keys import KeyService
    from commerce.repositories import (
        CustomerRepository,
        DownloadTokenRepository,
        EmailJobRepository,
        LicenseRepository,
        OrderRepository,
        WebhookEventRepository,
    )
    from commerce.settings import Settings

LEDGER_RETENTION = timedelta(days=90)


DEFAULT_CHANNEL = "stable"
_log = get_logger("commerce.purchase.fulfillment")


def license_id_for(session_id: str) -> str:
    return derived_id("lic", session_id)


def fulfillment_job_id(session_id: str) -> str:
    return derived_id("email", "fulfillment", session_id)


def fulfillment_token_id(session_id: str) -> str:
    # Not secret: the token is HMAC(derivation secret, token id). Derived so that a
    # second fulfillment attempt would collide instead of minting another link.
    return derived_id("tok", "fulfillment", session_id)


def reconcile_ledger_id(session_id: str) -> str:
    return f"reconcile:{session_id}"


@dataclass(frozen=True)
class Change:
    """What a transaction decided; `email_job_id` is enqueued after commit."""

    outcome: Outcome
    order_id: str | None = None
    email_job_id: str | None = None


class Fulfillment:
    def __init__(
        self,
        *,
        settings: Settings,
        clock: Clock,
        keys: KeyService,
        auditor: Auditor,
        orders: OrderRepository,
        customers: CustomerRepository,
        licenses: LicenseRepository,
        download_tokens: DownloadTokenRepository,
        webhook_events: WebhookEventRepository,
        email_jobs: EmailJobRepository,
        email_queue: Callable[[], EmailQueue],
    ) -> None:
        self.settings = settings
        self.clock = clock
        self.keys = keys
        self.auditor = auditor
        self.orders = orders
        self.customers = customers
        self.licenses = licenses
        self.download_tokens = download_tokens
        self.webhook_events = webhook_events
        self.email_jobs = email_jobs
        self._email_queue = email_queue
        self._session_locks = SessionTurns()

    # -- plumbing --------------------------------------------------------------------
    def already_recorded(self, ledger_id: str) -> bool:
        """A cheap pre-check (outside any transaction) to skip provider lookups."""
        return self.webhook_events.get(ledger_id) is not None

    def _apply(
        self,
        ledger_id: str,
        event_type: str,
        decide: Callable[[Transaction, datetime, list[Any]], Change],
        reads: Sequence[tuple[Repository[Any], str]] = (),
    ) -> Change:
        """Run `decide` and write the ledger entry in one transaction (once per ledger id).

        The ledger entry and the documents named in `reads` are read together, in one
        round trip, before any write (Firestore's rule); `decide` gets them (None when
        missing) in the order asked. The ledger is written last.
        """

        def work(tx: Transaction) -> Change:
            ledger, *documents = get_together([(self.webhook_events, ledger_id), *reads], tx)
            if ledger is not None:
                return Change(Outcome.DUPLICATE)
            now = self.clock.now()
            change = decide(tx, now, documents)
            self.webhook_events.create(
                WebhookEventRecord(
                    id=ledger_id,
                    type=event_type,
                    received_at=now,
                    outcome=change.outcome.value,
                    order_id=change.order_id,
                    purge_at=now + LEDGER_RETENTION,
                ),
                tx,
            )
            return change

        change = run_transaction(self.orders.db, work)
        if change.email_job_id is not None:
            self._hand_to_worker(change.email_job_id, change.order_id)
        return change

    def _hand_to_worker(self, job_id: str, order_id: str | None) -> None:
        """After commit: the job is safe in the outbox; a failed enqueue only delays it."""
        try:
            self._email_queue().enqueue(job_id)
        except Exception as exc:
            _log.warning(
                "e-mail job not enqueued; the sweeper will pick it up",
                extra={
                    "event": "email.enqueue_failed",
                    "job_id": job_id,
                    "order_id": order_id,
                    "error_type": type(exc).__name__,
                },
            )

    def record_only(self, ledger_id: str, event_type: str, outcome: Outcome) -> Change:
        """Acknowledge an event we do not act on, once."""
        return self._apply(ledger_id, event_type, lambda tx, now, documents: Change(outcome))

    def is_our_session(self, session: SessionFacts) -> bool:
        return session.product_id == self.settings.product_id

    # -- payment ---------------------------------------------------------------------
    def fulfil(
        self, session: SessionFacts, *, ledger_id: str, event_type: str, event_id: str | None
    ) -> Change:
        """Issue the license, download grant and e-mail job for a paid session, once."""
        session_id = session.id
        license_id = license_id_for(session_id)
        customer_id = self.keys.customer_id_for(session.email) if session.email else None

        reads: list[tuple[Repository[Any], str]] = [
            (self.orders, session_id),
            (self.licenses, license_id),
        ]
        if customer_id is not None:
            reads.append((self.customers, customer_id))

        def decide(tx: Transaction, now: datetime, documents: list[Any]) -> Change:
            order: Order | None = documents[0]
            existing_license: License | None = documents[1]
            customer: Customer | None = documents[2] if customer_id is not None else None
            if order is not None and order.state in BLOCKING_STATES:
                self.auditor.record(
                    "order.fulfillment_blocked",
                    tx=tx,
                    order_id=session_id,
                    event_id=event_id,
                    state=order.state.value,
                )
                return Change(Outcome.BLOCKED, session_id)
            if existing_license is not None or (
                order is not None and order.state in (OrderState.FULFILLED, OrderState.DISPUTED)
            ):
                return Change(Outcome.ALREADY_FULFILLED, session_id)
            return self._issue(tx, now, session, order, customer, customer_id, event_id, license_id)

        with self._session_locks.turn(session_id):
            change = self._apply(ledger_id, event_type, decide, reads)
        _log.info(
            "fulfillment %s",
            change.outcome.value,
            extra={"event": "fulfillment." + change.outcome.value, "order_id": session_id},
        )
        return change

    def _issue(
        self,
        tx: Transaction,
        now: datetime,
        session: SessionFacts,
        order: Order | None,
        customer: Customer | None,
        customer_id: str | None,
        event_id: str | None,
        license_id: str,
    ) -> Change:
        session_id = session.id
        state = order.state if order is not None else None
        if state is not OrderState.PAID:
            state = transition(state, OrderState.PAID)
        state = transition(state, OrderState.FULFILLED)

        issued = self.keys.issue_key(license_id)
        grant = new_download_grant(
            self.keys,
            order_id=session_id,
            license_id=license_id,
            channel=DEFAULT_CHANNEL,
            now=now,
            ttl=timedelta(hours=self.settings.download_token_ttl_hours),
            max_redemptions=self.settings.download_max_redemptions,
            token_id=fulfillment_token_id(session_id),
        )
        fields = {
            "state": state,
            "updated_at": now,
            "customer_id": customer_id,
            "email_masked": mask_email(session.email) if session.email else None,
            "amount_total": session.amount_total,
            "currency": session.currency,
            "locale": session.locale,
            "payment_intent_id": session.payment_intent_id,
            "license_id": license_id,
            "download_token_ids": (grant.token_id,),
            "referral": session.referral,
            "product_id": self.settings.product_id,
            "channel": DEFAULT_CHANNEL,
            "livemode": session.livemode,
            "last_event_id": event_id,
        }
        new_order = (
            order.model_copy(update=fields)
            if order is not None
            else Order.model_validate({"id": session_id, "created_at": now, **fields})
        )
        self.orders.put(new_order, tx)
        if customer_id is not None and session.email is not None:
            if customer is None:
                customer = Customer(
                    id=customer_id,
                    email=normalize_email(session.email),
                    created_at=now,
                    updated_at=now,
                    locale=session.locale,
                )
            self.customers.put(
                customer.model_copy(
                    update={
                        "order_ids": tuple(dict.fromkeys((*customer.order_ids, session_id))),
                        "updated_at": now,
                    }
                ),
                tx,
            )
        self.licenses.create(
            License(
                id=license_id,
                order_id=session_id,
                customer_id=customer_id,
                key_hash=issued.key_hash,
                key_hint=issued.key_hint,
                generation=issued.generation,
                secret_id=issued.secret_id,
                product_id=self.settings.product_id,
                channel=DEFAULT_CHANNEL,
                activation_limit=self.settings.license_activation_limit,
                order_state=state,
                created_at=now,
                updated_at=now,
            ),
            tx,
        )
        self.download_tokens.create(grant, tx)
        job_id: str | None = None
        if customer_id is not None:
            job_id = fulfillment_job_id(session_id)
            self.email_jobs.create(
                new_email_job(
                    job_id,
                    kind=EmailJobKind.FULFILLMENT,
                    customer_id=customer_id,
                    now=now,
                    order_ids=(session_id,),
                    license_ids=(license_id,),
                    download_token_ids=(grant.token_id,),
                    locale=session.locale,
                ),
                tx,
            )
        else:
            _log.warning(
                "paid session without an e-mail address: no e-mail job",
                extra={"event": "fulfillment.no_email", "order_id": session_id},
            )
        self.auditor.record(
            "order.fulfilled",
            tx=tx,
            order_id=session_id,
            license_id=license_id,
            customer_id=customer_id,
            event_id=event_id,
            amount_total=session.amount_total,
            currency=session.currency,
            referral=session.referral,
            email_job_id=job_id,
        )
        self.auditor.record(
            "license.issued",
            tx=tx,
            order_id=session_id,
            license_id=license_id,
            customer_id=customer_id,
            event_id=event_id,
            key_hint=issued.key_hint,
            token_id=grant.token_id,
        )
        return Change(Outcome.FULFILLED, session_id, job_id)

    def record_pending(
        self, session: SessionFacts, *, ledger_id: str, event_type: str, event_id: str
    ) -> Change:
        """A completed session whose payment is still on its way (e.g. SEPA debit)."""

        def decide(tx: Transaction, now: datetime, documents: list[Any]) -> Change:
            order: Order | None = documents[0]
            if order is not None:
                return Change(Outcome.IGNORED, session.id)
            self.orders.create(
                Order(
                    id=session.id,
                    state=transition(None, OrderState.PENDING),
                    created_at=now,
                    updated_at=now,
                    email_masked=mask_email(session.email) if session.email else None,
                    amount_total=session.amount_total,
                    currency=session.currency,
                    locale=session.locale,
                    payment_intent_id=session.payment_intent_id,
                    referral=session.referral,
                    product_id=self.settings.product_id,
                    livemode=session.livemode,
                    last_event_id=event_id,
                ),
                tx,
            )
            self.auditor.record("order.pending", tx=tx, order_id=session.id, event_id=event_id)
            return Change(Outcome.PENDING, session.id)

        return self._apply(ledger_id, event_type, decide, [(self.orders, session.id)])

    def mark_failed(
        self, session: SessionFacts, *, ledger_id: str, event_type: str, event_id: str
    ) -> Change:
        """The delayed payment failed: the order can never be fulfilled."""

        def decide(tx: Transaction, now: datetime, documents: list[Any]) -> Change:
            order: Order | None = documents[0]
            state = order.state if order is not None else None
            if state is None:
                state = transition(None, OrderState.PENDING)
            if not can_transition(state, OrderState.FAILED):
                _log.warning(
                    "async payment failure for an order in state %s",
                    state.value,
                    extra={"event": "fulfillment.unexpected_failure", "order_id": session.id},
                )
                return Change(Outcome.IGNORED, session.id)
            base = order or Order(
                id=session.id,
                state=state,
                created_at=now,
                updated_at=now,
                email_masked=mask_email(session.email) if session.email else None,
                amount_total=session.amount_total,
                currency=session.currency,
                locale=session.locale,
                payment_intent_id=session.payment_intent_id,
                product_id=self.settings.product_id,
                livemode=session.livemode,
            )
            failed = transition(state, OrderState.FAILED)
            self.orders.put(
                base.model_copy(
                    update={"state": failed, "updated_at": now, "last_event_id": event_id}
                ),
                tx,
            )
            self.auditor.record("order.failed", tx=tx, order_id=session.id, event_id=event_id)
            return Change(Outcome.FAILED, session.id)

        return self._apply(ledger_id, event_type, decide, [(self.orders, session.id)])

    # -- after payment: refunds and disputes -------------------------------------------
    def _order_and_license(
        self, session_id: str, license_id: str
    ) -> list[tuple[Repository[Any], str]]:
        return [(self.orders, session_id), (self.licenses, license_id)]

    def _placeholder_order(self, session_id: str, state: OrderState, now: datetime) -> Order:
        """The order of a session whose payment events have not arrived yet (a refund or
        dispute came first): it records the state so a later fulfillment is blocked."""
        return Order(
            id=session_id,
            state=state,
            created_at=now,
            updated_at=now,
            product_id=self.settings.product_id,
        )

    def _revoke_license(
        self,
        tx: Transaction,
        now: datetime,
        session_id: str,
        license_: License | None,
        reason: str,
        event_id: str,
        order_state: OrderState | None,
    ) -> None:
        """Revoke the order's license if it has one (read by the caller, before any write)
        and mirror the order's new state on it."""
        if license_ is None:
            return
        if license_.status is LicenseStatus.REVOKED:  # revocation is final
            self._set_license_standing(tx, now, license_, order_state)
            return
        self._set_license_standing(
            tx, now, license_, order_state, status=LicenseStatus.REVOKED, status_reason=reason
        )
        self.auditor.record(
            "license.revoked",
            tx=tx,
            order_id=session_id,
            license_id=license_.id,
            event_id=event_id,
            reason=reason,
        )

    def _dispute_step(
        self,
        tx: Transaction,
        now: datetime,
        session_id: str,
        license_: License | None,
        order_state: OrderState,
        *,
        flip: tuple[LicenseStatus, LicenseStatus, str | None],
        action: str,
        ledger_id: str,
    ) -> None:
        """A dispute opening or being won: the order moves to `order_state`, and the
        license, if its status is flip[0], moves to flip[1] (reason flip[2]); audited."""
        self.orders.update(
            session_id, {"state": order_state, "updated_at": now, "last_event_id": ledger_id}, tx
        )
        from_status, to_status, reason = flip
        changes = (
            {"status": to_status, "status_reason": reason}
            if license_ is not None and license_.status is from_status
            else {}
        )
        self._set_license_standing(tx, now, license_, order_state, **changes)
        self.auditor.record(
            action,
            tx=tx,
            order_id=session_id,
            license_id=license_id_for(session_id),
            event_id=ledger_id,
        )

    def _set_license_standing(
        self,
        tx: Transaction,
        now: datetime,
        license_: License | None,
        order_state: OrderState | None,
        **status_changes: Any,
    ) -> None:
        """Write the order's new state on its license (`License.order_state`: license
        decisions read the license alone) with any change of the license's own status,
        in one update, in the transaction that changes the order."""
        if license_ is None:
            return
        state = order_state or license_.order_state
        if license_.order_state is state and not status_changes:
            return
        self.licenses.update(
            license_.id, {**status_changes, "order_state": state, "updated_at": now}, tx
        )

    def _revoke_grants(self, tx: Transaction, grants_hashes: list[str]) -> None:
        for token_hash in grants_hashes:
            self.download_tokens.update(token_hash, {"revoked": True}, tx)

    def record_refund(
        self,
        session_id: str,
        *,
        payment_intent_id: str | None,
        amount_refunded: int,
        fully_refunded: bool,
        ledger_id: str,
        event_type: str,
    ) -> Change:
        """Full refund: order refunded, license and every grant revoked. Partial: amount only.

        Works before the order exists (events out of order): the refunded order then
        blocks any later fulfillment of the session.
        """
        license_id = license_id_for(session_id)

        def decide(tx: Transaction, now: datetime, documents: list[Any]) -> Change:
            order: Order | None = documents[0]
            license_: License | None = documents[1]
            grants = self.download_tokens.by_order(session_id, tx)
            state = order.state if order is not None else None
            common = {
                "amount_refunded": amount_refunded,
                "updated_at": now,
                "last_event_id": ledger_id,
                "payment_intent_id": payment_intent_id
                or (order.payment_intent_id if order else None),
            }
            if not fully_refunded:
                if order is None:
                    order = self._placeholder_order(
                        session_id, transition(None, OrderState.PENDING), now
                    )
                self.orders.put(order.model_copy(update=common), tx)
                self.auditor.record(
                    "order.partially_refunded",
                    tx=tx,
                    order_id=session_id,
                    event_id=ledger_id,
                    amount_refunded=amount_refunded,
                )
                return Change(Outcome.PARTIALLY_REFUNDED, session_id)
            new_state = state
            if can_transition(state, OrderState.REFUNDED):
                new_state = transition(state, OrderState.REFUNDED)
            base = order or self._placeholder_order(session_id, OrderState.REFUNDED, now)
            self.orders.put(base.model_copy(update={**common, "state": new_state}), tx)
            self._revoke_license(tx, now, session_id, license_, "refund", ledger_id, new_state)
            active_grants = [g.token_hash for g in grants if not g.revoked]
            self._revoke_grants(tx, active_grants)
            self.auditor.record(
                "order.refunded",
                tx=tx,
                order_id=session_id,
                event_id=ledger_id,
                amount_refunded=amount_refunded,
                previous_state=state.value if state else None,
                revoked_grants=len(active_grants),
            )
            return Change(Outcome.REFUNDED, session_id)

        return self._apply(
            ledger_id, event_type, decide, self._order_and_license(session_id, license_id)
        )

    def open_dispute(self, session_id: str, *, ledger_id: str, event_type: str) -> Change:
        """A chargeback: the order leaves the entitled states, the license is suspended."""
        license_id = license_id_for(session_id)

        def decide(tx: Transaction, now: datetime, documents: list[Any]) -> Change:
            order: Order | None = documents[0]
            license_: License | None = documents[1]
            if order is None:
                _log.warning(
                    "dispute for a session without an order",
                    extra={"event": "dispute.no_order", "order_id": session_id},
                )
                return Change(Outcome.NO_ORDER, session_id)
            if not can_transition(order.state, OrderState.DISPUTED):
                return Change(Outcome.IGNORED, session_id)
            self._dispute_step(
                tx,
                now,
                session_id,
                license_,
                OrderState.DISPUTED,
                flip=(LicenseStatus.ACTIVE, LicenseStatus.SUSPENDED, "dispute"),
                action="order.disputed",
                ledger_id=ledger_id,
            )
            return Change(Outcome.DISPUTED, session_id)

        return self._apply(
            ledger_id, event_type, decide, self._order_and_license(session_id, license_id)
        )

    def close_dispute(
        self, session_id: str, *, won: bool, ledger_id: str, event_type: str
    ) -> Change:
        """Won: back to fulfilled, license active. Lost: revoked, like a refund."""
        license_id = license_id_for(session_id)

        def decide(tx: Transaction, now: datetime, documents: list[Any]) -> Change:
            order: Order | None = documents[0]
            license_: License | None = documents[1]
            grants = [] if won else self.download_tokens.by_order(session_id, tx)
            state = order.state if order is not None else None
            if won:
                if state is not OrderState.DISPUTED:
                    return Change(Outcome.IGNORED, session_id)
                self._dispute_step(
                    tx,
                    now,
                    session_id,
                    license_,
                    transition(state, OrderState.FULFILLED),
                    flip=(LicenseStatus.SUSPENDED, LicenseStatus.ACTIVE, None),
                    action="order.dispute_won",
                    ledger_id=ledger_id,
                )
                return Change(Outcome.RESTORED, session_id)
            if not can_transition(state, OrderState.REVOKED):
                return Change(Outcome.IGNORED, session_id)
            revoked = transition(state, OrderState.REVOKED)
            base = order or self._placeholder_order(session_id, revoked, now)
            self.orders.put(
                base.model_copy(
                    update={"state": revoked, "updated_at": now, "last_event_id": ledger_id}
                ),
                tx,
            )
            self._revoke_license(tx, now, session_id, license_, "dispute_lost", ledger_id, revoked)
            self._revoke_grants(tx, [g.token_hash for g in grants if not g.revoked])
            self.auditor.record(
                "order.dispute_lost",
                tx=tx,
                order_id=session_id,
                license_id=license_id,
                event_id=ledger_id,
            )
            return Change(Outcome.REVOKED, session_id)

        return self._apply(
            ledger_id, event_type, decide, self._order_and_license(session_id, license_id)
        )


class SessionTurns:
    """Deliveries for one session inside one instance take turns instead of contending
    in Firestore (Stripe often sends `completed` with a retry or with
    `async_payment_succeeded`). One lock per session in flight, dropped when the last
    holder leaves, so different sessions never wait for each other (a fixed set of
    striped locks made about one delivery in ten wait for an unrelated session at
    concurrency 4). Correctness does not depend on it: across instances the transaction
    decides, and the loser re-reads and changes nothing."""

    def __init__(self) -> None:
        self._guard = threading.Lock()
        self._locks: dict[str, tuple[threading.Lock, int]] = {}

    @contextmanager
    def turn(self, session_id: str) -> Iterator[None]:
        with self._guard:
            lock, holders = self._locks.get(session_id, (threading.Lock(), 0))
            self._locks[session_id] = (lock, holders + 1)
        try:
            with lock:
                yield
        finally:
            with self._guard:
                lock, holders = self._locks[session_id]
                if holders == 1:
                    del self._locks[session_id]
                else:
                    self._locks[session_id] = (lock, holders - 1)
