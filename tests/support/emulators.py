"""Emulators for tests: started on free ports through the same code as `make dev`.

Each helper is a context manager that yields the value of the emulator's environment
variable. If that variable is already set (a developer runs
`python -m emulators.stack test-services` in another shell, or CI provides them), the
running emulator is used and nothing is started. Otherwise the emulator is started on
a free 127.0.0.1 port, the variable is set for the test session, and at the end the
emulator's process group is stopped by its PID (also when tests fail).
"""

from __future__ import annotations

import contextlib
import os
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from emulators import stack

if TYPE_CHECKING:
    from google.cloud import tasks_v2

TEST_PROJECT = "demo-genx-test"
TEST_BUCKET = "genx-artifacts-test"
TEST_TASKS_LOCATION = stack.TASKS_LOCATION
TEST_TASKS_QUEUE = stack.TASKS_QUEUE

FIRESTORE_ENV = "FIRESTORE_EMULATOR_HOST"  # host:port
STORAGE_ENV = "STORAGE_EMULATOR_HOST"  # http://host:port
TASKS_ENV = "TASKS_EMULATOR_HOST"  # host:port

# What the environment said before any test ran. Deciding "use the running emulator"
# from this snapshot, not from os.environ later, keeps a fixture that points the
# variables elsewhere during the session (e.g. the end-to-end stack) from redirecting
# these emulators.
PRESET = {name: os.environ.get(name, "") for name in (FIRESTORE_ENV, STORAGE_ENV, TASKS_ENV)}


@contextlib.contextmanager
def _emulator(
    env_name: str,
    make_spec: Callable[[int], stack.ServiceSpec],
    value_for: Callable[[int], str],
    log_dir: Path,
) -> Iterator[str]:
    if PRESET[env_name]:
        yield PRESET[env_name]
        return
    port = stack.free_port()
    (service,) = stack.start_and_wait([make_spec(port)], log_dir)
    value = value_for(port)
    previous = os.environ.get(env_name)
    os.environ[env_name] = value
    try:
        yield value
    finally:
        if previous is None:
            os.environ.pop(env_name, None)
        else:
            os.environ[env_name] = previous
        stack.stop_service(service)


def firestore_emulator(log_dir: Path) -> contextlib.AbstractContextManager[str]:
    """Google's Firestore emulator; yields FIRESTORE_EMULATOR_HOST (`127.0.0.1:PORT`)."""
    return _emulator(FIRESTORE_ENV, stack.firestore_spec, lambda p: f"{stack.HOST}:{p}", log_dir)


def storage_emulator(log_dir: Path) -> contextlib.AbstractContextManager[str]:
    """gcp-storage-emulator with TEST_BUCKET; yields STORAGE_EMULATOR_HOST (`http://...`)."""
    return _emulator(
        STORAGE_ENV,
        lambda port: stack.storage_spec(port, TEST_BUCKET),
        lambda p: f"http://{stack.HOST}:{p}",
        log_dir,
    )


@dataclass(frozen=True)
class TasksEmulator:
    host: str  # 127.0.0.1:PORT (gRPC, plaintext)
    queue_path: str  # the queue created at start-up

    def client(self) -> tasks_v2.CloudTasksClient:
        """A CloudTasksClient wired to the emulator (the only way that works: an
        insecure gRPC channel; `client_options` fails with an SSL error)."""
        import grpc
        from google.cloud import tasks_v2
        from google.cloud.tasks_v2.services.cloud_tasks.transports import (
            CloudTasksGrpcTransport,
        )

        channel = grpc.insecure_channel(self.host)
        return tasks_v2.CloudTasksClient(transport=CloudTasksGrpcTransport(channel=channel))


@contextlib.contextmanager
def tasks_emulator(log_dir: Path) -> Iterator[TasksEmulator]:
    """gcloud-tasks-emulator with one queue; yields where it is. Sets TASKS_EMULATOR_HOST."""
    queue_path = stack.tasks_queue_path(TEST_PROJECT, TEST_TASKS_LOCATION, TEST_TASKS_QUEUE)
    with _emulator(
        TASKS_ENV,
        lambda port: stack.tasks_spec(
            port, TEST_PROJECT, location=TEST_TASKS_LOCATION, queue=TEST_TASKS_QUEUE
        ),
        lambda p: f"{stack.HOST}:{p}",
        log_dir,
    ) as host:
        yield TasksEmulator(host, queue_path)


def reset_firestore(host: str, project: str = TEST_PROJECT) -> None:
    """Delete every document of `project` in the emulator (its own reset endpoint)."""
    url = f"http://{host}/emulator/v1/projects/{project}/databases/(default)/documents"
    request = urllib.request.Request(url, method="DELETE")
    with urllib.request.urlopen(request, timeout=10) as response:
        if response.status != 200:  # pragma: no cover - the emulator answers 200
            raise RuntimeError(f"Firestore emulator reset failed: HTTP {response.status}")
