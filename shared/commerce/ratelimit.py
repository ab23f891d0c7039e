"""Rate limits shared across instances; a refusal is RateLimited (429 + Retry-After)."""

from __future__ import annotations

from collections.abc import Sequence

from commerce.clock import Clock
from commerce.errors import RateLimited
from commerce.repositories import RateLimitRepository
from commerce.repositories.rate_limits import RateDecision, RateWindow


class RateLimiter:
    def __init__(self, repository: RateLimitRepository, clock: Clock, window_seconds: int) -> None:
        self.repository = repository
        self.clock = clock
        self.window_seconds = window_seconds

    def check(self, bucket: str, limit: int, *, window_seconds: int | None = None) -> None:
        decision = self.repository.hit(
            bucket,
            limit=limit,
            window_seconds=window_seconds or self.window_seconds,
            now=self.clock.now(),
        )
        if not decision.allowed:
            raise RateLimited(decision.retry_after_seconds)

    def window(self, bucket: str, limit: int, *, window_seconds: int | None = None) -> RateWindow:
        """The bucket's counter for the current window, to be counted in a caller's
        transaction together with the work it guards (see delivery.download)."""
        return self.repository.window(
            bucket,
            limit=limit,
            window_seconds=window_seconds or self.window_seconds,
            now=self.clock.now(),
        )

    def hit_all(
        self, limits: Sequence[tuple[str, int]], *, window_seconds: int | None = None
    ) -> list[RateDecision]:
        """Count one hit in every (bucket, limit) with a single write; one decision per
        bucket (count after this hit; refused once the count passes the limit)."""
        windows = [
            self.window(bucket, limit, window_seconds=window_seconds) for bucket, limit in limits
        ]
        counts = self.repository.increment(windows)
        return [
            RateDecision(
                count <= window.limit,
                count,
                0 if count <= window.limit else window.retry_after_seconds,
            )
            for window, count in zip(windows, counts, strict=True)
        ]
