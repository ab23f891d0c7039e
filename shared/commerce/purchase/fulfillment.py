"""Order changes driven by payment events, each one unit of work with its ledger entry.

Every change commits together with its ledger entry (`commerce.purchase.ledger`), so a
change happens once per event or not at all. Documents are keyed by Stripe's ids
(order = Checkout Session id; license, download grant and e-mail job ids derived from
it in `commerce.domain.ids`), and every change first reads the documents it may
create: two deliveries racing for one session (the same event twice, or `completed`
and `async_payment_succeeded`) conflict in Firestore, the loser re-runs, sees the
winner's order and license, and changes nothing.

Plaintext keys and tokens exist here only in memory, long enough to hash them: the
e-mail worker re-derives them from the stored ids.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from commerce.clock import Clock
from commerce.domain.email_address import check_address
from commerce.domain.ids import fulfillment_job_id as fulfillment_job_id  # re-exported
from commerce.domain.ids import fulfillment_token_id as fulfillment_token_id  # re-exported
from commerce.domain.ids import license_id_for as license_id_for  # re-exported
from commerce.domain.ids import reconcile_ledger_id as reconcile_ledger_id  # re-exported
from commerce.domain.models import (
    Customer,
    EmailJobKind,
    License,
    LicenseStatus,
    Order,
)
from commerce.domain.orders import BLOCKING_STATES, OrderState, can_transition, transition
from commerce.domain.payments import Verdict
from commerce.domain.tokens import DownloadGrant
from commerce.grants import new_download_grant, new_email_job
from commerce.keys import normalize_email
from commerce.logs import get_logger
from commerce.purchase.ledger import LEDGER_RETENTION as LEDGER_RETENTION  # re-exported
from commerce.purchase.ledger import Change, EventLedger
from commerce.purchase.schemas import Outcome, SessionFacts
from commerce.turns import Turns
from commerce.unit_of_work import Found, Key, Storage, UnitOfWork

# A verification's verdict and the session as Stripe answered it (`purchase.verification`).
Verified = tuple[Verdict, SessionFacts]

if TYPE_CHECKING:
    from commerce.audit import Auditor
    from commerce.email_queue import EmailQueue
    from commerce.keys import KeyService
    from commerce.settings import Settings

__all__ = ["Change", "Fulfillment"]

DEFAULT_CHANNEL = "stable"
FRAUD_WARNING_REASON = "early_fraud_warning"
_log = get_logger("commerce.purchase.fulfillment")


class Fulfillment:
    def __init__(
        self,
        *,
        settings: Settings,
        clock: Clock,
        keys: KeyService,
        auditor: Auditor,
        storage: Storage,
        ledger: EventLedger,
        email_queue: Callable[[], EmailQueue],
    ) -> None:
        self.settings = settings
        self.clock = clock
        self.keys = keys
        self.auditor = auditor
        self.storage = storage
        self.ledger = ledger
        self._email_queue = email_queue
        # Deliveries for one session inside one instance take turns instead of contending
        # (Stripe often sends `completed` with a retry or with `async_payment_succeeded`).
        self._session_locks = Turns()

    # -- plumbing --------------------------------------------------------------------
    def already_recorded(self, ledger_id: str) -> bool:
        """A cheap pre-check (outside any transaction) to skip provider lookups."""
        return self.ledger.already_recorded(ledger_id)

    def _apply(
        self,
        ledger_id: str,
        event_type: str,
        decide: Callable[[UnitOfWork, datetime, Found], Change],
        reads: Callable[[UnitOfWork], list[Key[Any]]] = lambda uow: [],
    ) -> Change:
        """`decide` and the ledger entry in one unit of work (once per ledger id); the
        e-mail job it created, if any, handed to the worker after commit."""
        change = self.ledger.once(ledger_id, event_type, decide, reads)
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
        return self._apply(ledger_id, event_type, lambda uow, now, found: Change(outcome))

    def is_our_session(self, session: SessionFacts) -> bool:
        return session.is_for(self.settings.product_id)

    # -- payment ---------------------------------------------------------------------
    def settle_paid(
        self,
        session: SessionFacts,
        verified: Callable[[], Verified],
        *,
        ledger_id: str,
        event_type: str,
        event_id: str | None,
    ) -> Change:
        """A paid session, verified and then fulfilled or rejected, in ONE unit of work.

        Its ledger entry, order, license and customer (the event's address) are read
        together first, which begins the transaction and locks them. A repeat of the
        event stops there (DUPLICATE), and so does an order already fulfilled or
        disputed (ALREADY_FULFILLED: whatever Stripe would say, that is the answer):
        neither asks Stripe. Otherwise `verified()` asks Stripe about the session
        (`purchase.verification`; the caller memoizes it, so a contention re-run of the
        unit does not ask again) and the session is fulfilled or rejected with Stripe's
        answer, in the same unit, so the locks are held during that one lookup. When
        Stripe cannot be asked, `verified()` raises and nothing is written."""
        session_id = session.id
        license_id = license_id_for(session_id)
        reported_email, reported_customer = self._customer_of(session)

        reads = _session_reads(session_id, license_id, reported_customer)

        def decide(uow: UnitOfWork, now: datetime, found: Found) -> Change:
            order = found[uow.orders.key(session_id)]
            if order is not None and order.state in (OrderState.FULFILLED, OrderState.DISPUTED):
                return Change(Outcome.ALREADY_FULFILLED, session_id)
            verdict, facts = verified()
            if not verdict.accepted:
                return self._rejected(uow, now, facts, order, verdict, ledger_id, event_id)
            email, customer_id = (
                (reported_email, reported_customer)
                if facts.email == session.email
                else self._customer_of(facts)
            )
            if customer_id is None:
                customer = None
            elif customer_id == reported_customer:
                customer = found[uow.customers.key(customer_id)]
            else:  # Stripe's address is not the event's: read its customer (before any write)
                key = uow.customers.key(customer_id)
                customer = uow.read(key)[key]
            existing_license = found[uow.licenses.key(license_id)]
            return self._fulfilled(
                uow, now, facts, order, existing_license, customer, customer_id, email,
                event_id, giveaway=verdict.giveaway,
            )  # fmt: skip

        with self._session_locks.turn(session_id):
            change = self._apply(ledger_id, event_type, decide, reads)
        if change.outcome is Outcome.REJECTED:
            self._alert_rejected(session_id, verified()[0], ledger_id)
        else:
            self._log_fulfillment(change, session_id)
        return change

    def fulfil(
        self,
        session: SessionFacts,
        *,
        ledger_id: str,
        event_type: str,
        event_id: str | None,
        giveaway: bool = False,
    ) -> Change:
        """Issue the license, download grant and e-mail job for a session the caller
        has verified with Stripe, once (the webhook and reconciliation go through
        `settle_paid`, which verifies inside the unit of work).

        `giveaway`: a free order the shop allows, audited as such."""
        session_id = session.id
        license_id = license_id_for(session_id)
        email, customer_id = self._customer_of(session)

        reads = _session_reads(session_id, license_id, customer_id)

        def decide(uow: UnitOfWork, now: datetime, found: Found) -> Change:
            customer = found[uow.customers.key(customer_id)] if customer_id is not None else None
            return self._fulfilled(
                uow, now, session, found[uow.orders.key(session_id)],
                found[uow.licenses.key(license_id)], customer, customer_id, email, event_id,
                giveaway=giveaway,
            )  # fmt: skip

        with self._session_locks.turn(session_id):
            change = self._apply(ledger_id, event_type, decide, reads)
        self._log_fulfillment(change, session_id)
        return change

    def _customer_of(self, session: SessionFacts) -> tuple[str | None, str | None]:
        """(usable address, customer id) of a session; both None without a usable address
        (validated on arrival: the order is flagged, see `_issue`)."""
        address = check_address(session.email).address
        return address, self.keys.customer_id_for(address) if address else None

    @staticmethod
    def _log_fulfillment(change: Change, session_id: str) -> None:
        _log.info(
            "fulfillment %s",
            change.outcome.value,
            extra={"event": "fulfillment." + change.outcome.value, "order_id": session_id},
        )

    def _fulfilled(
        self,
        uow: UnitOfWork,
        now: datetime,
        session: SessionFacts,
        order: Order | None,
        existing_license: License | None,
        customer: Customer | None,
        customer_id: str | None,
        email: str | None,
        event_id: str | None,
        *,
        giveaway: bool,
    ) -> Change:
        """The fulfilment decision over what the unit read: blocked, already done, or
        issued now."""
        session_id = session.id
        if order is not None and order.state in BLOCKING_STATES:
            self.auditor.record(
                "order.fulfillment_blocked",
                uow=uow,
                order_id=session_id,
                event_id=event_id,
                state=order.state.value,
            )
            return Change(Outcome.BLOCKED, session_id)
        if existing_license is not None or (
            order is not None and order.state in (OrderState.FULFILLED, OrderState.DISPUTED)
        ):
            return Change(Outcome.ALREADY_FULFILLED, session_id)
        change = self._issue(uow, now, session, order, customer, customer_id, event_id, email)
        if giveaway:
            self.auditor.record(
                "order.giveaway",
                uow=uow,
                order_id=session_id,
                event_id=event_id,
                amount_total=session.amount_total,
                currency=session.currency,
            )
        return change

    def _issue(
        self,
        uow: UnitOfWork,
        now: datetime,
        session: SessionFacts,
        order: Order | None,
        customer: Customer | None,
        customer_id: str | None,
        event_id: str | None,
        email: str | None,
    ) -> Change:
        session_id = session.id
        problem = check_address(session.email).problem
        license_id = license_id_for(session_id)
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
        base = order or Order.from_session(
            session, state=state, now=now, product_id=self.settings.product_id
        )
        uow.orders.put(
            base.with_session(
                session,
                state=state,
                updated_at=now,
                customer_id=customer_id,
                license_id=license_id,
                download_token_ids=(grant.token_id,),
                # Listed in the transaction that creates the grant: refunds read it by key.
                download_grant_ids=(*(base.download_grant_ids or ()), grant.token_hash),
                product_id=self.settings.product_id,
                channel=DEFAULT_CHANNEL,
                last_event_id=event_id,
                needs_attention=problem.value if problem else None,
            )
        )
        if customer_id is not None and email is not None:
            uow.customers.put(
                Customer.linked_to(
                    customer,
                    customer_id=customer_id,
                    email=normalize_email(email),
                    locale=session.locale,
                    order_id=session_id,
                    now=now,
                )
            )
        uow.licenses.create(
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
                **_fraud_hold(order),
                created_at=now,
                updated_at=now,
            )
        )
        uow.download_tokens.create(grant)
        job_id: str | None = None
        if customer_id is not None:
            job_id = fulfillment_job_id(session_id)
            uow.email_jobs.create(
                new_email_job(
                    job_id,
                    kind=EmailJobKind.FULFILLMENT,
                    customer_id=customer_id,
                    now=now,
                    order_ids=(session_id,),
                    license_ids=(license_id,),
                    download_token_ids=(grant.token_id,),
                    locale=session.locale,
                )
            )
        elif problem is not None:
            # Fulfilled all the same; support sets the address (`commerce orders set-email`).
            self.auditor.record(
                "order.needs_attention", uow=uow, order_id=session_id, event_id=event_id,
                reason=problem.value,
            )  # fmt: skip
            _log.error(
                "paid session without a usable e-mail address: no e-mail until support sets one",
                extra={
                    "event": "fulfillment.email_unusable",
                    "order_id": session_id,
                    "reason": problem.value,
                },
            )
        # One entry for the order and the license it issues (fulfilment is the only
        # place a license is created): it names both, so the trail of either finds it,
        # and carries what two entries ("order.fulfilled", "license.issued") used to;
        # one document fewer in the purchase's transaction (docs/data-model.md).
        self.auditor.record(
            "order.fulfilled",
            uow=uow,
            order_id=session_id,
            license_id=license_id,
            customer_id=customer_id,
            event_id=event_id,
            amount_total=session.amount_total,
            currency=session.currency,
            referral=session.referral,
            email_job_id=job_id,
            key_hint=issued.key_hint,
            token_id=grant.token_id,
        )
        return Change(Outcome.FULFILLED, session_id, job_id)

    def reject(
        self,
        session: SessionFacts,
        verdict: Verdict,
        *,
        ledger_id: str,
        event_type: str,
        event_id: str | None,
    ) -> Change:
        """A paid session that is not what we sell: the order is `rejected` with its
        reason, audited, an alert logged; no license. A settled order stays as it is.
        (The webhook and reconciliation reject through `settle_paid`.)"""

        def decide(uow: UnitOfWork, now: datetime, found: Found) -> Change:
            order = found[uow.orders.key(session.id)]
            return self._rejected(uow, now, session, order, verdict, ledger_id, event_id)

        with self._session_locks.turn(session.id):
            change = self._apply(ledger_id, event_type, decide, self._order_of(session.id))
        if change.outcome is Outcome.REJECTED:
            self._alert_rejected(session.id, verdict, ledger_id)
        return change

    def _rejected(
        self,
        uow: UnitOfWork,
        now: datetime,
        session: SessionFacts,
        order: Order | None,
        verdict: Verdict,
        ledger_id: str,
        event_id: str | None,
    ) -> Change:
        """The rejection decision over the order the unit read."""
        state = order.state if order is not None else None
        if state in (OrderState.FULFILLED, OrderState.DISPUTED):
            return Change(Outcome.ALREADY_FULFILLED, session.id)
        if not can_transition(state, OrderState.REJECTED):
            return Change(Outcome.BLOCKED, session.id)
        rejected = transition(state, OrderState.REJECTED)
        base = order or Order.from_session(
            session, state=rejected, now=now, product_id=self.settings.product_id
        )
        uow.orders.put(
            base.with_session(
                session,
                state=rejected,
                updated_at=now,
                rejection_reason=_reason(verdict),
                last_event_id=event_id or ledger_id,
            )
        )
        self.auditor.record(
            "order.rejected",
            uow=uow,
            order_id=session.id,
            event_id=event_id,
            reason=_reason(verdict),
            detail=verdict.detail,
            amount_total=session.amount_total,
            currency=session.currency,
            livemode=session.livemode,
        )
        return Change(Outcome.REJECTED, session.id)

    @staticmethod
    def _alert_rejected(session_id: str, verdict: Verdict, ledger_id: str) -> None:
        # ERROR: someone paid (or pretended to) for something we do not sell; a person
        # looks (refund, or fix the catalog). Monitoring matches the event name.
        reason = _reason(verdict)
        _log.error(
            "paid session rejected: %s",
            reason,
            extra={
                "event": "purchase.rejected",
                "order_id": session_id,
                "reason": reason,
                "detail": verdict.detail,
                "ledger_id": ledger_id,
            },
        )

    def record_pending(
        self, session: SessionFacts, *, ledger_id: str, event_type: str, event_id: str
    ) -> Change:
        """A completed session whose payment is still on its way (e.g. SEPA debit)."""

        def decide(uow: UnitOfWork, now: datetime, found: Found) -> Change:
            if found[uow.orders.key(session.id)] is not None:
                return Change(Outcome.IGNORED, session.id)
            uow.orders.create(
                Order.from_session(
                    session,
                    state=transition(None, OrderState.PENDING),
                    now=now,
                    product_id=self.settings.product_id,
                    last_event_id=event_id,
                )
            )
            self.auditor.record("order.pending", uow=uow, order_id=session.id, event_id=event_id)
            return Change(Outcome.PENDING, session.id)

        return self._apply(ledger_id, event_type, decide, self._order_of(session.id))

    def mark_failed(
        self, session: SessionFacts, *, ledger_id: str, event_type: str, event_id: str
    ) -> Change:
        """The delayed payment failed: the order can never be fulfilled."""

        def decide(uow: UnitOfWork, now: datetime, found: Found) -> Change:
            order = found[uow.orders.key(session.id)]
            state = order.state if order is not None else transition(None, OrderState.PENDING)
            if not can_transition(state, OrderState.FAILED):
                _log.warning(
                    "async payment failure for an order in state %s",
                    state.value,
                    extra={"event": "fulfillment.unexpected_failure", "order_id": session.id},
                )
                return Change(Outcome.IGNORED, session.id)
            base = order or Order.from_session(
                session, state=state, now=now, product_id=self.settings.product_id
            )
            failed = transition(state, OrderState.FAILED)
            uow.orders.put(
                base.model_copy(
                    update={"state": failed, "updated_at": now, "last_event_id": event_id}
                )
            )
            self.auditor.record("order.failed", uow=uow, order_id=session.id, event_id=event_id)
            return Change(Outcome.FAILED, session.id)

        return self._apply(ledger_id, event_type, decide, self._order_of(session.id))

    # -- after payment: refunds and disputes -------------------------------------------
    @staticmethod
    def _order_of(session_id: str) -> Callable[[UnitOfWork], list[Key[Any]]]:
        return lambda uow: [uow.orders.key(session_id)]

    @staticmethod
    def _order_and_license(session_id: str) -> Callable[[UnitOfWork], list[Key[Any]]]:
        license_id = license_id_for(session_id)
        return lambda uow: [uow.orders.key(session_id), uow.licenses.key(license_id)]

    def _placeholder_order(self, session_id: str, state: OrderState, now: datetime) -> Order:
        return Order.placeholder(
            session_id, state=state, now=now, product_id=self.settings.product_id
        )

    def _revoke_license(
        self,
        uow: UnitOfWork,
        now: datetime,
        session_id: str,
        license_: License | None,
        reason: str,
        event_id: str,
        order_state: OrderState | None,
    ) -> None:
        """Revoke the order's license if it has one (read by the caller, before any write)
        and mirror the order's new state on it; audited unless it was revoked before."""
        if license_ is None:
            return
        self._write_standing(
            uow, license_, license_.revoke(reason, order_state=order_state, now=now)
        )
        if license_.status is LicenseStatus.REVOKED:  # revocation is final
            return
        self.auditor.record(
            "license.revoked",
            uow=uow,
            order_id=session_id,
            license_id=license_.id,
            event_id=event_id,
            reason=reason,
        )

    def _dispute_step(
        self,
        uow: UnitOfWork,
        now: datetime,
        session_id: str,
        license_: License | None,
        order_state: OrderState,
        *,
        opened: bool,
        action: str,
        ledger_id: str,
    ) -> None:
        """A dispute opening (the license is suspended) or being won (restored): the
        order moves to `order_state`, mirrored on the license; audited."""
        uow.orders.update(
            session_id, {"state": order_state, "updated_at": now, "last_event_id": ledger_id}
        )
        if license_ is not None:
            step = license_.suspend if opened else license_.restore
            self._write_standing(uow, license_, step(order_state=order_state, now=now))
        self.auditor.record(
            action,
            uow=uow,
            order_id=session_id,
            license_id=license_id_for(session_id),
            event_id=ledger_id,
        )

    @staticmethod
    def _write_standing(uow: UnitOfWork, license_: License, update: dict[str, Any] | None) -> None:
        """The license's standing change (`License.revoke` / `suspend` / `restore`), in
        the unit of work that changes the order; nothing when nothing changes."""
        if update is not None:
            uow.licenses.update(license_.id, update)

    def _revoke_grants(self, uow: UnitOfWork, grants_hashes: list[str]) -> None:
        for token_hash in grants_hashes:
            uow.download_tokens.update(token_hash, {"revoked": True})

    def _grant_candidates(self, session_id: str) -> frozenset[str]:
        """Before the transaction, without locks: the ids of the order's download grants,
        to read by key in the transaction's first batched read.

        The order lists them (`Order.download_grant_ids`). An order written before that
        list existed (None) has its grants found here by a query: outside the
        transaction, because a query inside a pessimistic transaction locks the query's
        range, and concurrent refunds doing so stalled the Firestore emulator for
        minutes (docs/performance.md, "Launch day")."""
        with self.storage.batch() as uow:
            order = uow.orders.get(session_id)
            if order is None:
                return frozenset()
            if order.download_grant_ids is not None:
                return frozenset(order.download_grant_ids)
            return frozenset(
                grant.token_hash
                for grant in uow.download_tokens.where("order_id", "==", session_id)
            )

    @staticmethod
    def _grant_keys(uow: UnitOfWork, candidates: frozenset[str]) -> list[Key[Any]]:
        return [uow.download_tokens.key(token_hash) for token_hash in sorted(candidates)]

    @staticmethod
    def _grants_of(
        uow: UnitOfWork, order: Order | None, found: Found, candidates: frozenset[str]
    ) -> list[DownloadGrant]:
        """The order's grants, locked by key (call before any write).

        The order (read and locked in this transaction) names them; the candidates were
        read with it, and a grant listed since (a re-send committed in between) is read
        now by key. A legacy order (no list) has the candidates the query found; a grant
        a re-send adds to such an order after that query is not flagged revoked, and is
        refused all the same: redemption checks the order and license at every use."""
        if order is None:
            return []
        listed = candidates if order.download_grant_ids is None else order.download_grant_ids
        late = [uow.download_tokens.key(h) for h in sorted(set(listed) - candidates)]
        found_late = uow.read(*late) if late else found
        grants = []
        for token_hash in sorted(set(listed)):
            key = uow.download_tokens.key(token_hash)
            grant = (found if token_hash in candidates else found_late)[key]
            if grant is not None:  # an expired grant may be gone (TTL)
                grants.append(grant)
        return grants

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
        blocks any later fulfillment of the session. The webhook and reconciliation
        record the same refund under different ledger ids (the event id; the charge and
        refunded amount): whichever comes second finds the order already showing it
        and changes nothing (ALREADY_APPLIED), so a refund is applied once.
        """

        def decide(uow: UnitOfWork, now: datetime, found: Found) -> Change:
            order = found[uow.orders.key(session_id)]
            license_ = found[uow.licenses.key(license_id_for(session_id))]
            state = order.state if order is not None else None
            if (
                order is not None
                and order.amount_refunded >= amount_refunded
                and (not fully_refunded or not can_transition(state, OrderState.REFUNDED))
            ):
                return Change(Outcome.ALREADY_APPLIED, session_id)
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
                uow.orders.put(order.model_copy(update=common))
                self.auditor.record(
                    "order.partially_refunded",
                    uow=uow,
                    order_id=session_id,
                    event_id=ledger_id,
                    amount_refunded=amount_refunded,
                )
                return Change(Outcome.PARTIALLY_REFUNDED, session_id)
            grants = self._grants_of(uow, order, found, candidates)  # reads before writes
            new_state = state
            if can_transition(state, OrderState.REFUNDED):
                new_state = transition(state, OrderState.REFUNDED)
            base = order or self._placeholder_order(session_id, OrderState.REFUNDED, now)
            uow.orders.put(base.model_copy(update={**common, "state": new_state}))
            self._revoke_license(uow, now, session_id, license_, "refund", ledger_id, new_state)
            active_grants = [g.token_hash for g in grants if not g.revoked]
            self._revoke_grants(uow, active_grants)
            self.auditor.record(
                "order.refunded",
                uow=uow,
                order_id=session_id,
                event_id=ledger_id,
                amount_refunded=amount_refunded,
                previous_state=state.value if state else None,
                revoked_grants=len(active_grants),
            )
            return Change(Outcome.REFUNDED, session_id)

        candidates = self._grant_candidates(session_id) if fully_refunded else frozenset()
        order_and_license = self._order_and_license(session_id)
        return self._apply(
            ledger_id,
            event_type,
            decide,
            lambda uow: [*order_and_license(uow), *self._grant_keys(uow, candidates)],
        )

    def open_dispute(self, session_id: str, *, ledger_id: str, event_type: str) -> Change:
        """A chargeback: the order leaves the entitled states, the license is suspended."""

        def decide(uow: UnitOfWork, now: datetime, found: Found) -> Change:
            order = found[uow.orders.key(session_id)]
            license_ = found[uow.licenses.key(license_id_for(session_id))]
            if order is None:
                _log.warning(
                    "dispute for a session without an order",
                    extra={"event": "dispute.no_order", "order_id": session_id},
                )
                return Change(Outcome.NO_ORDER, session_id)
            if not can_transition(order.state, OrderState.DISPUTED):
                return Change(Outcome.IGNORED, session_id)
            self._dispute_step(
                uow,
                now,
                session_id,
                license_,
                OrderState.DISPUTED,
                opened=True,
                action="order.disputed",
                ledger_id=ledger_id,
            )
            return Change(Outcome.DISPUTED, session_id)

        return self._apply(ledger_id, event_type, decide, self._order_and_license(session_id))

    def suspend_for_fraud_warning(
        self,
        session_id: str,
        *,
        warning_id: str,
        fraud_type: str | None,
        actionable: bool,
        ledger_id: str,
        event_type: str,
    ) -> Change:
        """Stripe Radar's early fraud warning: the license is suspended (downloads,
        activations and updates refused) until support refunds or clears it; the order
        keeps the warning id, so a license issued later starts suspended. Ops are
        alerted (ERROR `fraud.early_warning`). No automatic refund (docs/stripe.md)."""

        def decide(uow: UnitOfWork, now: datetime, found: Found) -> Change:
            order = found[uow.orders.key(session_id)]
            license_ = found[uow.licenses.key(license_id_for(session_id))]
            if order is not None and order.fraud_warning_id == warning_id:
                return Change(Outcome.IGNORED, session_id)
            base = order or self._placeholder_order(
                session_id, transition(None, OrderState.PENDING), now
            )
            uow.orders.put(
                base.model_copy(
                    update={
                        "fraud_warning_id": warning_id,
                        "updated_at": now,
                        "last_event_id": ledger_id,
                    }
                )
            )
            suspended = license_ is not None and license_.status is LicenseStatus.ACTIVE
            if license_ is not None:
                self._write_standing(
                    uow,
                    license_,
                    license_.suspend(order_state=base.state, now=now, reason=FRAUD_WARNING_REASON),
                )
            self.auditor.record(
                "order.fraud_warning",
                uow=uow,
                order_id=session_id,
                license_id=license_.id if license_ is not None else None,
                event_id=ledger_id,
                warning_id=warning_id,
                fraud_type=fraud_type,
                actionable=actionable,
                license_suspended=suspended,
            )
            return Change(Outcome.SUSPENDED, session_id)

        change = self._apply(ledger_id, event_type, decide, self._order_and_license(session_id))
        if change.outcome is Outcome.SUSPENDED:
            _log.error(
                "early fraud warning: license suspended",
                extra={
                    "event": "fraud.early_warning",
                    "order_id": session_id,
                    "warning_id": warning_id,
                    "fraud_type": fraud_type,
                    "actionable": actionable,
                },
            )
        return change

    def clear_fraud_warning(self, session_id: str, *, actor: str) -> Change:
        """Support reviewed an early fraud warning and found the buyer genuine: the
        license suspended for it is active again (not one suspended for a dispute, which
        the dispute decides), and the warning id leaves the order; audited."""

        def work(uow: UnitOfWork) -> Change:
            order_key = uow.orders.key(session_id)
            license_key = uow.licenses.key(license_id_for(session_id))
            found = uow.read(order_key, license_key)
            order, license_ = found[order_key], found[license_key]
            if order is None or order.fraud_warning_id is None:
                return Change(Outcome.IGNORED, session_id)
            now = self.clock.now()
            uow.orders.update(session_id, {"fraud_warning_id": None, "updated_at": now})
            restored = (
                license_ is not None
                and license_.status is LicenseStatus.SUSPENDED
                and license_.status_reason == FRAUD_WARNING_REASON
            )
            if license_ is not None and restored:
                self._write_standing(
                    uow, license_, license_.restore(order_state=order.state, now=now)
                )
            self.auditor.record(
                "license.fraud_warning_cleared",
                uow=uow,
                actor=actor,
                order_id=session_id,
                license_id=license_.id if license_ is not None else None,
                warning_id=order.fraud_warning_id,
                license_restored=restored,
            )
            return Change(Outcome.RESTORED, session_id)

        return self.storage.run(work)

    def close_dispute(
        self, session_id: str, *, won: bool, ledger_id: str, event_type: str
    ) -> Change:
        """Won: back to fulfilled, license active. Lost: revoked, like a refund."""
        license_id = license_id_for(session_id)

        def decide(uow: UnitOfWork, now: datetime, found: Found) -> Change:
            order = found[uow.orders.key(session_id)]
            license_ = found[uow.licenses.key(license_id)]
            state = order.state if order is not None else None
            if won:
                if state is not OrderState.DISPUTED:
                    return Change(Outcome.IGNORED, session_id)
                self._dispute_step(
                    uow,
                    now,
                    session_id,
                    license_,
                    transition(state, OrderState.FULFILLED),
                    opened=False,
                    action="order.dispute_won",
                    ledger_id=ledger_id,
                )
                return Change(Outcome.RESTORED, session_id)
            if not can_transition(state, OrderState.REVOKED):
                return Change(Outcome.IGNORED, session_id)
            grants = self._grants_of(uow, order, found, candidates)  # reads before writes
            revoked = transition(state, OrderState.REVOKED)
            base = order or self._placeholder_order(session_id, revoked, now)
            uow.orders.put(
                base.model_copy(
                    update={"state": revoked, "updated_at": now, "last_event_id": ledger_id}
                )
            )
            self._revoke_license(uow, now, session_id, license_, "dispute_lost", ledger_id, revoked)
            self._revoke_grants(uow, [g.token_hash for g in grants if not g.revoked])
            self.auditor.record(
                "order.dispute_lost",
                uow=uow,
                order_id=session_id,
                license_id=license_id,
                event_id=ledger_id,
            )
            return Change(Outcome.REVOKED, session_id)

        candidates = frozenset() if won else self._grant_candidates(session_id)
        order_and_license = self._order_and_license(session_id)
        return self._apply(
            ledger_id,
            event_type,
            decide,
            lambda uow: [*order_and_license(uow), *self._grant_keys(uow, candidates)],
        )


def _reason(verdict: Verdict) -> str:
    return verdict.rejection.value if verdict.rejection else "unknown"


def _fraud_hold(order: Order | None) -> dict[str, Any]:
    """A license issued after an early fraud warning on its payment starts suspended."""
    if order is None or order.fraud_warning_id is None:
        return {}
    return {"status": LicenseStatus.SUSPENDED, "status_reason": FRAUD_WARNING_REASON}


def _session_reads(
    session_id: str, license_id: str, customer_id: str | None
) -> Callable[[UnitOfWork], list[Key[Any]]]:
    """What a paid session's unit of work reads first (and so locks): its order, its
    license and, with a usable address, its customer."""

    def reads(uow: UnitOfWork) -> list[Key[Any]]:
        keys: list[Key[Any]] = [uow.orders.key(session_id), uow.licenses.key(license_id)]
        if customer_id is not None:
            keys.append(uow.customers.key(customer_id))
        return keys

    return reads
