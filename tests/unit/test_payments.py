"""The paid-session rule (domain/payments.py) on plain values."""

from __future__ import annotations

import dataclasses

from hypothesis import given, settings
from hypothesis import strategies as st

from commerce.domain.payments import Catalog, LineItem, Rejection, StripeSession, check_session
from commerce.purchase.verification import stripe_session

CATALOG = Catalog(
    price_ids=frozenset({"price_genx"}),
    currencies=frozenset({"eur"}),
    livemode=False,
    allow_giveaways=False,
)


def session(**changes: object) -> StripeSession:
    base = StripeSession(
        id="cs_test_1",
        livemode=False,
        mode="payment",
        status="complete",
        payment_status="paid",
        currency="eur",
        amount_subtotal=4900,
        amount_total=4900,
        amount_discount=0,
        line_items=(LineItem("price_genx", 1, 4900, "eur"),),
    )
    return dataclasses.replace(base, **changes)  # type: ignore[arg-type]


def test_the_configured_price_paid_in_full_is_accepted():
    verdict = check_session(session(), CATALOG)
    assert verdict.accepted
    assert not verdict.giveaway


def test_an_open_or_unpaid_session_is_not_paid():
    assert check_session(session(status="open"), CATALOG).rejection is Rejection.NOT_PAID
    assert check_session(session(payment_status="unpaid"), CATALOG).rejection is Rejection.NOT_PAID


def test_more_line_items_than_the_page_shows_are_refused():
    assert check_session(session(more_line_items=True), CATALOG).rejection is Rejection.WRONG_PRICE


def test_a_giveaway_needs_the_setting_and_is_marked():
    free = session(amount_total=0, amount_discount=4900, payment_status="no_payment_required")
    assert check_session(free, CATALOG).rejection is Rejection.GIVEAWAY_NOT_ALLOWED
    allowed = check_session(free, dataclasses.replace(CATALOG, allow_giveaways=True))
    assert allowed.accepted
    assert allowed.giveaway


def test_no_payment_required_with_a_total_above_zero_is_not_paid():
    odd = session(payment_status="no_payment_required")
    assert check_session(odd, CATALOG).rejection is Rejection.NOT_PAID


def test_a_live_session_on_a_test_key_and_the_reverse_are_refused():
    assert check_session(session(livemode=True), CATALOG).rejection is Rejection.LIVEMODE_MISMATCH
    live = dataclasses.replace(CATALOG, livemode=True)
    assert check_session(session(), live).rejection is Rejection.LIVEMODE_MISMATCH


@given(
    total=st.one_of(st.none(), st.integers(-(10**9), 10**9)),
    discount=st.one_of(st.none(), st.integers(-(10**6), 10**6)),
)
def test_only_the_price_less_the_reported_discount_is_accepted(
    total: int | None, discount: int | None
):
    verdict = check_session(session(amount_total=total, amount_discount=discount), CATALOG)
    d = discount or 0
    if total is not None and 0 <= d < 4900 and total == 4900 - d:
        assert verdict.accepted
    else:
        assert verdict.rejection in (Rejection.WRONG_AMOUNT, Rejection.GIVEAWAY_NOT_ALLOWED)


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=12,
)
FIELDS = st.sampled_from(
    ["id", "livemode", "mode", "status", "payment_status", "currency", "amount_subtotal",
     "amount_total", "total_details", "line_items"]
)  # fmt: skip


@settings(deadline=None, max_examples=400)  # no timing assertions in tests
@given(
    st.dictionaries(FIELDS, JSON),
    st.dictionaries(st.sampled_from(["data", "has_more"]), JSON, min_size=1),
)
def test_any_shape_of_session_gets_a_verdict_never_an_exception(
    raw: dict[str, object], page: dict[str, object]
):
    verdict = check_session(stripe_session({**raw, "line_items": page}), CATALOG)
    if verdict.accepted:  # only ever for the configured price, paid in full
        assert raw.get("amount_total") == 4900
