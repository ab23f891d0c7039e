import itertools

import pytest

from commerce.domain.orders import (
    ALLOWED_TRANSITIONS,
    OrderState,
    can_transition,
    is_entitled,
    transition,
)
from commerce.errors import InvalidTransition

S = OrderState
EXPECTED_ALLOWED = {
    (None, S.PENDING),
    (None, S.PAID),
    (None, S.REFUNDED),
    (None, S.REVOKED),
    (None, S.REJECTED),
    (S.PENDING, S.PAID),
    (S.PENDING, S.FAILED),
    (S.PENDING, S.REFUNDED),
    (S.PENDING, S.DISPUTED),
    (S.PENDING, S.REVOKED),
    (S.PENDING, S.REJECTED),
    (S.PAID, S.FULFILLED),
    (S.PAID, S.REFUNDED),
    (S.PAID, S.DISPUTED),
    (S.PAID, S.REVOKED),
    (S.PAID, S.REJECTED),
    (S.FULFILLED, S.REFUNDED),
    (S.FULFILLED, S.DISPUTED),
    (S.FULFILLED, S.REVOKED),
    (S.DISPUTED, S.FULFILLED),
    (S.DISPUTED, S.REVOKED),
    (S.DISPUTED, S.REFUNDED),
    (S.REJECTED, S.REFUNDED),
    (S.REJECTED, S.REVOKED),
}
ALL_PAIRS = list(itertools.product([None, *S], list(S)))


def test_the_table_is_exactly_the_documented_lifecycle():
    table = {(src, dst) for src, targets in ALLOWED_TRANSITIONS.items() for dst in targets}
    assert table == EXPECTED_ALLOWED


@pytest.mark.parametrize(("source", "target"), sorted(EXPECTED_ALLOWED, key=str))
def test_allowed_transition_returns_the_target(source, target):
    assert transition(source, target) is target


@pytest.mark.parametrize(
    ("source", "target"), [p for p in ALL_PAIRS if p not in EXPECTED_ALLOWED], ids=str
)
def test_every_other_transition_is_refused(source, target):
    assert not can_transition(source, target)
    with pytest.raises(InvalidTransition) as caught:
        transition(source, target)
    assert caught.value.status == 409
    assert caught.value.code == "invalid_transition"


@pytest.mark.parametrize("terminal", [S.FAILED, S.REFUNDED, S.REVOKED])
def test_terminal_states_go_nowhere(terminal):
    assert not ALLOWED_TRANSITIONS[terminal]


def test_only_fulfilled_orders_are_entitled():
    assert [s for s in S if is_entitled(s)] == [S.FULFILLED]


def test_a_rejected_order_never_becomes_paid_fulfilled_or_disputed():
    assert not any(can_transition(S.REJECTED, s) for s in (S.PAID, S.FULFILLED, S.DISPUTED))
    assert not is_entitled(S.REJECTED)
