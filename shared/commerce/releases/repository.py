"""The releases a shop has published (`releases/{version}`), through the storage port:
created once (versions are immutable), yanked in place, read by channel. Delivery and
licensing read them through their `ReleaseSource` protocol (`in_channel`)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Mapping

    from commerce.domain.releases import Release
    from commerce.unit_of_work import Storage


class ReleaseStore:
    """Each call one unit without a transaction: a read of committed state, or one
    atomic write (a `create` of an existing version fails with AlreadyExists)."""

    def __init__(self, storage: Storage) -> None:
        self.storage = storage

    def get(self, version: str) -> Release | None:
        with self.storage.batch() as uow:
            return uow.releases.get(version)

    def all(self) -> list[Release]:
        with self.storage.batch() as uow:
            return uow.releases.query()

    def in_channel(self, channel: str) -> list[Release]:
        with self.storage.batch() as uow:
            return uow.releases.where("channel", "==", channel)

    def create(self, release: Release) -> None:
        with self.storage.batch() as uow:
            uow.releases.create(release)
            uow.commit()

    def update(self, version: str, fields: Mapping[str, Any]) -> None:
        with self.storage.batch() as uow:
            uow.releases.update(version, fields)
            uow.commit()
