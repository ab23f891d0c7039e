"""Fixed-window rate-limit counters shared by every instance (Firestore-backed)."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from google.cloud import firestore

from commerce.repositories.base import Transaction, run_transaction


@dataclass(frozen=True)
class RateDecision:
    allowed: bool
    count: int
    retry_after_seconds: int


@dataclass(frozen=True)
class RateWindow:
    """The counter document of one bucket's current window, for callers that count
    inside their own transaction (read `ref`, then `tx.set(ref, counted(n))`)."""

    ref: firestore.DocumentReference
    limit: int
    retry_after_seconds: int
    expires_at: datetime

    def allows(self, count: int) -> bool:
        return count < self.limit

    def counted(self, count: int) -> dict[str, object]:
        return {"count": count + 1, "expires_at": self.expires_at}


class RateLimitRepository:
    """`rate_limits/{sha256(bucket)}-{window start}`; documents expire by TTL on `expires_at`.

    The bucket name is hashed so e-mail addresses or IPs used as buckets are not stored.
    """

    collection = "rate_limits"

    def __init__(self, db: firestore.Client) -> None:
        self.db = db

    def hit(self, bucket: str, *, limit: int, window_seconds: int, now: datetime) -> RateDecision:
        epoch = int(now.timestamp())
        window_start = epoch - epoch % window_seconds
        retry_after = window_start + window_seconds - epoch
        name = hashlib.sha256(bucket.encode()).hexdigest()[:32]
        ref = self.db.collection(self.collection).document(f"{name}-{window_start}")
        expires_at = datetime.fromtimestamp(window_start + window_seconds, UTC) + timedelta(
            seconds=window_seconds
        )

        def count_one(tx: Transaction) -> RateDecision:
            snapshot = ref.get(transaction=tx)
            count = int((snapshot.to_dict() or {}).get("count", 0)) if snapshot.exists else 0
            if count >= limit:
                return RateDecision(False, count, max(1, retry_after))
            tx.set(ref, {"count": count + 1, "expires_at": expires_at})
            return RateDecision(True, count + 1, 0)

        return run_transaction(self.db, count_one)

    def window(self, bucket: str, *, limit: int, window_seconds: int, now: datetime) -> RateWindow:
        """Same document as `hit` uses, for counting inside a caller's transaction."""
        epoch = int(now.timestamp())
        window_start = epoch - epoch % window_seconds
        name = hashlib.sha256(bucket.encode()).hexdigest()[:32]
        return RateWindow(
            ref=self.db.collection(self.collection).document(f"{name}-{window_start}"),
            limit=limit,
            retry_after_seconds=max(1, window_start + window_seconds - epoch),
            expires_at=datetime.fromtimestamp(window_start + window_seconds, UTC)
            + timedelta(seconds=window_seconds),
        )

    def increment(self, windows: Sequence[RateWindow]) -> list[int]:
        """Count one hit in each window with ONE atomic write (no read, no transaction)
        and return every counter's value after the hit (Firestore reports transform
        results). A caller over its limit is counted too, so it stays limited until the
        window ends. One round trip, so hot paths (license validation) can afford it."""
        if not windows:
            return []
        batch = self.db.batch()
        for window in windows:
            batch.set(
                window.ref,
                {"count": firestore.Increment(1), "expires_at": window.expires_at},
                merge=True,
            )
        results = batch.commit()
        return [int(result.transform_results[0].integer_value) for result in results]

    def add_hits(self, hits: Sequence[tuple[RateWindow, int]], *, counter_id: str) -> None:
        """Add `n` hits to each window with ONE batched write (no read, no transaction),
        also under `by_counter.<counter_id>`, so a reader of the document can tell the
        hits one counter already committed from everybody else's (see
        `commerce.ratelimit.DeferredCounter`). `count` stays the total of all hits."""
        if not hits:
            return
        batch = self.db.batch()
        for window, n in hits:
            batch.set(
                window.ref,
                {
                    "count": firestore.Increment(n),
                    "by_counter": {counter_id: firestore.Increment(n)},
                    "expires_at": window.expires_at,
                },
                merge=True,
            )
        batch.commit()
