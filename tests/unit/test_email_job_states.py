"""The e-mail job state machine (pure)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from commerce.domain import email_jobs
from commerce.domain.models import EmailJob, EmailJobKind, EmailJobState
from commerce.errors import InvalidTransition

NOW = datetime(2026, 3, 1, 9, 30, tzinfo=UTC)
S = EmailJobState


def job(state: EmailJobState, attempts: int = 0) -> EmailJob:
    return EmailJob(
        id="email_1",
        kind=EmailJobKind.FULFILLMENT,
        state=state,
        customer_id="c1",
        attempts=attempts,
        created_at=NOW,
        updated_at=NOW,
    )


def test_a_claim_counts_an_attempt() -> None:
    assert email_jobs.claim(job(S.PENDING, 2), NOW, attempts=3) == {
        "state": S.SENDING,
        "attempts": 4,
        "updated_at": NOW,
    }


@pytest.mark.parametrize(
    ("state", "step"),
    [
        (S.PENDING, lambda j: email_jobs.mark_sent(j, NOW, "m")),  # never claimed
        (S.SENT, lambda j: email_jobs.claim(j, NOW, attempts=0)),
        (S.FAILED, lambda j: email_jobs.retry_later(j, NOW, "x")),
        (S.DEAD, lambda j: email_jobs.mark_failed(j, NOW, "x")),
        (S.SENT, lambda j: email_jobs.bury(j, NOW, "x")),
    ],
)
def test_steps_out_of_order_are_refused(state: EmailJobState, step: object) -> None:
    with pytest.raises(InvalidTransition):
        step(job(state))  # type: ignore[operator]


@pytest.mark.parametrize("state", list(EmailJobState))
def test_an_operator_can_requeue_from_any_state_with_a_fresh_start(state: EmailJobState) -> None:
    fields = email_jobs.requeue(job(state, 7), NOW, reset_attempts=True)

    assert (fields["state"], fields["attempts"], fields["last_error"]) == (S.PENDING, 0, None)


def test_reasons_are_cut_to_a_bounded_length() -> None:
    fields = email_jobs.mark_failed(job(S.SENDING), NOW, "x" * 1000)

    assert len(fields["last_error"]) == email_jobs.REASON_CHARS


def test_only_pending_or_sending_jobs_older_than_the_cutoff_are_stale() -> None:
    later = datetime(2026, 3, 2, tzinfo=UTC)

    assert email_jobs.is_stale(job(S.PENDING), later)
    assert email_jobs.is_stale(job(S.SENDING), later)
    assert not email_jobs.is_stale(job(S.SENT), later)
    assert not email_jobs.is_stale(job(S.PENDING), NOW)
