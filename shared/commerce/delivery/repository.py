"""Firestore access of the delivery feature: releases and the redemption transaction."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from google.cloud import firestore

from commerce.delivery.releases import Release
from commerce.domain.models import License, Order
from commerce.domain.tokens import DownloadGrant
from commerce.repositories import (
    DownloadTokenRepository,
    LicenseRepository,
    OrderRepository,
)
from commerce.repositories.base import Repository, Transaction
from commerce.repositories.firestore_wire import (
    document_path,
    read_documents,
    run_transaction,
)
from commerce.repositories.rate_limits import RateWindow

R = TypeVar("R")


class ReleaseRepository(Repository[Release]):
    """`releases/{version}`; created once (versions are immutable), yanked in place."""

    collection = "releases"
    model = Release

    def in_channel(self, channel: str) -> list[Release]:
        return self.where("channel", "==", channel)


@dataclass(frozen=True)
class RedemptionReads:
    grant: DownloadGrant | None
    counts: tuple[int, ...]  # one per rate window, in the order given


class RedemptionStore:
    """Reads and writes of one download redemption, batched for one transaction.

    The grant and the rate-limit counters are fetched in one batch (their ids are known
    from the token and the client), then order and license in a second one: two reads
    per redemption however many checks run. The first read also begins the transaction
    (`commerce.repositories.firestore_wire`), so a redemption costs three round trips
    (read, read, commit) instead of four.
    """

    def __init__(
        self,
        db: firestore.Client,
        grants: DownloadTokenRepository,
        orders: OrderRepository,
        licenses: LicenseRepository,
    ) -> None:
        self.db = db
        self.grants = grants
        self.orders = orders
        self.licenses = licenses

    def run(self, work: Callable[[Transaction], R]) -> R:
        """Run `work(tx)` in one transaction begun by its first read."""
        return run_transaction(self.db, work)

    def read_grant_and_counters(
        self, tx: Transaction, token_hash: str, windows: list[RateWindow]
    ) -> RedemptionReads:
        grant_ref = self.grants.ref(token_hash)
        found = read_documents(
            self.db, [grant_ref, *(self._counter_ref(window) for window in windows)], tx
        )
        grant_data = found.get(document_path(grant_ref))
        grant = None if grant_data is None else self.grants.from_document(token_hash, grant_data)
        counts = []
        for window in windows:
            data = found.get(document_path(self._counter_ref(window)))
            counts.append(int((data or {}).get("count") or 0))
        return RedemptionReads(grant, tuple(counts))

    def read_order_and_license(
        self, tx: Transaction, order_id: str, license_id: str
    ) -> tuple[Order | None, License | None]:
        order_ref, license_ref = self.orders.ref(order_id), self.licenses.ref(license_id)
        found = read_documents(self.db, [order_ref, license_ref], tx)
        order_data = found.get(document_path(order_ref))
        license_data = found.get(document_path(license_ref))
        return (
            None if order_data is None else self.orders.from_document(order_id, order_data),
            None if license_data is None else self.licenses.from_document(license_id, license_data),
        )

    def count_hit(self, tx: Transaction, window: RateWindow, count: int) -> None:
        counted = window.counted(count)
        tx.set(
            self._counter_ref(window), {"count": counted.count, "expires_at": counted.expires_at}
        )

    def _counter_ref(self, window: RateWindow) -> firestore.DocumentReference:
        return self.db.collection("rate_limits").document(window.doc_id)

    def count_redemption(self, tx: Transaction, grant: DownloadGrant) -> None:
        tx.update(self.grants.ref(grant.token_hash), {"redemptions": grant.redemptions + 1})
