"""Fixtures of the storefront tests: settings, a container on the Firestore emulator
with fixed test secrets, and a recording e-mail queue."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from commerce.bootstrap import Container, use_container
from commerce.clock import FixedClock
from commerce.email_queue import ResendTask
from commerce.secrets import EnvSecrets
from commerce.settings import Settings
from tests.support.emulators import TEST_PROJECT
from tests.support.factories import NOW, TEST_SECRETS

STOREFRONT = "http://shop.test"


def make_settings(**overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "environment": "local",
        "gcp_project": TEST_PROJECT,
        "storefront_url": STOREFRONT,
        "storefront_origins": (STOREFRONT,),
        "public_base_url": "http://functions.test",
        "artifacts_bucket": "genx-artifacts-test",
        **overrides,
    }
    return Settings(_env_file=None, **values)  # type: ignore[call-arg]


class RecordingQueue:
    """The e-mail and re-send queue ports: records job ids and re-send tasks, or fails
    like an unreachable queue."""

    def __init__(self) -> None:
        self.job_ids: list[str] = []
        self.resend_tasks: list[ResendTask] = []
        self.fail = False

    def enqueue(self, job_id: str) -> None:
        if self.fail:
            raise ConnectionError("tasks queue unreachable")
        self.job_ids.append(job_id)

    def enqueue_resend(self, task: ResendTask) -> None:
        if self.fail:
            raise ConnectionError("tasks queue unreachable")
        self.resend_tasks.append(task)


@pytest.fixture
def settings() -> Settings:
    return make_settings()


@pytest.fixture
def clock() -> FixedClock:
    return FixedClock(NOW)


@pytest.fixture
def email_queue() -> RecordingQueue:
    return RecordingQueue()


@pytest.fixture
def container(
    firestore_db: Any, settings: Settings, clock: FixedClock, email_queue: RecordingQueue
) -> Iterator[Container]:
    built = Container(settings, clock=clock, secrets=EnvSecrets(dict(TEST_SECRETS)))
    built.db = firestore_db  # type: ignore[misc]
    built.email_queue = email_queue  # type: ignore[misc,assignment]
    use_container(built)
    yield built
    use_container(None)
