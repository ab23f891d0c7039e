"""Fixed rate-limit windows as values: which counter document a bucket counts in now,
and what a count allows. Storage of the counters: `commerce.repositories.rate_limits`."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from commerce.domain.models import Document

RATE_LIMITS_COLLECTION = "rate_limits"


class RateCounter(Document):
    """`rate_limits/{sha256(bucket)}-{window start}`; expires by TTL on `expires_at`."""

    count: int = 0
    expires_at: datetime | None = None


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
