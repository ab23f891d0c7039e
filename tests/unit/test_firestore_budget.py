"""The Firestore call deadline inside a request budget (commerce.deadlines): a call
leaves the reserve for the client library's back-off pause, and once only the reserve
is left it is refused, so a dead store's 503 comes within the budget."""

from __future__ import annotations

import pytest

from commerce import deadlines
from commerce.deadlines import DependencyTimeout, firestore_call_timeout, request_budget


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    fake = Clock()
    monkeypatch.setattr(deadlines.time, "monotonic", fake)
    return fake


def test_outside_a_request_the_librarys_deadline_applies(clock: Clock) -> None:
    assert firestore_call_timeout(60.0) == 60.0
    assert firestore_call_timeout(None) is None


def test_a_call_gets_what_is_left_of_the_budget_less_the_reserve(clock: Clock) -> None:
    with request_budget(10.0):
        assert firestore_call_timeout(60.0) == pytest.approx(6.0)
        assert firestore_call_timeout(2.0) == pytest.approx(2.0)
        clock.now += 3.0
        assert firestore_call_timeout(None) == pytest.approx(3.0)


def test_a_call_is_refused_once_only_the_reserve_is_left(clock: Clock) -> None:
    with request_budget(10.0):
        clock.now += 6.0  # 4 s left: exactly the 40 % reserve
        with pytest.raises(DependencyTimeout):
            firestore_call_timeout(60.0)


def test_the_budget_ends_with_its_block(clock: Clock) -> None:
    with request_budget(1.0):
        clock.now += 5.0
    assert firestore_call_timeout(60.0) == 60.0


def test_a_call_inside_a_transaction_leaves_the_commit_its_share(clock: Clock) -> None:
    """`leaving(share)`: the Stripe lookup of a paid session, inside its unit of work,
    must end `share` of the budget early, so the commit after it still gets its time."""
    with request_budget(10.0):
        clock.now += 1.0
        with deadlines.leaving(0.5):
            assert deadlines.budget_left() == pytest.approx(4.0)
            clock.now += 4.0
            with pytest.raises(DependencyTimeout):
                deadlines.remaining_budget()  # the lookup may not start any more
        assert deadlines.budget_left() == pytest.approx(5.0)  # the commit's time
        assert firestore_call_timeout(60.0) == pytest.approx(1.0)


def test_leaving_changes_nothing_outside_a_request(clock: Clock) -> None:
    with deadlines.leaving(0.5):
        assert deadlines.budget_left() is None
