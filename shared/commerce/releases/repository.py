"""Firestore access of the delivery feature: releases. (The redemption reads and
writes go through the unit of work: `commerce.delivery.download`.)"""

from __future__ import annotations

from commerce.domain.releases import Release
from commerce.repositories.base import Repository


class ReleaseRepository(Repository[Release]):
    """`releases/{version}`; created once (versions are immutable), yanked in place."""

    collection = "releases"
    model = Release

    def in_channel(self, channel: str) -> list[Release]:
        return self.where("channel", "==", channel)
