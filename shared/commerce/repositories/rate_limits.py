"""Fixed-window rate-limit counters shared by every instance (Firestore-backed)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from google.cloud import firestore

from commerce.domain.rate_limits import (
    RATE_LIMITS_COLLECTION,
    RateDecision,
    RateWindow,
    window_for,
)
from commerce.repositories.base import Transaction, run_transaction
from commerce.repositories.firestore_wire import document_path, pending_writes, read_documents


class RateLimitRepository:
    """`rate_limits/{sha256(bucket)}-{window start}`; documents expire by TTL on `expires_at`.

    The bucket name is hashed so e-mail addresses or IPs used as buckets are not stored.
    """

    collection = RATE_LIMITS_COLLECTION

    def __init__(self, db: firestore.Client) -> None:
        self.db = db

    def hit(self, bucket: str, *, limit: int, window_seconds: int, now: datetime) -> RateDecision:
        window = window_for(bucket, limit=limit, window_seconds=window_seconds, now=now)
        ref = self.ref_of(window)
        retry_after = window.retry_after_seconds
        expires_at = window.expires_at

        def count_one(tx: Transaction) -> RateDecision:
            data = read_documents(self.db, [ref], tx).get(document_path(ref))
            count = int((data or {}).get("count", 0))
            if count >= limit:
                return RateDecision(False, count, max(1, retry_after))
            tx.set(ref, {"count": count + 1, "expires_at": expires_at})
            return RateDecision(True, count + 1, 0)

        return run_transaction(self.db, count_one)

    def window(self, bucket: str, *, limit: int, window_seconds: int, now: datetime) -> RateWindow:
        """Same document as `hit` uses, for counting inside a caller's transaction."""
        return window_for(bucket, limit=limit, window_seconds=window_seconds, now=now)

    def ref_of(self, window: RateWindow) -> firestore.DocumentReference:
        return self.db.collection(self.collection).document(window.doc_id)

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
                self.ref_of(window),
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
                self.ref_of(window),
                {
                    "count": firestore.Increment(n),
                    "by_counter": {counter_id: firestore.Increment(n)},
                    "expires_at": window.expires_at,
                },
                merge=True,
            )
        writes = pending_writes(batch)  # the batch forgets them on commit
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


__all__ = ["RateDecision", "RateLimitRepository", "RateWindow"]
