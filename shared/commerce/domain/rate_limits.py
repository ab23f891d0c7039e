"""Fixed rate-limit windows as values: which counter document a bucket counts in now,
and what a count allows. Storage of the counters: `commerce.repositories.rate_limits`."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Protocol

from pydantic import Field

from commerce.domain.documents import Document

RATE_LIMITS_COLLECTION = "rate_limits"


class RateCounter(Document):
    """`rate_limits/{sha256(bucket)}-{window start}`; expires by TTL on `expires_at`."""

    count: int = 0
    expires_at: datetime | None = None
    # Hits per deferred counter (`commerce.ratelimit.DeferredCounter`), read only: the
    # counters add to it with increments, a unit of work never rewrites it.
    by_counter: dict[str, int] = Field(default_factory=dict, exclude=True)

    def others_than(self, counter_id: str) -> int:
        """Hits of every counter but `counter_id` (its own are known in memory)."""
        return self.count - int(self.by_counter.get(counter_id, 0))


class CounterStore(Protocol):
    """Where rate-limit counters are counted outside a unit of work (atomic increments
    shared by every instance): `commerce.repositories.rate_limits` (Firestore) or
    `commerce.repositories.memory.MemoryRateLimits`."""

    def hit(self, bucket: str, *, limit: int, window_seconds: int, now: datetime) -> RateDecision:
        """Count one hit unless the window is full (exact, in a transaction)."""
        ...

    def increment(self, windows: Sequence[RateWindow]) -> list[int]:
        """One hit in each window, one write; each counter's value after it."""
        ...

    def add_hits(
        self, hits: Sequence[tuple[RateWindow, int]], *, counter_id: str
    ) -> list[tuple[int, int]]:
        """`n` hits per window, also under `by_counter.<counter_id>`; per window (count,
        this counter's count) after the write."""
        ...


@dataclass(frozen=True)
class RateDecision:
    allowed: bool
    count: int
    retry_after_seconds: int


@dataclass(frozen=True)
class RateWindow:
    """The counter document of one bucket's current window, for callers that count
    inside their own unit of work (read `doc_id`, then write `counted(n)`)."""

    doc_id: str
    limit: int
    retry_after_seconds: int
    expires_at: datetime

    def allows(self, count: int) -> bool:
        return count < self.limit

    def counted(self, count: int) -> RateCounter:
        return RateCounter(id=self.doc_id, count=count + 1, expires_at=self.expires_at)


def window_for(bucket: str, *, limit: int, window_seconds: int, now: datetime) -> RateWindow:
    """The bucket's window containing `now`. The bucket name is hashed so e-mail
    addresses or IPs used as buckets are not stored."""
    epoch = int(now.timestamp())
    window_start = epoch - epoch % window_seconds
    name = hashlib.sha256(bucket.encode()).hexdigest()[:32]
    return RateWindow(
        doc_id=f"{name}-{window_start}",
        limit=limit,
        retry_after_seconds=max(1, window_start + window_seconds - epoch),
        expires_at=datetime.fromtimestamp(window_start + window_seconds, UTC)
        + timedelta(seconds=window_seconds),
    )
