"""The local stack's own machinery: test fixtures, reset, and stopping by PID."""

from __future__ import annotations

import os
import urllib.error
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


def test_a_local_function_started_by_the_stack_answers(tmp_path: Path):
    port = stack.free_port()
    spec = stack.function_spec("order_status", port, dict(os.environ))
    (service,) = stack.start_and_wait([spec], tmp_path)
    try:
        try:
            with urllib.request.urlopen(f"{spec.url}/?session_id=x", timeout=30) as answer:
                status = answer.status
        except urllib.error.HTTPError as error:  # unconfigured here: 503 is still its answer
            status = error.code
    finally:
        stack.stop_service(service)

    assert status in (200, 400, 404, 503)  # the function's own answer (not a refused connection)


def test_local_functions_open_no_shared_gunicorn_control_socket(tmp_path: Path):
    """gunicorn 25.1+ would open ~/.gunicorn/gunicorn.ctl, one path for every function
    of every stack on the machine. Asked the way gunicorn's arbiter asks (it starts the
    socket in a thread after the workers, so watching for the file would be a race)."""
    from gunicorn.arbiter import Arbiter

    from emulators.function_server import gunicorn_application

    application = gunicorn_application(
        "order_status", str(stack.REPO_ROOT / "functions" / "main.py"), stack.HOST, 0
    )
    arbiter = Arbiter(application)
    arbiter._start_control_server()
    started = arbiter._control_server
    arbiter._stop_control_server()

    assert application.cfg.control_socket_disable is True
    assert started is None
