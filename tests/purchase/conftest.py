"""Fixtures of the purchase tests: settings, throw-away secrets, a container on the
Firestore emulator, and signed deliveries into the webhook service."""

from __future__ import annotations

import base64
import copy
import secrets
from collections.abc import Callable
from typing import Any

import pytest

from commerce.bootstrap import Container
from commerce.clock import FixedClock
from commerce.errors import CommerceError
from commerce.purchase.schemas import DeliveryResult, PaymentProviderError
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
    """Stands in for Stripe's lookups in storage-level tests (the function tests use the
    real library against the Stripe double): sessions by PaymentIntent, and sessions
    retrieved with their line items, from what the test says Stripe created (`known`).
    `unreachable` makes every lookup fail as an unreachable Stripe would."""

    livemode = False

    def __init__(self) -> None:
        self.by_intent: dict[str, list[dict[str, Any]]] = {}
        self.known: dict[str, dict[str, Any]] = {}
        self.pinned: set[str] = set()  # sessions the test set up explicitly
        self.unreachable = False
        self.retrieved: list[str] = []
        self.charges: dict[str, dict[str, Any]] = {}
        self.intent_lookups: list[str] = []
        # What Stripe's lists answer to reconciliation (newest first, as Stripe lists).
        self.sessions: list[dict[str, Any]] = []
        self.refunds: list[dict[str, Any]] = []
        self.disputes: list[dict[str, Any]] = []

    def add(self, session: dict[str, Any]) -> None:
        self.by_intent.setdefault(session["payment_intent"], []).append(session)

    def created(self, session: dict[str, Any], *items: dict[str, Any], pin: bool = True) -> None:
        """Stripe created `session` (with these line items; default: the configured price).
        Pinned: later deliveries of the session do not change what Stripe answers."""
        self.known[session["id"]] = stripe_events.as_retrieved(session, *items)
        if pin:
            self.pinned.add(session["id"])

    def sessions_for_payment_intent(self, payment_intent_id: str) -> list[dict[str, Any]]:
        self._reach()
        self.intent_lookups.append(payment_intent_id)
        return list(self.by_intent.get(payment_intent_id, []))

    def session_with_line_items(self, session_id: str) -> dict[str, Any] | None:
        self._reach()
        self.retrieved.append(session_id)
        found = self.known.get(session_id)
        return copy.deepcopy(found) if found is not None else None

    def sessions_created_since(self, since: Any) -> list[dict[str, Any]]:
        self._reach()
        return copy.deepcopy(self.sessions)

    def refunds_created_since(self, since: Any) -> list[dict[str, Any]]:
        self._reach()
        return copy.deepcopy(self.refunds)

    def disputes_created_since(self, since: Any) -> list[dict[str, Any]]:
        self._reach()
        return copy.deepcopy(self.disputes)

    def payment_intent_with_charge(self, payment_intent_id: str) -> dict[str, Any]:
        """The PaymentIntent with its latest charge (the last one the test stored for it)."""
        self._reach()
        charges = [c for c in self.charges.values() if c["payment_intent"] == payment_intent_id]
        latest = copy.deepcopy(charges[-1]) if charges else None
        return {"id": payment_intent_id, "object": "payment_intent", "latest_charge": latest}

    def retrieve_charge(self, charge_id: str) -> dict[str, Any]:
        self._reach()
        return dict(self.charges[charge_id])

    def _reach(self) -> None:
        if self.unreachable:
            raise PaymentProviderError("The payment provider could not be reached; please retry.")


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


def stripe_knows(stub: StubSessions, evt: dict[str, Any]) -> None:
    """Stripe holds the session of a checkout event as sent, unless the test said
    otherwise (`stub.created(...)` first)."""
    obj = evt["data"]["object"]
    if obj.get("object") == "checkout.session" and obj["id"] not in stub.pinned:
        stub.created(obj, pin=False)


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


def deliver_until_accepted(container: Container, evt: dict[str, Any]) -> tuple[DeliveryResult, int]:
    """Deliver like Stripe: a 5xx answer means 'try again' (each attempt signed afresh).
    Returns (result, retries)."""
    stub = container.stripe_gateway
    if isinstance(stub, StubSessions):
        stripe_knows(stub, evt)
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
