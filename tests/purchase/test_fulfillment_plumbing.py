"""The pieces the fulfillment transaction is built from: the unit of work's batched
read (against Google's Firestore emulator) and the per-session turns inside one instance."""

from __future__ import annotations

import threading
from typing import Any

from commerce.purchase.fulfillment import license_id_for
from commerce.purchase.schemas import Outcome
from commerce.turns import Turns
from tests.purchase import stripe_events as se


def test_documents_read_together_come_back_by_key_with_none_for_missing(
    container: Any, deliver: Any
) -> None:
    evt = se.event("checkout.session.completed", se.checkout_session(email="a@example.com"))
    session_id = evt["data"]["object"]["id"]
    assert deliver(evt).outcome is Outcome.FULFILLED

    with container.storage.batch() as uow:
        keys = (
            uow.ledger.key(evt["id"]),
            uow.licenses.key(license_id_for("cs_test_never_paid")),
            uow.licenses.key(license_id_for(session_id)),
            uow.orders.key(session_id),
            uow.orders.key(session_id),
        )
        found = uow.read(*keys)
    ledger, missing, license_, order, order_again = (found[key] for key in keys)

    assert ledger == container.webhook_events.get(evt["id"])
    assert missing is None
    assert license_ == container.licenses.get(license_id_for(session_id))
    assert order == container.orders.get(session_id)
    assert order_again == order


def test_a_delivery_for_one_session_waits_for_another_of_the_same_session() -> None:
    turns = Turns()
    first_inside = threading.Event()
    steps: list[str] = []

    def second() -> None:
        first_inside.wait()
        with turns.turn("cs_1"):
            steps.append("second in")

    thread = threading.Thread(target=second)
    thread.start()
    with turns.turn("cs_1"):
        first_inside.set()
        steps.append("first in")
        steps.append("first out")
    thread.join()

    assert steps == ["first in", "first out", "second in"]


def test_deliveries_for_different_sessions_do_not_wait_for_each_other() -> None:
    turns = Turns()
    release = threading.Event()
    holding = threading.Event()
    entered = threading.Event()

    def hold_session_one() -> None:
        with turns.turn("cs_1"):
            holding.set()
            release.wait()

    def enter_session_two() -> None:
        with turns.turn("cs_2"):
            entered.set()

    holder = threading.Thread(target=hold_session_one)
    holder.start()
    holding.wait()
    other = threading.Thread(target=enter_session_two)
    other.start()
    other.join(timeout=30)  # a deadlock guard, not a timing assertion
    inside_while_held = entered.is_set()
    release.set()
    holder.join()

    assert inside_while_held
