"""Rate limits shared across instances; a refusal is RateLimited (429 + Retry-After)."""

from __future__ import annotations

import secrets
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from commerce.clock import Clock
from commerce.errors import RateLimited
from commerce.logs import get_logger
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


_log = get_logger("commerce.ratelimit")


@dataclass
class _Tally:
    """This counter's hits in one window: all of them, and those not yet written."""

    window: RateWindow
    total: int = 0
    unsent: int = 0
    refusal_seen: bool = False


class DeferredCounter:
    """Rate-limit counting OFF the request path, for hot paths (license validation).

    A request counts its hit in memory (`hit`) and reads the window's counter document
    together with the documents it needs anyway (one batch get); a background thread
    adds the hits to storage at most every `flush_seconds` in one batched `Increment`
    write, which also records them under `by_counter.<id>` of the document. The count a
    decision uses is

        (stored count - hits of THIS counter already in it) + this counter's hits so far

    so this instance's own hits are counted exactly (written or not, and never twice),
    and other instances' hits are counted once they are written. How approximate: the
    count misses only other instances' hits not yet written when the document was read,
    which is at most what they received in one `flush_seconds` plus one write's latency
    (longer if an idle instance's CPU is throttled between requests; its unsent hits are
    written on its next request or at `close`, and lost if it dies first). Hits of a
    refused request are counted too, so a flood stays refused until the window ends.
    """

    def __init__(self, repository: RateLimitRepository, clock: Clock, *, flush_seconds: float):
        self.repository = repository
        self.clock = clock
        self.flush_seconds = flush_seconds
        self.counter_id = "c" + secrets.token_hex(8)
        self._tallies: dict[str, _Tally] = {}
        self._lock = threading.Lock()
        self._flush_lock = threading.Lock()
        self._pending = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def hit(self, windows: Sequence[RateWindow]) -> list[int]:
        """Count one hit in each window (written later); per window, this counter's
        hits so far including this one."""
        now = self.clock.now()
        totals = []
        with self._lock:
            for path in [p for p, t in self._tallies.items() if not t.unsent]:
                if self._tallies[path].window.expires_at <= now:
                    del self._tallies[path]  # the window is over and written
            for window in windows:
                tally = self._tallies.setdefault(window.ref.path, _Tally(window))
                tally.total += 1
                tally.unsent += 1
                totals.append(tally.total)
            if self._thread is None and not self._stop.is_set():
                self._thread = threading.Thread(
                    target=self._run, name="rate-limit-counter", daemon=True
                )
                self._thread.start()
        self._pending.set()
        return totals

    def decide(
        self,
        windows: Sequence[RateWindow],
        own_totals: Sequence[int],
        documents: Sequence[Mapping[str, Any] | None],
    ) -> list[RateDecision]:
        """One decision per window from its counter document as read after `hit`."""
        decisions = []
        for window, own, document in zip(windows, own_totals, documents, strict=True):
            stored = int((document or {}).get("count", 0))
            by_counter = (document or {}).get("by_counter") or {}
            stored_own = int(by_counter.get(self.counter_id, 0))
            count = stored - stored_own + own
            allowed = count <= window.limit
            decisions.append(
                RateDecision(allowed, count, 0 if allowed else window.retry_after_seconds)
            )
        return decisions

    def first_refusal(self, window: RateWindow) -> bool:
        """True once per window on this counter (to audit a flood once, not per hit)."""
        with self._lock:
            tally = self._tallies.get(window.ref.path)
            if tally is None or tally.refusal_seen:
                return False
            tally.refusal_seen = True
            return True

    def flush(self) -> None:
        """Write every unsent hit now (one batch); on failure they stay unsent."""
        with self._flush_lock:
            with self._lock:
                sending = [(t, t.unsent) for t in self._tallies.values() if t.unsent]
                for tally, _ in sending:
                    tally.unsent = 0
            if not sending:
                return
            try:
                self.repository.add_hits(
                    [(tally.window, n) for tally, n in sending], counter_id=self.counter_id
                )
            except Exception:
                with self._lock:
                    for tally, n in sending:
                        tally.unsent += n
                raise

    def close(self) -> None:
        """Stop the background thread and write what is left."""
        self._stop.set()
        self._pending.set()
        thread, self._thread = self._thread, None
        if thread is not None:
            thread.join()
        self.flush()

    def _run(self) -> None:
        while not self._stop.is_set():
            self._pending.wait()
            self._stop.wait(self.flush_seconds)  # gather a batch; `close` cuts it short
            self._pending.clear()
            try:
                self.flush()
            except Exception:
                _log.warning(
                    "rate-limit hits not written; retrying",
                    exc_info=True,
                    extra={"event": "ratelimit.flush_failed"},
                )
