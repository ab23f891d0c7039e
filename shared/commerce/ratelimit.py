"""Rate limits shared across instances; a refusal is RateLimited (429 + Retry-After)."""

from __future__ import annotations

import secrets
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from commerce.clock import Clock
from commerce.deadlines import request_budget
from commerce.domain.rate_limits import (
    CounterStore,
    RateCounter,
    RateDecision,
    RateWindow,
    window_for,
)
from commerce.errors import RateLimited
from commerce.logs import get_logger


class RateLimiter:
    """Counts per bucket. Bucket names (addresses, networks, key hashes) are keyed with
    `bucket_key` (commerce.pseudonyms) before they become a counter's document id, so
    the ids cannot be reversed with a dictionary."""

    def __init__(
        self,
        repository: CounterStore,
        clock: Clock,
        window_seconds: int,
        *,
        bucket_key: Callable[[str], str],
    ) -> None:
        self.repository = repository
        self.clock = clock
        self.window_seconds = window_seconds
        self.bucket_key = bucket_key

    def check(self, bucket: str, limit: int, *, window_seconds: int | None = None) -> None:
        decision = self.repository.hit(
            self.bucket_key(bucket),
            limit=limit,
            window_seconds=window_seconds or self.window_seconds,
            now=self.clock.now(),
        )
        if not decision.allowed:
            raise RateLimited(decision.retry_after_seconds)

    def window(self, bucket: str, limit: int, *, window_seconds: int | None = None) -> RateWindow:
        """The bucket's counter for the current window, to be counted in a caller's
        transaction together with the work it guards (see delivery.download)."""
        return window_for(
            self.bucket_key(bucket),
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
FLUSH_BUDGET_SECONDS = 5.0


@dataclass
class _Tally:
    """This counter's hits in one window: all of them, and those not yet written; and
    what it last learnt of everybody else's (None: nothing yet)."""

    window: RateWindow
    total: int = 0
    unsent: int = 0
    refusal_seen: bool = False
    others: int | None = None
    learned_at: float = 0.0  # time.monotonic() of `others`


class DeferredCounter:
    """Rate-limit counting OFF the request path, for hot paths (license validation).

    A request counts its hit in memory (`hit`); a background thread adds the hits to
    storage at most every `flush_seconds` in one batched `Increment` write, which also
    records them under `by_counter.<id>` of the window's document and reports both
    totals after the write. Hence the counter learns, with every write, how many hits
    OTHER counters (instances) have written: `count - by_counter.<id>`. A decision uses

        (other counters' written hits, as last learnt) + this counter's hits so far

    so this instance's own hits are counted exactly (written or not, and never twice),
    and other instances' hits count once they are written and this instance has
    written (or read) the window after them. While a window has traffic here, that
    happens every `flush_seconds`; when what it knows of a window is missing or older
    than `fresh_seconds`, the request reads the counter document itself
    (`needs_reading` / `learn`), so a quiet window never decides from an old view.

    How approximate: a decision misses only other instances' hits that were not yet
    written when this instance last learnt the window: at most what they received in
    one of their `flush_seconds` plus this instance's `fresh_seconds` and a write's
    latency (longer if an idle instance's CPU is throttled between requests; its unsent
    hits are written on its next request or at `close`, and lost if it dies first).
    Hits of a refused request are counted too, so a flood stays refused until the
    window ends.
    """

    def __init__(
        self,
        repository: CounterStore,
        clock: Clock,
        *,
        flush_seconds: float,
        fresh_seconds: float | None = None,
    ):
        self.repository = repository
        self.clock = clock
        self.flush_seconds = flush_seconds
        # How old what it learnt of other instances may be before a request reads.
        self.fresh_seconds = max(1.0, 4 * flush_seconds) if fresh_seconds is None else fresh_seconds
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
                tally = self._tallies.setdefault(window.doc_id, _Tally(window))
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

    def needs_reading(self, windows: Sequence[RateWindow]) -> list[RateWindow]:
        """The windows (after `hit`) whose other-instance count is unknown or stale: the
        request reads their documents and hands them to `learn` before deciding."""
        oldest = time.monotonic() - self.fresh_seconds
        with self._lock:
            return [
                window
                for window in windows
                if (tally := self._tallies.get(window.doc_id)) is None
                or tally.others is None
                or tally.learned_at < oldest
            ]

    def learn(self, windows: Sequence[RateWindow], counters: Sequence[RateCounter | None]) -> None:
        """What the counter documents of `windows`, as read, say of other counters."""
        for window, counter in zip(windows, counters, strict=True):
            others = counter.others_than(self.counter_id) if counter is not None else 0
            self._learnt(window.doc_id, others)

    def _learnt(self, path: str, others: int) -> None:
        with self._lock:
            tally = self._tallies.get(path)
            if tally is not None:
                # Counts only grow within a window: keep the newest view.
                tally.others = max(tally.others or 0, others)
                tally.learned_at = time.monotonic()

    def decide(
        self, windows: Sequence[RateWindow], own_totals: Sequence[int]
    ) -> list[RateDecision]:
        """One decision per window: other counters' hits as last learnt + this one's."""
        with self._lock:
            others = [
                (tally.others or 0) if (tally := self._tallies.get(w.doc_id)) else 0
                for w in windows
            ]
        decisions = []
        for window, own, other in zip(windows, own_totals, others, strict=True):
            count = other + own
            allowed = count <= window.limit
            decisions.append(
                RateDecision(allowed, count, 0 if allowed else window.retry_after_seconds)
            )
        return decisions

    def first_refusal(self, window: RateWindow) -> bool:
        """True once per window on this counter (to audit a flood once, not per hit)."""
        with self._lock:
            tally = self._tallies.get(window.doc_id)
            if tally is None or tally.refusal_seen:
                return False
            tally.refusal_seen = True
            return True

    def flush(self) -> None:
        """Write every unsent hit now (one batch) and learn from the totals the write
        reports; on failure they stay unsent. Bounded by FLUSH_BUDGET_SECONDS (there is
        no request budget in the counter's thread), so a store that never answers does
        not hold the thread, or `close`, for the library's minutes."""
        with self._flush_lock, request_budget(FLUSH_BUDGET_SECONDS):
            with self._lock:
                sending = [(t, t.unsent) for t in self._tallies.values() if t.unsent]
                for tally, _ in sending:
                    tally.unsent = 0
            if not sending:
                return
            try:
                after = self.repository.add_hits(
                    [(tally.window, n) for tally, n in sending], counter_id=self.counter_id
                )
            except Exception:
                with self._lock:
                    for tally, n in sending:
                        tally.unsent += n
                raise
            for (tally, _), (count, own_written) in zip(sending, after, strict=True):
                self._learnt(tally.window.doc_id, count - own_written)

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
