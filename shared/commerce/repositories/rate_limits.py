"""Fixed-window rate-limit counters shared by every instance (Firestore-backed)."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from google.cloud import firestore

from commerce.repositories.base import Transaction, run_transaction
from commerce.repositories.transactions import read_documents


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
            data = read_documents(self.db, [ref], tx).get(ref._document_path)
            count = int((data or {}).get("count", 0))
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

    def add_hits(
        self, hits: Sequence[tuple[RateWindow, int]], *, counter_id: str
    ) -> list[tuple[int, int]]:
        """Add `n` hits to each window with ONE batched write (no read, no transaction),
        also under `by_counter.<counter_id>`, so a reader of the document can tell the
        hits one counter already committed from everybody else's (see
        `commerce.ratelimit.DeferredCounter`). `count` stays the total of all hits.

        Returns, per window, (`count`, `by_counter.<counter_id>`) right after this write,
        as Firestore reports the results of the increments: what every counter has
        written so far, without a read."""
        if not hits:
            return []
        own_field = f"by_counter.{counter_id}"
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
        writes = list(batch._write_pbs)  # the batch forgets them on commit
        results = batch.commit()
        after = []
        for write, result in zip(writes, results, strict=True):
            # Each increment's result, matched to its field by the write's own transforms.
            values = {
                transform.field_path: int(value.integer_value)
                for transform, value in zip(
                    write.update_transforms, result.transform_results, strict=True
                )
            }
            after.append((values["count"], values[own_field]))
        return after
