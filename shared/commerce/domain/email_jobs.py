"""The e-mail job (outbox entry) lifecycle as an explicit state machine.

    claim        pending | sending -> sending   a delivery takes it (attempts + 1); sending
                                                only once stale (its worker died)
    mark_sent    sending -> sent                the provider accepted the message
    mark_failed  sending -> failed              permanent: bad address, 4xx, no content
    retry_later  sending -> pending             transient failure: retried at next_attempt_at
    bury         pending | sending -> dead      attempts exhausted
    requeue      any -> pending                 the sweeper (stale pending/sending) or an
                                                operator's re-send (sent only when forced)

Each step returns the fields to write (the e-mail worker writes them in its unit of
work); a step from any other state is refused with InvalidTransition. Values in,
values out.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from commerce.domain import email_retry
from commerce.domain.models import EmailJob, EmailJobState
from commerce.errors import InvalidTransition

PENDING, SENDING, SENT = EmailJobState.PENDING, EmailJobState.SENDING, EmailJobState.SENT
FAILED, DEAD = EmailJobState.FAILED, EmailJobState.DEAD

ANY = frozenset(EmailJobState)
# The states each step may start from (the step's target is in its docstring).
CLAIMABLE = frozenset({PENDING, SENDING})  # sending: only once stale (the worker died)
CLAIMED = frozenset({SENDING})
# States in which no delivery is needed any more.
FINISHED = frozenset({SENT, FAILED, DEAD})
REASON_CHARS = 300


def _step(job: EmailJob, sources: frozenset[EmailJobState], target: EmailJobState) -> EmailJobState:
    if job.state not in sources:
        raise InvalidTransition(f"an e-mail job cannot go from {job.state.value} to {target.value}")
    return target


def claim(job: EmailJob, now: datetime, *, attempts: int) -> dict[str, Any]:
    """A delivery takes the job (`attempts`: what it counted so far)."""
    return {
        "state": _step(job, CLAIMABLE, SENDING),
        "attempts": attempts + 1,
        "updated_at": now,
        "next_attempt_at": None,
    }


def mark_sent(job: EmailJob, now: datetime, provider_message_id: str) -> dict[str, Any]:
    return {
        "state": _step(job, CLAIMED, SENT),
        "sent_at": now,
        "updated_at": now,
        "last_error": None,
        "provider_message_id": provider_message_id[:200],
    }


def mark_failed(job: EmailJob, now: datetime, reason: str) -> dict[str, Any]:
    return {
        "state": _step(job, CLAIMED, FAILED),
        "updated_at": now,
        "last_error": reason[:REASON_CHARS],
    }


def retry_later(job: EmailJob, now: datetime, reason: str) -> dict[str, Any]:
    """Back to pending, due after the schedule's wait for this retry
    (`commerce.domain.email_retry`; the job's attempts so far number the retry)."""
    return {
        "state": _step(job, CLAIMED, PENDING),
        "updated_at": now,
        "last_error": reason[:REASON_CHARS],
        "next_attempt_at": now + email_retry.delay(job.attempts),
    }


def bury(job: EmailJob, now: datetime, reason: str) -> dict[str, Any]:
    """Attempts exhausted: no more deliveries (an operator may re-send)."""
    return {"state": _step(job, CLAIMABLE, DEAD), "updated_at": now, "last_error": reason}


def requeue(job: EmailJob, now: datetime, *, reset_attempts: bool) -> dict[str, Any]:
    """Back to pending for a new delivery: the sweeper (stale), or an operator
    (`reset_attempts`: a fresh start)."""
    fields: dict[str, Any] = {
        "state": _step(job, ANY, PENDING),
        "updated_at": now,
        "enqueued_at": now,
        "next_attempt_at": now,
    }
    if reset_attempts:
        fields["attempts"] = 0
        fields["last_error"] = None
    return fields


def is_stale(job: EmailJob, now: datetime, *, sending_after: timedelta) -> bool:
    """Needs the sweeper: pending and overdue by more than `email_retry.OVERDUE` (its
    task was lost or never queued; a job without a due time counts from its last
    change), or sending for longer than `sending_after` (its worker died). A job is
    never due before its last change."""
    if job.state is PENDING:
        due = max(job.next_attempt_at or job.updated_at, job.updated_at)
        return due < now - email_retry.OVERDUE
    return job.state is SENDING and job.updated_at < now - sending_after
