"""Reconciliation racing the webhook on Google's Firestore emulator: two function
instances (their own in-process turns), one running `reconcile`, the other receiving
the events it repairs, at the same moment. Whatever the interleaving, each session is
fulfilled once and each refund applied once: the transaction decides, the loser re-reads
and changes nothing."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from commerce.domain.models import LicenseStatus
from commerce.domain.orders import OrderState
from commerce.purchase.schemas import Outcome
from tests.purchase import stripe_events as se
from tests.purchase.conftest import deliver_until_accepted
from tests.support.threads import run_together

SESSIONS = 4


def audits(container: Any, action: str, order_id: str) -> int:
    entries = (doc.to_dict() for doc in container.db.collection("audit_log").stream())
    return sum(1 for e in entries if e["order_id"] == order_id and e["action"] == action)


def race(*work: Callable[[], Any]) -> list[Any]:
    """Run every callable at once (after a barrier); results in order, errors raised."""
    barrier = threading.Barrier(len(work))
    results: list[Any] = [None] * len(work)
    errors: list[BaseException] = []

    def run(index: int, job: Callable[[], Any]) -> None:
        try:
            barrier.wait()
            results[index] = job()
        except BaseException as exc:  # reported below, not lost in the thread
            errors.append(exc)

    run_together(run, list(enumerate(work)))
    assert errors == []
    return results


def test_reconcile_racing_the_webhook_fulfils_each_session_once(
    container, other_instance, stub_sessions, email_queue
):
    sessions = [se.checkout_session(email=f"race{n}@example.com") for n in range(SESSIONS)]
    for session in sessions:
        stub_sessions.created(session)
    stub_sessions.sessions = list(sessions)
    events = [se.event("checkout.session.completed", s) for s in sessions]

    def webhook() -> list[Outcome]:
        return [deliver_until_accepted(other_instance, evt)[0].outcome for evt in events]

    report, outcomes = race(lambda: container.reconciler.run(days=1), webhook)

    assert report.failed == 0
    assert report.repaired + outcomes.count(Outcome.FULFILLED) == SESSIONS
    for session in sessions:
        session_id = session["id"]
        assert container.orders.get(session_id).state is OrderState.FULFILLED
        assert len(container.licenses.by_order(session_id)) == 1
        assert len(container.download_tokens.by_order(session_id)) == 1
        assert audits(container, "order.fulfilled", session_id) == 1  # names the license
    assert sorted(email_queue.job_ids) == sorted(set(email_queue.job_ids))
    assert len(email_queue.job_ids) == SESSIONS


def test_reconcile_racing_the_webhook_applies_each_refund_once(
    container, other_instance, stub_sessions
):
    sessions = [se.checkout_session(email=f"refund{n}@example.com") for n in range(SESSIONS)]
    charges = []
    for session in sessions:
        deliver_until_accepted(container, se.event("checkout.session.completed", session))
        charge = se.charge(session["payment_intent"], amount_refunded=4900)
        stub_sessions.charges[charge["id"]] = charge
        stub_sessions.refunds.append(se.refund(charge))
        charges.append(charge)
    events = [se.event("charge.refunded", charge) for charge in charges]

    def webhook() -> list[Outcome]:
        return [deliver_until_accepted(other_instance, evt)[0].outcome for evt in events]

    report, outcomes = race(lambda: container.reconciler.run(days=1), webhook)

    assert report.failed == 0
    assert report.refunds_applied + outcomes.count(Outcome.REFUNDED) == SESSIONS
    for session in sessions:
        session_id = session["id"]
        assert container.orders.get(session_id).state is OrderState.REFUNDED
        (license_,) = container.licenses.by_order(session_id)
        assert license_.status is LicenseStatus.REVOKED
        assert audits(container, "order.refunded", session_id) == 1
        assert audits(container, "license.revoked", session_id) == 1
