"""A paid session is verified with Stripe INSIDE its unit of work, after the batched
read of its ledger entry, order, license and customer (purchase/verification.py), on
Google's Firestore emulator: a duplicate or an order already fulfilled never asks
Stripe, deliveries of one session in one instance ask once between them, a unit re-run
on contention does not ask again, and a Stripe that fails leaves nothing written."""

from __future__ import annotations

import threading
from typing import Any

import pytest

from commerce import deadlines
from commerce.errors import CommerceError
from commerce.purchase import verification
from commerce.purchase.fulfillment import license_id_for
from commerce.purchase.schemas import Outcome
from commerce.repositories import firestore_wire
from tests.purchase import stripe_events as se
from tests.purchase.conftest import count_documents, deliver_until_accepted
from tests.support.threads import run_copies, run_together


def paid(session: dict[str, Any] | None = None) -> dict[str, Any]:
    return se.event("checkout.session.completed", session or se.checkout_session())


def test_a_duplicate_delivery_never_asks_stripe(container, deliver, stub_sessions):
    evt = paid()
    assert deliver(evt).outcome is Outcome.FULFILLED
    stub_sessions.unreachable = True  # a duplicate must not need Stripe at all

    assert deliver(evt).outcome is Outcome.DUPLICATE

    assert stub_sessions.retrieved == [evt["data"]["object"]["id"]]


def test_a_later_event_for_a_fulfilled_order_is_answered_without_stripe(
    container, deliver, stub_sessions
):
    session = se.checkout_session()
    deliver(paid(session))
    stub_sessions.unreachable = True
    later = se.event("checkout.session.async_payment_succeeded", session)

    assert deliver(later).outcome is Outcome.ALREADY_FULFILLED

    assert stub_sessions.retrieved == [session["id"]]
    assert container.webhook_events.get(later["id"]).outcome == "already_fulfilled"


def test_deliveries_of_one_event_in_one_instance_ask_stripe_once(container, stub_sessions):
    """They take turns on the session; the first fulfils, the others then find its
    ledger entry in their locked read (before, each read the ledger before its turn,
    missed, and asked Stripe)."""
    evt = paid()
    start = threading.Barrier(6)
    outcomes: list[Outcome] = []
    errors: list[BaseException] = []

    def deliver_once() -> None:
        try:
            start.wait()
            outcomes.append(deliver_until_accepted(container, evt)[0].outcome)
        except BaseException as exc:  # reported below, not lost in the thread
            errors.append(exc)

    run_copies(deliver_once, 6)

    assert errors == []
    assert sorted(outcomes) == sorted([Outcome.FULFILLED] + [Outcome.DUPLICATE] * 5)
    assert stub_sessions.retrieved == [evt["data"]["object"]["id"]]


def test_a_unit_of_work_re_run_on_contention_asks_stripe_once(
    container, other_instance, stub_sessions, monkeypatch
):
    """Two sessions of one buyer on two instances: both units read (and lock) the
    buyer's customer document, both are inside their Stripe lookup at once, so one
    commit must wait for or abort the other and that unit runs again. The re-run uses
    the answer its delivery already has."""
    first, second = (se.checkout_session(email="same.buyer@example.com") for _ in range(2))
    for session in (first, second):
        stub_sessions.created(session)
    both_inside = threading.Barrier(2, timeout=10)
    lookup = stub_sessions.session_with_line_items

    def slow_lookup(session_id: str) -> dict[str, Any] | None:
        answer = lookup(session_id)
        if stub_sessions.retrieved.count(session_id) == 1:
            both_inside.wait()  # both units hold their read locks now
        return answer

    monkeypatch.setattr(stub_sessions, "session_with_line_items", slow_lookup)
    begun: list[str] = []
    batch_read = firestore_wire._batch_read

    def counting_read(client: Any, refs: Any, **kwargs: Any) -> Any:
        if kwargs.get("begin"):
            begun.append("unit")
        return batch_read(client, refs, **kwargs)

    monkeypatch.setattr(firestore_wire, "_batch_read", counting_read)
    outcomes: list[Outcome] = []
    errors: list[BaseException] = []

    def deliver_once(instance: Any, session: dict[str, Any]) -> None:
        try:
            outcomes.append(deliver_until_accepted(instance, paid(session))[0].outcome)
        except BaseException as exc:  # reported below, not lost in the thread
            errors.append(exc)

    pairs = ((container, first), (other_instance, second))
    run_together(deliver_once, list(pairs))

    assert errors == []
    assert outcomes == [Outcome.FULFILLED, Outcome.FULFILLED]
    assert len(begun) > 2  # a unit ran again (contention), not just the two first runs
    assert sorted(stub_sessions.retrieved) == sorted([first["id"], second["id"]])
    customer = container.customers.get(container.orders.get(first["id"]).customer_id)
    assert set(customer.order_ids) == {first["id"], second["id"]}


def test_stripe_failing_inside_the_unit_writes_nothing_and_answers_503(
    container, deliver, stub_sessions, email_queue
):
    evt = paid()
    stub_sessions.unreachable = True

    with pytest.raises(CommerceError) as failed:
        deliver(evt)

    assert (failed.value.status, failed.value.code) == (503, "payment_provider_unavailable")
    assert count_documents(container.db) == {}
    assert email_queue.job_ids == []
    # The unit was rolled back, so its locks are gone: Stripe's redelivery fulfils at once.
    stub_sessions.unreachable = False
    assert deliver(evt).outcome is Outcome.FULFILLED
    session_id = evt["data"]["object"]["id"]
    assert container.licenses.get(license_id_for(session_id)) is not None
    assert stub_sessions.retrieved == [session_id]


def test_the_stripe_lookup_leaves_the_commit_its_share_of_the_budget(
    container, deliver, stub_sessions, monkeypatch
):
    seen: list[float | None] = []
    lookup = stub_sessions.session_with_line_items

    def lookup_seeing_the_budget(session_id: str) -> dict[str, Any] | None:
        seen.append(deadlines.budget_left())
        return lookup(session_id)

    monkeypatch.setattr(stub_sessions, "session_with_line_items", lookup_seeing_the_budget)

    with deadlines.request_budget(10.0):
        assert deliver(paid()).outcome is Outcome.FULFILLED

    (left,) = seen
    reserved = deadlines.FIRESTORE_RESERVE_SHARE + verification.COMMIT_RESERVE_SHARE
    assert left is not None
    assert 0 < left <= 10.0 * (1 - reserved)
