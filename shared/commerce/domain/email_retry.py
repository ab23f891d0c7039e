"""When a deferred e-mail is tried again: one schedule for the worker, the queue and
the sweeper (docs/email.md, "Retry schedule").

The worker schedules each retry itself: after a transient failure it records the
job's next attempt (`next_attempt_at`) and queues a task for that time (Cloud Tasks
and the local tasks emulator both honour a task's schedule time; the emulator ignores
a queue's retry config). So a provider that comes back is used at the job's next
attempt, at most `MAX_BACKOFF` later, here and in Google Cloud alike.

The Cloud Tasks queue's own retry config (infra/terraform/modules/shop/tasks.tf,
cross-checked against these numbers by tests/infra) uses the same schedule for tasks
that got no answer at all (a crashed or timed-out worker). The sweeper, every
`SWEEP_EVERY`, queues any pending job whose next attempt is more than `OVERDUE` past
(its task was lost): the last line of defence.

Intervals, as Cloud Tasks computes them: `MIN_BACKOFF` doubled `MAX_DOUBLINGS`
times, then growing linearly by `MIN_BACKOFF * 2**MAX_DOUBLINGS`, capped at
`MAX_BACKOFF`: 5, 10, 20, 40, 40, ... seconds.
"""

from __future__ import annotations

from datetime import timedelta

MIN_BACKOFF = timedelta(seconds=5)
MAX_BACKOFF = timedelta(seconds=40)
MAX_DOUBLINGS = 3
# A pending job whose next attempt is this far past has lost its task.
OVERDUE = timedelta(seconds=60)
# The sweeper's cadence (Cloud Scheduler; `* * * * *`).
SWEEP_EVERY = timedelta(seconds=60)


def delay(
    retry: int,
    *,
    min_backoff: timedelta = MIN_BACKOFF,
    max_backoff: timedelta = MAX_BACKOFF,
    max_doublings: int = MAX_DOUBLINGS,
) -> timedelta:
    """The wait before retry number `retry` (1 = the first retry)."""
    retry = max(retry, 1)
    doublings = min(retry - 1, max_doublings)
    linear_steps = retry - 1 - doublings
    interval = min_backoff * (1 << doublings) + min_backoff * (1 << max_doublings) * linear_steps
    return min(interval, max_backoff)
