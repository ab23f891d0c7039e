"""Reconciliation repairs what the webhook missed: paid sessions, refunds and disputes,
each through the webhook's own steps and exactly once however the two interleave.
In-memory store, Stripe's lists from a stub (through the official library against the
double and the emulator: tests/purchase/test_functions.py and test_reconcile_race.py)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from commerce.bootstrap import Container
from commerce.domain.ids import license_id_for
from commerce.domain.models import License, LicenseStatus
from commerce.domain.orders import OrderState
from commerce.errors import TransientFailure
from commerce.purchase import reconciliation
from commerce.purchase.schemas import Outcome
from commerce.repositories.memory import MemoryStorage, _MemoryCollection
from tests.purchase import stripe_events as se
from tests.purchase.conftest import StubSessions


def fulfilled(deliver: Any) -> dict[str, Any]:
    session = se.checkout_session()
    assert deliver(se.event("checkout.session.completed", session)).outcome is Outcome.FULFILLED
    return session


def state_of(storage: MemoryStorage, session_id: str) -> OrderState:
    order = storage.load("orders", session_id)
    assert order is not None
    state: OrderState = order.state
    return state


def license_of(storage: MemoryStorage, session_id: str) -> License:
    found: License | None = storage.load("licenses", license_id_for(session_id))
    assert found is not None
    return found


def refunded_charge(stub: StubSessions, session: dict[str, Any], amount: int = 4900) -> Any:
    charge = se.charge(session["payment_intent"], amount_refunded=amount)
    stub.charges[charge["id"]] = charge
    stub.refunds.append(se.refund(charge))
    return charge


def test_a_missed_full_refund_is_repaired_once(
    container: Container, deliver: Any, stub_sessions: StubSessions, storage: MemoryStorage
) -> None:
    session = fulfilled(deliver)
    charge = refunded_charge(stub_sessions, session)

    report = container.reconciler.run(days=3)

    assert (report.refunds_examined, report.refunds_applied) == (1, 1)
    assert report.applied == [f"{charge['id']}:refunded"]
    assert state_of(storage, session["id"]) is OrderState.REFUNDED
    assert license_of(storage, session["id"]).status is LicenseStatus.REVOKED
    assert all(g["revoked"] for g in storage.all("download_tokens").values())
    audits = storage.audit_actions()
    assert audits.count("order.refunded") == 1
    # a second run, and the webhook's late delivery of the same refund, change nothing
    assert container.reconciler.run(days=3).refunds_applied == 0
    late = deliver(se.event("charge.refunded", charge))
    assert late.outcome is Outcome.ALREADY_APPLIED
    assert storage.audit_actions() == audits


def test_a_refund_the_webhook_applied_is_not_applied_again(
    container: Container, deliver: Any, stub_sessions: StubSessions, storage: MemoryStorage
) -> None:
    session = fulfilled(deliver)
    charge = refunded_charge(stub_sessions, session)
    deliver(se.event("charge.refunded", charge))
    audits = storage.audit_actions()

    report = container.reconciler.run(days=3)

    assert (report.refunds_examined, report.refunds_applied) == (1, 0)
    assert storage.audit_actions() == audits


def test_a_missed_partial_refund_records_the_amount_and_keeps_the_license(
    container: Container, deliver: Any, stub_sessions: StubSessions, storage: MemoryStorage
) -> None:
    session = fulfilled(deliver)
    refunded_charge(stub_sessions, session, amount=1000)

    assert container.reconciler.run(days=3).refunds_applied == 1

    order = storage.load("orders", session["id"])
    assert (order.state, order.amount_refunded) == (OrderState.FULFILLED, 1000)
    assert license_of(storage, session["id"]).status is LicenseStatus.ACTIVE


def test_a_session_refunded_while_both_its_webhooks_were_missed_is_never_fulfilled(
    container: Container, deliver: Any, stub_sessions: StubSessions, storage: MemoryStorage
) -> None:
    session = se.checkout_session()
    stub_sessions.created(session)
    stub_sessions.sessions = [session]
    stub_sessions.add(session)
    refunded_charge(stub_sessions, session)
    stub_sessions.refunds = []  # refunded before the window: only the session is listed

    report = container.reconciler.run(days=3)

    assert (report.repaired, report.blocked, report.refunds_applied) == (0, 1, 1)
    assert state_of(storage, session["id"]) is OrderState.REFUNDED
    assert storage.all("licenses") == {}
    assert storage.all("email_jobs") == {}
    late = deliver(se.event("checkout.session.completed", session))
    assert late.outcome is Outcome.BLOCKED
    assert storage.all("licenses") == {}


def test_missed_disputes_are_applied_through_the_webhook_steps(
    container: Container, deliver: Any, stub_sessions: StubSessions, storage: MemoryStorage
) -> None:
    opened, lost, quiet = fulfilled(deliver), fulfilled(deliver), fulfilled(deliver)
    stub_sessions.disputes = [
        se.dispute(opened["payment_intent"], status="needs_response"),
        se.dispute(lost["payment_intent"], status="lost"),
        se.dispute(quiet["payment_intent"], status="won"),  # opened and won unseen: nothing
    ]

    report = container.reconciler.run(days=3)

    assert (report.disputes_examined, report.disputes_applied) == (3, 2)
    assert state_of(storage, opened["id"]) is OrderState.DISPUTED
    assert license_of(storage, opened["id"]).status is LicenseStatus.SUSPENDED
    assert state_of(storage, lost["id"]) is OrderState.REVOKED
    assert license_of(storage, lost["id"]).status is LicenseStatus.REVOKED
    assert state_of(storage, quiet["id"]) is OrderState.FULFILLED
    assert container.reconciler.run(days=3).disputes_applied == 0


def test_a_won_dispute_the_webhook_missed_restores_the_license(
    container: Container, deliver: Any, stub_sessions: StubSessions, storage: MemoryStorage
) -> None:
    session = fulfilled(deliver)
    deliver(se.event("charge.dispute.created", se.dispute(session["payment_intent"])))
    stub_sessions.disputes = [se.dispute(session["payment_intent"], status="won")]

    assert container.reconciler.run(days=3).disputes_applied == 1

    assert state_of(storage, session["id"]) is OrderState.FULFILLED
    assert license_of(storage, session["id"]).status is LicenseStatus.ACTIVE


def test_refunds_and_disputes_of_other_charges_are_not_counted(
    container: Container, stub_sessions: StubSessions, storage: MemoryStorage
) -> None:
    foreign = se.charge("pi_foreign", amount_refunded=4900)
    stub_sessions.refunds = [se.refund(foreign)]
    stub_sessions.disputes = [se.dispute("pi_foreign")]

    report = container.reconciler.run(days=3)
    container.reconciler.run(days=3)

    assert (report.refunds_examined, report.disputes_examined) == (1, 1)
    assert (report.refunds_applied, report.disputes_applied) == (0, 0)
    assert storage.all("orders") == {}
    # asked Stripe once per object, not on every run: the ledger remembers the answer
    assert stub_sessions.intent_lookups == ["pi_foreign", "pi_foreign"]


def test_the_orders_of_listed_paid_sessions_are_read_a_page_at_a_time(
    container: Container,
    deliver: Any,
    stub_sessions: StubSessions,
    storage: MemoryStorage,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    fulfilled_sessions = [fulfilled(deliver) for _ in range(3)]
    missed = se.checkout_session()  # paid, its webhook never came
    stub_sessions.created(missed)
    unpaid = se.checkout_session(payment_status="unpaid", status="open")
    foreign = se.checkout_session(product_id="another-product")
    stub_sessions.sessions = [*fulfilled_sessions, unpaid, missed, foreign]
    reads: list[tuple[str, list[str]]] = []
    one = _MemoryCollection.get

    def get_many(self: _MemoryCollection[Any], doc_ids: list[str]) -> list[Any]:
        reads.append(("get_many", list(doc_ids)))
        return [item for doc_id in doc_ids if (item := one(self, doc_id)) is not None]

    def get(self: _MemoryCollection[Any], doc_id: str) -> Any:
        reads.append(("get", [doc_id]))
        return one(self, doc_id)

    monkeypatch.setattr(_MemoryCollection, "get_many", get_many)
    monkeypatch.setattr(_MemoryCollection, "get", get)
    monkeypatch.setattr(reconciliation, "ORDER_READ_BATCH", 3)  # two pages of listed sessions

    report = container.reconciler.run(days=3)

    order_reads = [(kind, ids) for kind, ids in reads if ids and ids[0].startswith("cs_")]
    paid_ids = [s["id"] for s in fulfilled_sessions]
    # first page: the three fulfilled sessions in one read; second page (unpaid, missed,
    # foreign): the missed one alone, before its fulfilment reads it again in its own
    # transaction
    assert order_reads[:2] == [("get_many", paid_ids), ("get_many", [missed["id"]])]
    assert (report.examined, report.paid, report.already_fulfilled, report.repaired) == (6, 4, 3, 1)
    assert state_of(storage, missed["id"]) is OrderState.FULFILLED


def test_a_run_with_nothing_to_repair_never_builds_the_webhook_steps(
    container: Container,
    deliver: Any,
    stub_sessions: StubSessions,
    storage: MemoryStorage,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    settled = [fulfilled(deliver) for _ in range(2)]
    unpaid = se.checkout_session(payment_status="unpaid", status="open")
    foreign = se.checkout_session(product_id="another-product")
    stub_sessions.sessions = [*settled, unpaid, foreign]
    built: list[reconciliation.Repair] = []
    real = reconciliation.Repair

    def counted(*steps: Any) -> reconciliation.Repair:
        built.append(real(*steps))
        return built[-1]

    monkeypatch.setattr(reconciliation, "Repair", counted)

    report = container.reconciler.run(days=3)

    assert (report.examined, report.paid, report.already_fulfilled) == (4, 2, 2)
    assert built == []
    missed = se.checkout_session()  # now one needs repair: the steps are built, once
    stub_sessions.created(missed)
    stub_sessions.sessions.append(missed)
    charge = refunded_charge(stub_sessions, settled[0], amount=100)
    report = container.reconciler.run(days=3)
    assert (report.repaired, report.refunds_applied) == (1, 1)
    assert len(built) == 1
    assert state_of(storage, missed["id"]) is OrderState.FULFILLED
    assert storage.load("orders", settled[0]["id"]).amount_refunded == charge["amount_refunded"]


def test_loading_reconciliation_does_not_load_the_fulfillment_path() -> None:
    probe = (
        "import sys, commerce.purchase.reconciliation; "
        "print([m for m in ('commerce.purchase.fulfillment', 'commerce.purchase.webhooks',"
        " 'commerce.purchase.verification', 'commerce.audit') if m in sys.modules])"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, check=False,
        env={**os.environ, "PYTHONPATH": str(Path(__file__).parents[2] / "shared")},
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip() == "[]"


@pytest.mark.parametrize("busy_attempts", [1, 2])
def test_a_refund_that_meets_contention_is_tried_again_at_the_end_of_the_run(
    container: Container,
    deliver: Any,
    stub_sessions: StubSessions,
    storage: MemoryStorage,
    monkeypatch: pytest.MonkeyPatch,
    busy_attempts: int,
) -> None:
    first, second = fulfilled(deliver), fulfilled(deliver)
    busy_charge = refunded_charge(stub_sessions, first)
    other_charge = refunded_charge(stub_sessions, second)
    apply = container.webhook_service.apply
    attempts: list[str] = []

    def contended(ledger_id: str, event_type: str, obj: Any) -> Any:
        attempts.append(str(obj.get("id")))
        busy = obj.get("id") == busy_charge["id"]
        if busy and attempts.count(busy_charge["id"]) <= busy_attempts:
            raise TransientFailure("storage is busy; please retry")
        return apply(ledger_id, event_type, obj)

    monkeypatch.setattr(container.webhook_service, "apply", contended)

    report = container.reconciler.run(days=3)

    # the busy one is tried again after the others, once
    assert attempts == [busy_charge["id"], other_charge["id"], busy_charge["id"]]
    assert report.refunds_examined == 2
    if busy_attempts == 1:
        assert (report.refunds_applied, report.failed) == (2, 0)
        assert state_of(storage, first["id"]) is OrderState.REFUNDED
    else:
        assert (report.refunds_applied, report.failed) == (1, 1)
        assert state_of(storage, first["id"]) is OrderState.FULFILLED  # the next run's
    assert state_of(storage, second["id"]) is OrderState.REFUNDED
