"""The e-mail job (outbox entry) lifecycle as an explicit state machine.

    pending -> sending              a delivery claims the job (attempts + 1)
    sending -> sent                 the provider accepted the message
    sending -> failed               permanent: bad address, provider 4xx, no content
    sending -> pending              transient failure: Cloud Tasks retries
    pending | sending -> dead       attempts exhausted
    sending -> sending              a stale claim (the worker died) is claimed again
    pending | sending -> pending    re-enqueued by the sweeper when stale
    failed | dead | sent -> pending an operator re-sends (sent only when forced)

Each step returns the fields to write (the e-mail worker writes them in its unit of
work); anything else is refused with InvalidTransition. Values in, values out.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from commerce.domain.models import EmailJob, EmailJobState
from commerce.errors import InvalidTransition

PENDING, SENDING, SENT = EmailJobState.PENDING, EmailJobState.SENDING, EmailJobState.SENT
FAILED, DEAD = EmailJobState.FAILED, EmailJobState.DEAD

ALLOWED_TRANSITIONS: dict[EmailJobState, frozenset[EmailJobState]] = {
    PENDING: frozenset({SENDING, DEAD, PENDING}),
    SENDING: frozenset({SENT, FAILED, PENDING, DEAD, SENDING}),
    SENT: frozenset({PENDING}),
    FAILED: frozenset({PENDING}),
    DEAD: frozenset({PENDING}),
}
# States in which no delivery is needed any more.
FINISHED = frozenset({SENT, FAILED, DEAD})
REASON_CHARS = 300


def can_transition(current: EmailJobState, target: EmailJobState) -> bool:
    return target in ALLOWED_TRANSITIONS[current]


def _to(job: EmailJob, target: EmailJobState) -> EmailJobState:
    if not can_transition(job.state, target):
        raise InvalidTransition(f"an e-mail job cannot go from {job.state.value} to {target.value}")
    return target


def claim(job: EmailJob, now: datetime, *, attempts: int) -> dict[str, Any]:
    """A delivery takes the job (`attempts`: what it counted so far)."""
    return {"state": _to(job, SENDING), "attempts": attempts + 1, "updated_at": now}


def mark_sent(job: EmailJob, now: datetime, provider_message_id: str) -> dict[str, Any]:
    return {
        "state": _to(job, SENT),
        "sent_at": now,
        "updated_at": now,
        "last_error": None,
        "provider_message_id": provider_message_id[:200],
    }


def mark_failed(job: EmailJob, now: datetime, reason: str) -> dict[str, Any]:
    return {"state": _to(job, FAILED), "updated_at": now, "last_error": reason[:REASON_CHARS]}


def retry_later(job: EmailJob, now: datetime, reason: str) -> dict[str, Any]:
    return {"state": _to(job, PENDING), "updated_at": now, "last_error": reason[:REASON_CHARS]}


def bury(job: EmailJob, now: datetime, reason: str) -> dict[str, Any]:
    """Attempts exhausted: no more deliveries (an operator may re-send)."""
    return {"state": _to(job, DEAD), "updated_at": now, "last_error": reason}


def requeue(job: EmailJob, now: datetime, *, reset_attempts: bool) -> dict[str, Any]:
    """Back to pending for a new delivery: the sweeper (stale), or an operator
    (`reset_attempts`: a fresh start)."""
    fields: dict[str, Any] = {"state": _to(job, PENDING), "updated_at": now, "enqueued_at": now}
    if reset_attempts:
        fields["attempts"] = 0
        fields["last_error"] = None
    return fields


def is_stale(job: EmailJob, cutoff: datetime) -> bool:
    """Left pending (its enqueue failed) or sending (its worker died) since before
    `cutoff`."""
    return job.state in (PENDING, SENDING) and job.updated_at < cutoff
