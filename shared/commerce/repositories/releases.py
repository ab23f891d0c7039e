"""The `releases` collection (`releases/{version}`), reached through the unit of work
(`uow.releases`); the release store of `commerce.releases.repository` reads and writes
it that way."""

from __future__ import annotations

from commerce.domain.releases import Release
from commerce.repositories.base import Repository


class ReleaseRepository(Repository[Release]):
    """`releases/{version}`; created once (versions are immutable), yanked in place."""

    collection = "releases"
    model = Release
