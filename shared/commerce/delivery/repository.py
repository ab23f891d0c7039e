"""Firestore access of the delivery feature: releases and the redemption transaction."""

from __future__ import annotations

from dataclasses import dataclass

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
from commerce.repositories.rate_limits import RateWindow


class ReleaseRepository(Repository[Release]):
    """`releases/{version}`; created once (versions are immutable), yanked in place."""

    collection = "releases"
    model = Release

    def all(self) -> list[Release]:
        return [
            self.from_document(snap.id, snap.to_dict() or {})
            for snap in self.db.collection(self.collection).stream()
        ]

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
    per redemption however many checks run.
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

    def read_grant_and_counters(
        self, tx: Transaction, token_hash: str, windows: list[RateWindow]
    ) -> RedemptionReads:
        grant_ref = self.grants.ref(token_hash)
        refs = [grant_ref, *(window.ref for window in windows)]
        snaps = {snap.reference.path: snap for snap in self.db.get_all(refs, transaction=tx)}
        grant_snap = snaps.get(grant_ref.path)
        grant = None
        if grant_snap is not None and grant_snap.exists:
            grant = self.grants.from_document(grant_snap.id, grant_snap.to_dict() or {})
        counts = []
        for window in windows:
            snap = snaps.get(window.ref.path)
            # `get("count")` copies one field; `to_dict()` would deep-copy the document.
            count = snap.get("count") if snap is not None and snap.exists else 0
            counts.append(int(count or 0))
        return RedemptionReads(grant, tuple(counts))

    def read_order_and_license(
        self, tx: Transaction, order_id: str, license_id: str
    ) -> tuple[Order | None, License | None]:
        order_ref, license_ref = self.orders.ref(order_id), self.licenses.ref(license_id)
        order: Order | None = None
        license_: License | None = None
        for snap in self.db.get_all([order_ref, license_ref], transaction=tx):
            if not snap.exists:
                continue
            if snap.reference.path == order_ref.path:
                order = self.orders.from_document(snap.id, snap.to_dict() or {})
            else:
                license_ = self.licenses.from_document(snap.id, snap.to_dict() or {})
        return order, license_

    def count_hit(self, tx: Transaction, window: RateWindow, count: int) -> None:
        tx.set(window.ref, window.counted(count))

    def count_redemption(self, tx: Transaction, grant: DownloadGrant) -> None:
        tx.update(self.grants.ref(grant.token_hash), {"redemptions": grant.redemptions + 1})
