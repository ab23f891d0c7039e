"""The release store over the storage port, on the in-memory unit of work (the same
calls run on the emulator in tests/delivery/test_releases.py)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from commerce.domain.releases import Release, ReleaseFile
from commerce.errors import AlreadyExists
from commerce.releases.repository import ReleaseStore
from commerce.repositories.memory import MemoryStorage

AT = datetime(2026, 1, 1, tzinfo=UTC)


def release(version: str, channel: str = "stable") -> Release:
    name = f"genx-{version}-linux-x86_64.tar.gz"
    return Release(
        id=version,
        version=version,
        channel=channel,
        files=(
            ReleaseFile(
                name=name,
                platform="linux-x86_64",
                size=10,
                sha256="0" * 64,
                object_name=f"releases/{version}/{name}",
            ),
        ),
        published_at=AT,
    )


def test_a_published_version_is_read_back_by_version_and_by_channel() -> None:
    store = ReleaseStore(MemoryStorage())
    store.create(release("1.0.0"))
    store.create(release("1.1.0-beta.1", channel="beta"))

    assert store.get("1.0.0") == release("1.0.0")
    assert [r.version for r in store.in_channel("beta")] == ["1.1.0-beta.1"]
    assert sorted(r.version for r in store.all()) == ["1.0.0", "1.1.0-beta.1"]
    assert store.get("2.0.0") is None


def test_a_version_is_created_once() -> None:
    store = ReleaseStore(MemoryStorage())
    store.create(release("1.0.0"))

    with pytest.raises(AlreadyExists):
        store.create(release("1.0.0", channel="beta"))

    assert store.get("1.0.0") == release("1.0.0")


def test_a_yank_changes_the_stored_release_in_place() -> None:
    store = ReleaseStore(MemoryStorage())
    store.create(release("1.0.0"))

    store.update("1.0.0", {"yanked": True, "yanked_at": AT})

    found = store.get("1.0.0")
    assert found is not None
    assert (found.yanked, found.yanked_at) == (True, AT)
