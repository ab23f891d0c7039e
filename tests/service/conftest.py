"""Service tests on the in-memory unit of work: no emulator, no Java, seconds.

`container` is the composition root with `MemoryStorage` installed in place of
Firestore; its `db` refuses every use, so a service that still reaches for the
Firestore client fails here instead of quietly needing the emulator. What only the
real store can show (atomicity under contention, encoding, the functions) stays in
the emulator tests; tests/integration/test_unit_of_work_contract.py holds the fake to
Firestore's behaviour.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from commerce.bootstrap import Container
from commerce.clock import FixedClock
from commerce.purchase.schemas import DeliveryResult
from commerce.repositories.memory import MemoryStorage
from commerce.secrets import EnvSecrets
from commerce.settings import Settings
from tests.purchase import stripe_events
from tests.purchase.conftest import (
    WEBHOOK_SECRET,
    RecordingQueue,
    StubSessions,
    make_settings,
    stripe_knows,
)
from tests.purchase.conftest import secret_values as secret_values
from tests.support import factories


class NoFirestore:
    """Stands in for the Firestore client: any use is a test failure."""

    def __getattr__(self, name: str) -> Any:
        raise AssertionError(f"a service reached for the Firestore client ({name})")


@pytest.fixture
def settings() -> Settings:
    return make_settings()


@pytest.fixture
def clock() -> FixedClock:
    return FixedClock(factories.NOW)


@pytest.fixture
def storage() -> MemoryStorage:
    return MemoryStorage()


@pytest.fixture
def email_queue() -> RecordingQueue:
    return RecordingQueue()


@pytest.fixture
def stub_sessions() -> StubSessions:
    return StubSessions()


@pytest.fixture
def container(
    settings: Settings,
    secret_values: dict[str, str],
    clock: FixedClock,
    storage: MemoryStorage,
    email_queue: RecordingQueue,
    stub_sessions: StubSessions,
) -> Container:
    built = Container(settings, clock=clock, secrets=EnvSecrets(secret_values))
    built.db = NoFirestore()  # type: ignore[assignment]
    built.storage = storage  # type: ignore[misc]
    built.email_queue = email_queue  # type: ignore[misc,assignment]
    built.stripe_gateway = stub_sessions  # type: ignore[misc,assignment]
    return built


Deliver = Callable[..., DeliveryResult]


@pytest.fixture
def deliver(container: Container, stub_sessions: StubSessions) -> Deliver:
    """Sign and deliver an event to the webhook service, like Stripe (one attempt).
    `known=False`: the session is one Stripe never created (retrieve answers 404)."""

    def send(
        evt: dict[str, Any], *, secret: str = WEBHOOK_SECRET, known: bool = True
    ) -> DeliveryResult:
        if known:
            stripe_knows(stub_sessions, evt)
        payload, header = stripe_events.signed(evt, secret)
        return container.webhook_service.handle(payload, header)

    return send
