"""The local stack's own machinery: test fixtures, reset, and stopping by PID."""

from __future__ import annotations

import os
import urllib.request
from pathlib import Path

import pytest

from emulators import stack
from tests.support import emulators as emu

pytestmark = pytest.mark.emulators


def test_firestore_db_fixture_talks_to_the_emulator(firestore_db, firestore_emulator):
    firestore_db.collection("probes").document("one").set({"answer": 42})

    assert firestore_db.collection("probes").document("one").get().to_dict() == {"answer": 42}
    with urllib.request.urlopen(f"http://{firestore_emulator}/", timeout=5) as response:
        assert response.read().decode().strip() == "Ok"  # Google's emulator, not a fake


@pytest.fixture
def variable_pointed_elsewhere(monkeypatch: pytest.MonkeyPatch) -> None:
    """What a session fixture with its own stack (the end-to-end tests) does."""
    monkeypatch.setenv(emu.FIRESTORE_ENV, f"127.0.0.1:{stack.free_port()}")


def test_firestore_db_uses_the_session_emulator_even_after_the_variable_changed(
    variable_pointed_elsewhere, firestore_db, firestore_emulator
):
    assert os.environ[emu.FIRESTORE_ENV] == firestore_emulator
    firestore_db.collection("probes").document("one").set({"answer": 42})
    assert firestore_db.collection("probes").document("one").get().exists


def test_reset_removes_every_document(firestore_db, firestore_emulator):
    firestore_db.collection("probes").document("a").set({"n": 1})
    firestore_db.collection("probes").document("b").collection("inner").document("c").set({})

    emu.reset_firestore(firestore_emulator, emu.TEST_PROJECT)

    assert list(firestore_db.collection("probes").stream()) == []
    assert list(firestore_db.collection_group("inner").stream()) == []


def test_storage_client_fixture_stores_objects_in_the_test_bucket(storage_client):
    blob = storage_client.bucket(emu.TEST_BUCKET).blob("releases/probe.txt")
    blob.upload_from_string(b"hello")

    assert storage_client.bucket(emu.TEST_BUCKET).blob(
        "releases/probe.txt"
    ).download_as_bytes() == (b"hello")


def test_tasks_emulator_has_the_queue_the_stack_creates(tasks_client, tasks_emulator):
    queue = tasks_client.get_queue(name=tasks_emulator.queue_path)

    assert queue.name == tasks_emulator.queue_path


def test_stopping_services_leaves_none_of_their_processes_running(tmp_path: Path):
    firestore_port, storage_port = stack.free_port(), stack.free_port()
    specs = [
        stack.firestore_spec(firestore_port),
        stack.storage_spec(storage_port, "genx-artifacts-stop-test"),
    ]
    services = stack.start_and_wait(specs, tmp_path)
    pids = [pid for service in services for pid in stack.group_members(service.pid)]
    assert len(pids) >= len(services)

    for service in services:
        stack.stop_service(service)

    assert [pid for pid in pids if stack.is_alive(pid)] == []
    assert not stack.port_is_listening(firestore_port)
    assert not stack.port_is_listening(storage_port)
