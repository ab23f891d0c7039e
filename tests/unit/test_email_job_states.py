"""The e-mail job state machine (pure)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from commerce.domain import email_jobs, email_retry
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
        "next_attempt_at": None,
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


def test_only_overdue_pending_or_long_sending_jobs_are_stale() -> None:
    later = datetime(2026, 3, 2, tzinfo=UTC)
    sending_after = timedelta(minutes=5)

    assert email_jobs.is_stale(job(S.PENDING), later, sending_after=sending_after)
    assert email_jobs.is_stale(job(S.SENDING), later, sending_after=sending_after)
    assert not email_jobs.is_stale(job(S.SENT), later, sending_after=sending_after)
    assert not email_jobs.is_stale(job(S.PENDING), NOW, sending_after=sending_after)
    just_overdue = NOW + email_retry.OVERDUE + timedelta(seconds=1)
    assert email_jobs.is_stale(job(S.PENDING), just_overdue, sending_after=sending_after)
    assert not email_jobs.is_stale(job(S.SENDING), just_overdue, sending_after=sending_after)


def test_a_pending_job_is_stale_only_once_its_scheduled_retry_is_overdue() -> None:
    sending = job(S.SENDING, 3)
    deferred = sending.model_copy(update=email_jobs.retry_later(sending, NOW, "451 later"))
    due = NOW + email_retry.delay(3)
    assert deferred.next_attempt_at == due
    sending_after = timedelta(minutes=5)

    assert not email_jobs.is_stale(deferred, due + email_retry.OVERDUE, sending_after=sending_after)
    assert email_jobs.is_stale(
        deferred, due + email_retry.OVERDUE + timedelta(seconds=1), sending_after=sending_after
    )


def test_the_retry_schedule_follows_cloud_tasks_own_example() -> None:
    """Google's queue.yaml/RetryConfig example: min 10 s, max 300 s, 3 doublings retry
    at 10, 20, 40, 80, 160, 240, 300, 300 s."""
    seconds = [
        email_retry.delay(
            n, min_backoff=timedelta(seconds=10), max_backoff=timedelta(seconds=300)
        ).total_seconds()
        for n in range(1, 9)
    ]
    assert seconds == [10, 20, 40, 80, 160, 240, 300, 300]


def test_the_shops_schedule_waits_at_most_forty_seconds_between_tries() -> None:
    seconds = [email_retry.delay(n).total_seconds() for n in range(1, 200)]
    assert seconds[:5] == [5, 10, 20, 40, 40]
    assert max(seconds) == email_retry.MAX_BACKOFF.total_seconds() == 40
