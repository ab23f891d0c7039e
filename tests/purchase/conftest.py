"""Fixtures of the purchase tests: settings, throw-away secrets, a container on the
Firestore emulator, and signed deliveries into the webhook service."""

from __future__ import annotations

import base64
import secrets
from collections.abc import Callable
from typing import Any

import pytest

from commerce.bootstrap import Container
from commerce.clock import FixedClock
from commerce.errors import CommerceError
from commerce.purchase.schemas import DeliveryResult
from commerce.secrets import EnvSecrets
from commerce.settings import Settings
from tests.purchase import stripe_events
from tests.support.emulators import TEST_PROJECT

WEBHOOK_SECRET = "whsec_purchase_tests_" + "a" * 24
STRIPE_KEY = "sk_test_purchase_tests"
STOREFRONT = "http://shop.test"


def _b64(n: int) -> str:
    return base64.urlsafe_b64encode(secrets.token_bytes(n)).rstrip(b"=").decode()


@pytest.fixture
def secret_values() -> dict[str, str]:
    return {
        "STRIPE_SECRET_KEY": STRIPE_KEY,
        "STRIPE_WEBHOOK_SECRET": WEBHOOK_SECRET,
        "LICENSE_KEY_PEPPER": _b64(32),
        "KEY_DERIVATION_SECRET": _b64(32),
        "PSEUDONYM_KEY": _b64(32),
    }


def make_settings(**overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "environment": "local",
        "gcp_project": TEST_PROJECT,
        "storefront_url": STOREFRONT,
        "storefront_origins": (STOREFRONT,),
        "public_base_url": "http://functions.test",
        "artifacts_bucket": "genx-artifacts-test",
        "stripe_price_id": "price_test_genx",
        "stripe_api_base": "",
        **overrides,
    }
    return Settings(_env_file=None, **values)  # type: ignore[call-arg]


@pytest.fixture
def settings() -> Settings:
    return make_settings()


@pytest.fixture
def clock() -> FixedClock:
    return FixedClock()


class RecordingQueue:
    """The e-mail queue port: records job ids (or fails, to test the fallback)."""

    def __init__(self) -> None:
        self.job_ids: list[str] = []
        self.fail = False

    def enqueue(self, job_id: str) -> None:
        if self.fail:
            raise ConnectionError("tasks queue unreachable")
        self.job_ids.append(job_id)


class StubSessions:
    """Stands in for Stripe's session lookup by PaymentIntent in storage-level tests
    (the function tests use the real library against the Stripe double)."""

    def __init__(self) -> None:
        self.by_intent: dict[str, list[dict[str, Any]]] = {}

    def add(self, session: dict[str, Any]) -> None:
        self.by_intent.setdefault(session["payment_intent"], []).append(session)

    def sessions_for_payment_intent(self, payment_intent_id: str) -> list[dict[str, Any]]:
        return list(self.by_intent.get(payment_intent_id, []))


@pytest.fixture
def email_queue() -> RecordingQueue:
    return RecordingQueue()


@pytest.fixture
def stub_sessions() -> StubSessions:
    return StubSessions()


@pytest.fixture
def container(
    firestore_db: Any,
    settings: Settings,
    secret_values: dict[str, str],
    clock: FixedClock,
    email_queue: RecordingQueue,
    stub_sessions: StubSessions,
) -> Container:
    built = Container(settings, clock=clock, secrets=EnvSecrets(secret_values))
    built.db = firestore_db  # type: ignore[misc]
    built.email_queue = email_queue  # type: ignore[misc,assignment]
    built.stripe_gateway = stub_sessions  # type: ignore[misc,assignment]
    return built


@pytest.fixture
def other_instance(
    container: Container,
    secret_values: dict[str, str],
    clock: FixedClock,
    email_queue: RecordingQueue,
    stub_sessions: StubSessions,
) -> Container:
    """A second function instance on the same database (its own in-process locks)."""
    built = Container(container.settings, clock=clock, secrets=EnvSecrets(secret_values))
    built.db = container.db  # type: ignore[misc]
    built.email_queue = email_queue  # type: ignore[misc,assignment]
    built.stripe_gateway = stub_sessions  # type: ignore[misc,assignment]
    return built


Deliver = Callable[..., DeliveryResult]


@pytest.fixture
def deliver(container: Container) -> Deliver:
    """Sign and deliver an event to the webhook service, like Stripe (one attempt)."""

    def send(evt: dict[str, Any], *, secret: str = WEBHOOK_SECRET) -> DeliveryResult:
        payload, header = stripe_events.signed(evt, secret)
        return container.webhook_service.handle(payload, header)

    return send


def deliver_until_accepted(container: Container, evt: dict[str, Any]) -> tuple[DeliveryResult, int]:
    """Deliver like Stripe: a 5xx answer means 'try again' (each attempt signed afresh).
    Returns (result, retries)."""
    for retries in range(100):
        payload, header = stripe_events.signed(evt, WEBHOOK_SECRET)
        try:
            return container.webhook_service.handle(payload, header), retries
        except CommerceError as error:
            if error.status < 500:
                raise
    raise AssertionError("the delivery never succeeded")


def count_documents(db: Any) -> dict[str, int]:
    return {collection.id: sum(1 for _ in collection.stream()) for collection in db.collections()}
