"""Repair missed webhooks from Stripe's own lists, through the same steps the webhook
uses, and report what was done.

Three passes over the last N days (`RECONCILE_LOOKBACK_DAYS`, at most 30: Stripe
keeps Checkout Sessions that long):

1. **Checkout Sessions** (`checkout.sessions.list`): every `complete`, paid session of
   our product whose order is missing or still pending. Before fulfilling, its
   PaymentIntent is retrieved with the latest charge: a payment refunded in full while
   both of the session's webhooks were missed is recorded as refunded (which blocks the
   session for good), never fulfilled. Otherwise the session is verified with Stripe
   and fulfilled or rejected (`purchase.verification`), ledger id
   `reconcile:<session id>`.
2. **Refunds** (`refunds.list`, created in the window, charge expanded): each refunded
   charge is applied as a `charge.refunded` delivery of that charge, ledger id
   `reconcile:refund:<charge id>:<amount refunded>`.
3. **Disputes** (`disputes.list`, created in the window): an open dispute as
   `charge.dispute.created`, a decided one as `charge.dispute.closed`, ledger id
   `reconcile:dispute:<dispute id>:<status>`.

An object whose attempt fails transiently (storage contention, as when the webhook
applies the same object at that moment; Stripe unreachable) is tried once more at the
end of the run; a second failure, or any other, is counted in `failed` and logged
(`reconcile.failed`), and the next run tries again.

Exactly once, also when reconciliation races the webhook: a session's fulfillment
reads the order and license it may create, so of two concurrent fulfillments (event id
and `reconcile:` ledger id) the loser re-runs and finds the license; a refund or
dispute already shown by the order (applied by the webhook, or by an earlier run) is
`already_applied` or `ignored` and writes nothing. Known limit: a dispute opened
before the window and decided inside it is only found by a run whose `--days` reaches
its creation (disputes are listed by creation time).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import timedelta
from functools import cached_property, partial
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from commerce.clock import Clock
from commerce.domain.ids import (
    reconcile_dispute_ledger_id,
    reconcile_ledger_id,
    reconcile_refund_ledger_id,
)
from commerce.domain.orders import OrderState
from commerce.errors import CommerceError, TransientFailure
from commerce.logs import get_logger
from commerce.purchase.gateway import StripeGateway
from commerce.purchase.ledger import Change
from commerce.purchase.schemas import (
    CHARGE_REFUNDED,
    DISPUTE_CLOSED,
    DISPUTE_CREATED,
    DISPUTE_WON_STATUSES,
    Outcome,
    ReconcileReport,
    SessionFacts,
)
from commerce.unit_of_work import Storage

if TYPE_CHECKING:
    from commerce.domain.models import Order
    from commerce.purchase.fulfillment import Fulfillment
    from commerce.purchase.verification import PaidSessions
    from commerce.purchase.webhooks import WebhookService


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


RECONCILE_EVENT_TYPE = "reconcile"
# Work put off to the end of a run: objects whose first attempt failed transiently.
Later = list[Callable[[], None]]
# Orders read per round trip (the listed sessions are taken this many at a time).
ORDER_READ_BATCH = 100
_log = get_logger("commerce.purchase.reconciliation")
_SETTLED = {
    OrderState.FULFILLED: "already_fulfilled",
    OrderState.DISPUTED: "already_fulfilled",
    OrderState.REFUNDED: "blocked",
    OrderState.REVOKED: "blocked",
    OrderState.FAILED: "blocked",
    OrderState.REJECTED: "rejected",
}
# Changes that repaired something the ledger and the order lacked.
_APPLIED = frozenset(
    {
        Outcome.REFUNDED,
        Outcome.PARTIALLY_REFUNDED,
        Outcome.DISPUTED,
        Outcome.RESTORED,
        Outcome.REVOKED,
    }
)


@dataclass(frozen=True)
class Repair:
    """The webhook's own steps, which repair what it missed."""

    fulfillment: Fulfillment
    paid_sessions: PaidSessions
    webhook: WebhookService


class Reconciler:
    """`repair` builds the webhook's steps on the first object that needs them: a run
    that finds every listed session settled and no refund or dispute (the usual run)
    never loads the fulfillment path, about 10 ms of a cold start (docs/performance.md,
    "Cold start")."""

    def __init__(
        self,
        *,
        gateway: StripeGateway,
        repair: Callable[[], Repair],
        storage: Storage,
        clock: Clock,
        product_id: str,
        default_days: int,
    ) -> None:
        self.gateway = gateway
        self._build_repair = repair
        self.storage = storage
        self.clock = clock
        self.product_id = product_id
        self.default_days = default_days

    @cached_property
    def repair(self) -> Repair:
        return self._build_repair()

    def run(self, days: int | None = None) -> ReconcileReport:
        days = days or self.default_days
        report = ReconcileReport(days=days)
        since = self.clock.now() - timedelta(days=days)
        later: Later = []
        for batch in _batches(self.gateway.sessions_created_since(since), ORDER_READ_BATCH):
            self._sessions(batch, report, later)
        for refund in self.gateway.refunds_created_since(since):
            report.refunds_examined += 1
            self._refund(refund, report, later)
        for dispute in self.gateway.disputes_created_since(since):
            report.disputes_examined += 1
            self._dispute(dispute, report, later)
        for again in later:  # the second and last attempt: a failure now is counted
            again()
        if report.repaired:
            _log.warning(
                "reconciliation fulfilled %d paid session(s) that had no order",
                report.repaired,
                extra={"event": "reconcile.repaired", "count": report.repaired},
            )
        if report.refunds_applied or report.disputes_applied:
            _log.warning(
                "reconciliation applied %d refund(s) and %d dispute change(s) the webhook missed",
                report.refunds_applied,
                report.disputes_applied,
                extra={
                    "event": "reconcile.repaired",
                    "count": report.refunds_applied + report.disputes_applied,
                    "refunds": report.refunds_applied,
                    "disputes": report.disputes_applied,
                },
            )
        _log.info("reconciliation done", extra={"event": "reconcile.done", **report.as_dict()})
        return report

    # -- 1. sessions -------------------------------------------------------------------
    def _sessions(
        self, batch: list[Mapping[str, Any]], report: ReconcileReport, later: Later
    ) -> None:
        """Listed sessions, a batch at a time: the orders of the paid ones of ours are read
        together (one round trip per batch instead of one per session), then each is
        settled."""
        paid: list[tuple[SessionFacts, Mapping[str, Any]]] = []
        for raw in batch:
            report.examined += 1
            session = SessionFacts.from_stripe(raw)
            if session.is_for(self.product_id) and session.is_complete_and_paid:
                report.paid += 1
                paid.append((session, raw))
        if not paid:
            return
        with self.storage.batch() as uow:
            found = uow.orders.get_many([session.id for session, _ in paid])
        orders = {order.id: order for order in found}
        for session, raw in paid:
            self._session(session, raw, orders.get(session.id), report, later)

    def _session(
        self,
        session: SessionFacts,
        raw: Mapping[str, Any],
        order: Order | None,
        report: ReconcileReport,
        later: Later | None,
    ) -> None:
        settled = _SETTLED.get(order.state) if order is not None else None
        if settled is not None:
            setattr(report, settled, getattr(report, settled) + 1)
            return
        try:
            if self._refunded_in_full(session, report):
                report.blocked += 1
                return
            change = self.repair.paid_sessions.settle(
                session,
                ledger_id=reconcile_ledger_id(session.id),
                event_type=RECONCILE_EVENT_TYPE,
                event_id=None,
                reported=raw,
            )
        except CommerceError as error:
            again = partial(self._session, session, raw, order, report, None)
            self._failed(report, session.id, error, later, again)
            return
        if change.outcome is Outcome.FULFILLED:
            report.repaired += 1
            report.repaired_sessions.append(session.id)
        elif change.outcome is Outcome.BLOCKED:
            report.blocked += 1
        elif change.outcome is Outcome.REJECTED:
            report.rejected += 1
        else:
            report.already_fulfilled += 1

    def _refunded_in_full(self, session: SessionFacts, report: ReconcileReport) -> bool:
        """Whether the session's payment is refunded in full; if so the refund is
        recorded (the refunded order blocks fulfillment) instead of fulfilling."""
        if session.payment_intent_id is None:
            return False  # nothing was charged (a free order)
        intent = self.gateway.payment_intent_with_charge(session.payment_intent_id)
        charge = intent.get("latest_charge")
        if not isinstance(charge, Mapping) or not _fully_refunded(charge):
            return False
        change = self._apply_refund(charge)
        self._count(report, change, "refunds_applied", charge.get("id"))
        return True

    # -- 2. refunds --------------------------------------------------------------------
    def _refund(
        self, refund: Mapping[str, Any], report: ReconcileReport, later: Later | None
    ) -> None:
        charge = refund.get("charge")
        if not isinstance(charge, Mapping):  # not expanded: cannot happen with our list call
            return
        try:
            change = self._apply_refund(charge)
        except CommerceError as error:
            again = partial(self._refund, refund, report, None)
            self._failed(report, str(charge.get("id")), error, later, again)
            return
        self._count(report, change, "refunds_applied", charge.get("id"))

    def _apply_refund(self, charge: Mapping[str, Any]) -> Change:
        ledger_id = reconcile_refund_ledger_id(
            str(charge.get("id")), _amount(charge.get("amount_refunded"))
        )
        return self._apply(ledger_id, CHARGE_REFUNDED, charge)

    def _apply(self, ledger_id: str, event_type: str, obj: Mapping[str, Any]) -> Change:
        """Through the webhook's handler, once per ledger id. An earlier run's entry is
        checked first, which spares a charge that is not ours its Stripe lookup on every
        run; the ledger read inside the unit of work still decides."""
        if self.repair.fulfillment.already_recorded(ledger_id):
            return Change(Outcome.DUPLICATE)
        return self.repair.webhook.apply(ledger_id, event_type, obj)

    # -- 3. disputes -------------------------------------------------------------------
    def _dispute(
        self, dispute: Mapping[str, Any], report: ReconcileReport, later: Later | None
    ) -> None:
        status = str(dispute.get("status", ""))
        decided = status == "lost" or status in DISPUTE_WON_STATUSES
        event_type = DISPUTE_CLOSED if decided else DISPUTE_CREATED
        ledger_id = reconcile_dispute_ledger_id(str(dispute.get("id")), status)
        try:
            change = self._apply(ledger_id, event_type, dispute)
        except CommerceError as error:
            again = partial(self._dispute, dispute, report, None)
            self._failed(report, str(dispute.get("id")), error, later, again)
            return
        self._count(report, change, "disputes_applied", dispute.get("id"))

    # -- report ------------------------------------------------------------------------
    @staticmethod
    def _count(report: ReconcileReport, change: Change, counter: str, object_id: Any) -> None:
        if change.outcome in _APPLIED:
            setattr(report, counter, getattr(report, counter) + 1)
            report.applied.append(f"{object_id}:{change.outcome.value}")

    @staticmethod
    def _failed(
        report: ReconcileReport,
        object_id: str,
        error: CommerceError,
        later: Later | None,
        again: Callable[[], None],
    ) -> None:
        """A transient failure (storage contention, e.g. the webhook applying the same
        object at that moment; Stripe unreachable) is tried once more at the end of the
        run; any other failure, or the second one, is counted and logged."""
        if later is not None and isinstance(error, TransientFailure):
            _log.info(
                "reconciliation will try a Stripe object again at the end of the run",
                extra={"event": "reconcile.deferred", "object_id": object_id, "code": error.code},
            )
            later.append(again)
            return
        report.failed += 1
        _log.error(
            "reconciliation could not apply a Stripe object",
            extra={"event": "reconcile.failed", "object_id": object_id, "code": error.code},
        )


def _batches(items: Iterable[Mapping[str, Any]], size: int) -> Iterator[list[Mapping[str, Any]]]:
    """`items` in lists of `size` (the last one shorter), as they arrive."""
    batch: list[Mapping[str, Any]] = []
    for item in items:
        batch.append(item)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


def _amount(value: object) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def _fully_refunded(charge: Mapping[str, Any]) -> bool:
    amount = _amount(charge.get("amount"))
    return charge.get("refunded") is True or 0 < amount <= _amount(charge.get("amount_refunded"))
