"""Shared fixtures.

Emulators (session-scoped, started lazily on free ports, only by the tests that use
them, and stopped by PID at the end of the session, also after failures):

- `firestore_emulator` -> FIRESTORE_EMULATOR_HOST (`127.0.0.1:PORT`)
- `storage_emulator`   -> STORAGE_EMULATOR_HOST (`http://127.0.0.1:PORT`), bucket TEST_BUCKET
- `tasks_emulator`     -> TasksEmulator(host, queue_path); sets TASKS_EMULATOR_HOST

Per test:

- `firestore_db`   -> `firestore.Client(project="demo-genx-test")` on an emptied emulator
- `storage_client` -> `storage.Client` on the emulator, TEST_BUCKET emptied
- `tasks_client`   -> `CloudTasksClient` on the emulator's insecure gRPC channel

Tests using any of these are marked `emulators` automatically (`-m "not emulators"`
runs the fast unit tests only). If an emulator's variable is already set, that
emulator is used (`python -m emulators.stack test-services` prints the exports).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from tests.support import emulators as emu

if TYPE_CHECKING:
    from google.cloud import firestore, storage, tasks_v2

EMULATOR_FIXTURES = frozenset(
    {
        "firestore_emulator",
        "storage_emulator",
        "tasks_emulator",
        "firestore_db",
        "storage_client",
        "tasks_client",
    }
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if EMULATOR_FIXTURES.intersection(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.emulators)


@pytest.fixture(scope="session")
def emulator_log_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("emulator-logs")


@pytest.fixture(scope="session")
def firestore_emulator(emulator_log_dir: Path) -> Iterator[str]:
    with emu.firestore_emulator(emulator_log_dir) as host:
        yield host


@pytest.fixture(scope="session")
def storage_emulator(emulator_log_dir: Path) -> Iterator[str]:
    with emu.storage_emulator(emulator_log_dir) as host:
        yield host


@pytest.fixture(scope="session")
def tasks_emulator(emulator_log_dir: Path) -> Iterator[emu.TasksEmulator]:
    with emu.tasks_emulator(emulator_log_dir) as emulator:
        yield emulator


@pytest.fixture
def firestore_db(
    firestore_emulator: str, monkeypatch: pytest.MonkeyPatch
) -> Iterator[firestore.Client]:
    from google.cloud import firestore

    # The variable may have been pointed elsewhere by another session fixture.
    monkeypatch.setenv(emu.FIRESTORE_ENV, firestore_emulator)
    emu.reset_firestore(firestore_emulator, emu.TEST_PROJECT)
    client = firestore.Client(project=emu.TEST_PROJECT)
    yield client
    client.close()


@pytest.fixture
def storage_client(
    storage_emulator: str, monkeypatch: pytest.MonkeyPatch
) -> Iterator[storage.Client]:
    from google.cloud import storage

    monkeypatch.setenv(emu.STORAGE_ENV, storage_emulator)
    client = storage.Client(project=emu.TEST_PROJECT)
    bucket = client.bucket(emu.TEST_BUCKET)
    if not bucket.exists():  # an emulator we did not start
        client.create_bucket(emu.TEST_BUCKET)
    for blob in client.list_blobs(emu.TEST_BUCKET):
        bucket.delete_blob(blob.name)
    yield client
    client.close()


@pytest.fixture
def tasks_client(
    tasks_emulator: emu.TasksEmulator, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tasks_v2.CloudTasksClient]:
    monkeypatch.setenv(emu.TASKS_ENV, tasks_emulator.host)
    client = tasks_emulator.client()
    yield client
    client.transport.close()
