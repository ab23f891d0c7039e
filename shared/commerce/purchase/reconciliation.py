"""Repair missed webhooks: fulfil every paid Checkout Session of the last N days that
has no fulfilled order, through the same once-per-event ledger as the webhook
(`commerce.purchase.ledger`, ledger id `reconcile:<session id>`), and report what was
done."""

from __future__ import annotations

from datetime import timedelta

from commerce.clock import Clock
from commerce.domain.ids import reconcile_ledger_id
from commerce.domain.orders import OrderState
from commerce.errors import CommerceError
from commerce.logs import get_logger
from commerce.purchase.fulfillment import Fulfillment
from commerce.purchase.gateway import StripeGateway
from commerce.purchase.schemas import Outcome, ReconcileReport, SessionFacts
from commerce.purchase.verification import PaidSessions
from commerce.unit_of_work import Storage

RECONCILE_EVENT_TYPE = "reconcile"
_log = get_logger("commerce.purchase.reconciliation")
_SETTLED = {
    OrderState.FULFILLED: "already_fulfilled",
    OrderState.DISPUTED: "already_fulfilled",
    OrderState.REFUNDED: "blocked",
    OrderState.REVOKED: "blocked",
    OrderState.FAILED: "blocked",
    OrderState.REJECTED: "rejected",
}


class Reconciler:
    def __init__(
        self,
        *,
        gateway: StripeGateway,
        fulfillment: Fulfillment,
        paid_sessions: PaidSessions,
        storage: Storage,
        clock: Clock,
        default_days: int,
    ) -> None:
        self.gateway = gateway
        self.fulfillment = fulfillment
        self.paid_sessions = paid_sessions
        self.storage = storage
        self.clock = clock
        self.default_days = default_days

    def run(self, days: int | None = None) -> ReconcileReport:
        days = days or self.default_days
        report = ReconcileReport(days=days)
        since = self.clock.now() - timedelta(days=days)
        for raw in self.gateway.sessions_created_since(since):
            report.examined += 1
            session = SessionFacts.from_stripe(raw)
            if not (self.fulfillment.is_our_session(session) and session.is_complete_and_paid):
                continue
            report.paid += 1
            with self.storage.batch() as uow:
                order = uow.orders.get(session.id)
            settled = _SETTLED.get(order.state) if order is not None else None
            if settled is not None:
                setattr(report, settled, getattr(report, settled) + 1)
                continue
            try:
                change = self.paid_sessions.settle(
                    session,
                    ledger_id=reconcile_ledger_id(session.id),
                    event_type=RECONCILE_EVENT_TYPE,
                    event_id=None,
                )
            except CommerceError as error:
                report.failed += 1
                _log.error(
                    "reconciliation could not fulfil a session",
                    extra={"event": "reconcile.failed", "order_id": session.id, "code": error.code},
                )
                continue
            if change.outcome is Outcome.FULFILLED:
                report.repaired += 1
                report.repaired_sessions.append(session.id)
            elif change.outcome is Outcome.BLOCKED:
                report.blocked += 1
            elif change.outcome is Outcome.REJECTED:
                report.rejected += 1
            else:
                report.already_fulfilled += 1
        if report.repaired:
            _log.warning(
                "reconciliation fulfilled %d paid session(s) that had no order",
                report.repaired,
                extra={"event": "reconcile.repaired", "count": report.repaired},
            )
        _log.info("reconciliation done", extra={"event": "reconcile.done", **report.as_dict()})
        return report
