"""Fulfil only what was paid: every paid session is retrieved from Stripe (line items
expanded) and held to the catalog before a license exists (domain/payments.py). On the
in-memory store with a stub Stripe; the same flows through the official library and
the Stripe double are in tests/purchase/test_functions.py (a session Stripe never
created, one made outside our checkout) and tests/purchase/test_verification_in_transaction.py."""

from __future__ import annotations

import logging
from typing import Any

import pytest

from commerce.bootstrap import Container
from commerce.domain.ids import license_id_for
from commerce.domain.orders import OrderState
from commerce.errors import CommerceError
from commerce.purchase.schemas import Outcome
from commerce.repositories.memory import MemoryStorage
from tests.purchase import stripe_events as se
from tests.purchase.conftest import make_settings


def completed(session: dict[str, Any]) -> dict[str, Any]:
    return se.event("checkout.session.completed", session)


def assert_rejected(storage: MemoryStorage, session_id: str, reason: str) -> None:
    order = storage.load("orders", session_id)
    assert order is not None
    assert (order.state, order.rejection_reason) == (OrderState.REJECTED, reason)
    assert storage.load("licenses", license_id_for(session_id)) is None
    assert storage.all("download_tokens") == {}
    assert storage.all("email_jobs") == {}
    assert storage.audit_actions() == ["order.rejected"]


def test_a_session_stripe_never_created_is_rejected_and_alerted(
    deliver: Any, storage: MemoryStorage, caplog: pytest.LogCaptureFixture
) -> None:
    evt = completed(se.checkout_session())
    session_id = evt["data"]["object"]["id"]

    with caplog.at_level(logging.INFO):
        result = deliver(evt, known=False)

    assert result.outcome is Outcome.REJECTED
    assert_rejected(storage, session_id, "unknown_session")
    assert storage.load("ledger", evt["id"]).outcome == "rejected"
    (alert,) = [r for r in caplog.records if getattr(r, "event", "") == "purchase.rejected"]
    assert alert.levelno == logging.ERROR
    assert (alert.order_id, alert.reason) == (session_id, "unknown_session")  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("session", "items", "reason"),
    [
        ({}, [se.line_item(price_id="price_someone_elses")], "wrong_price"),
        ({}, [se.line_item(), se.line_item(price_id="price_extra", unit_amount=0)], "wrong_price"),
        ({"amount_subtotal": 9800}, [se.line_item(quantity=2)], "wrong_quantity"),
        ({"currency": "usd"}, [se.line_item(currency="usd")], "wrong_currency"),
        (
            {"currency": "jpy", "amount_subtotal": 1},
            [se.line_item(currency="jpy")],
            "wrong_currency",
        ),
        ({"amount_subtotal": 4900}, [se.line_item(unit_amount=9900)], "wrong_amount"),
        ({"amount_total": 1}, [], "wrong_amount"),
        ({"amount_total": -4900}, [], "wrong_amount"),
        ({"null_total": True}, [], "wrong_amount"),
        ({"amount_total": 4000}, [], "wrong_amount"),  # no discount reported
        ({"amount_discount": 5000, "amount_total": 0}, [], "wrong_amount"),
        ({"mode": "subscription"}, [], "wrong_mode"),
        ({"livemode": True}, [], "livemode_mismatch"),
        ({"amount_discount": 4900}, [], "giveaway_not_allowed"),
    ],
    ids=lambda v: v if isinstance(v, str) else None,
)
def test_a_paid_session_that_is_not_what_we_sell_mints_no_license(
    deliver: Any,
    storage: MemoryStorage,
    stub_sessions: Any,
    session: dict[str, Any],
    items: list[dict[str, Any]],
    reason: str,
) -> None:
    null_total = session.pop("null_total", False)
    built = se.checkout_session(**session)
    if null_total:
        built["amount_total"] = None
    stub_sessions.created(built, *items)

    result = deliver(completed(built))

    assert result.outcome is Outcome.REJECTED
    assert_rejected(storage, built["id"], reason)


def test_a_discount_stripe_reports_is_honoured(deliver: Any, storage: MemoryStorage) -> None:
    session = se.checkout_session(amount_discount=1000)

    assert deliver(completed(session)).outcome is Outcome.FULFILLED

    assert storage.load("orders", session["id"]).amount_total == 3900


def test_the_event_is_only_the_trigger_stripes_answer_decides(
    deliver: Any, storage: MemoryStorage, stub_sessions: Any
) -> None:
    """A signed event that says 4900 for a session Stripe reports at 1 is rejected."""
    at_stripe = se.checkout_session(amount_total=1)
    stub_sessions.created(at_stripe)
    claimed = {**at_stripe, "amount_total": 4900}

    assert deliver(completed(claimed)).outcome is Outcome.REJECTED

    order = storage.load("orders", at_stripe["id"])
    assert (order.rejection_reason, order.amount_total) == ("wrong_amount", 1)


def test_a_free_order_is_a_giveaway_only_when_the_shop_allows_it(
    container: Container, deliver: Any, storage: MemoryStorage
) -> None:
    container.settings = make_settings(allow_giveaways=True)  # type: ignore[misc]
    session = se.checkout_session(amount_discount=4900, payment_status="no_payment_required")

    assert deliver(completed(session)).outcome is Outcome.FULFILLED

    assert storage.load("orders", session["id"]).state is OrderState.FULFILLED
    assert storage.audit_actions() == ["order.fulfilled", "order.giveaway"]


def test_stripe_unreachable_answers_503_writes_nothing_and_a_retry_fulfils(
    deliver: Any, storage: MemoryStorage, stub_sessions: Any
) -> None:
    evt = completed(se.checkout_session())
    stub_sessions.unreachable = True

    with pytest.raises(CommerceError) as caught:
        deliver(evt)

    assert (caught.value.status, caught.value.code) == (503, "payment_provider_unavailable")
    assert storage.counts() == {}
    stub_sessions.unreachable = False
    assert deliver(evt).outcome is Outcome.FULFILLED


def test_a_repeat_of_a_rejection_asks_stripe_once_and_changes_nothing(
    deliver: Any, storage: MemoryStorage, stub_sessions: Any
) -> None:
    evt = completed(se.checkout_session(mode="subscription"))
    deliver(evt)
    before = storage.all("orders")

    assert deliver(evt).outcome is Outcome.DUPLICATE

    assert stub_sessions.retrieved == [evt["data"]["object"]["id"]]
    assert storage.all("orders") == before


def test_a_rejected_order_stays_rejected_when_a_later_event_says_paid(
    deliver: Any, storage: MemoryStorage, stub_sessions: Any
) -> None:
    session = se.checkout_session(mode="subscription")
    stub_sessions.created(session)
    deliver(completed(session))

    later = deliver(se.event("checkout.session.async_payment_succeeded", session))

    assert later.outcome is Outcome.BLOCKED
    assert_rejected(storage, session["id"], "wrong_mode")


def test_a_fulfilled_order_is_never_downgraded_by_a_later_rejection(
    deliver: Any, storage: MemoryStorage, stub_sessions: Any
) -> None:
    session = se.checkout_session()
    deliver(completed(session))
    stub_sessions.created({**session, "livemode": True})  # e.g. the key was swapped

    again = deliver(se.event("checkout.session.async_payment_succeeded", session))

    assert again.outcome is Outcome.ALREADY_FULFILLED
    assert storage.load("orders", session["id"]).state is OrderState.FULFILLED


def test_a_refund_of_a_rejected_order_is_recorded(
    deliver: Any, storage: MemoryStorage, stub_sessions: Any
) -> None:
    session = se.checkout_session(currency="usd")
    stub_sessions.created(session, se.line_item(currency="usd"))
    deliver(completed(session))

    refund = se.charge(session["payment_intent"], amount_refunded=4900)
    assert deliver(se.event("charge.refunded", refund)).outcome is Outcome.REFUNDED

    order = storage.load("orders", session["id"])
    assert (order.state, order.amount_refunded) == (OrderState.REFUNDED, 4900)


@pytest.mark.parametrize(
    ("claim", "reason"),
    [
        ({"amount_total": 1}, "wrong_amount"),
        ({"currency": "jpy"}, "wrong_currency"),
        ({"mode": "subscription"}, "wrong_mode"),
        ({"livemode": True}, "livemode_mismatch"),
        ({"amount_total": 0, "payment_status": "no_payment_required"}, "wrong_amount"),
    ],
    ids=lambda v: v if isinstance(v, str) else None,
)
def test_a_signed_event_that_disagrees_with_the_catalog_is_rejected_too(
    deliver: Any,
    storage: MemoryStorage,
    stub_sessions: Any,
    claim: dict[str, Any],
    reason: str,
) -> None:
    """The event is Stripe's word as much as the retrieve: both must pass the rule."""
    at_stripe = se.checkout_session()
    stub_sessions.created(at_stripe)

    result = deliver(completed({**at_stripe, **claim}))

    assert result.outcome is Outcome.REJECTED
    order = storage.load("orders", at_stripe["id"])
    assert order.rejection_reason == reason
    assert storage.load("licenses", license_id_for(at_stripe["id"])) is None
