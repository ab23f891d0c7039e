"""Fixtures of the license API tests: a container on Google's Firestore emulator with a
fixed clock and fixed test secrets, purchases stored through the repositories, and the
`license_api` function driven in-process through functions-framework."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from commerce.bootstrap import Container, use_container
from commerce.clock import FixedClock
from commerce.domain.orders import OrderState
from commerce.licensing.schemas import (
    ActivateRequest,
    Answer,
    CertificateRequest,
    DeactivateRequest,
    UpdatesRequest,
    ValidateRequest,
)
from commerce.licensing.service import LicenseService
from commerce.licensing.verifier import trusted_keys
from commerce.secrets import EnvSecrets
from commerce.settings import Settings
from tests.support import factories
from tests.support.emulators import TEST_BUCKET, TEST_PROJECT

ROOT = Path(__file__).resolve().parents[2]
MAIN = str(ROOT / "functions" / "main.py")
PUBLIC_BASE = "http://functions.test"
NETWORK = "203.0.113.7/32"


def make_settings(**overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "environment": "local",
        "gcp_project": TEST_PROJECT,
        "storefront_url": "http://shop.test",
        "public_base_url": PUBLIC_BASE,
        "artifacts_bucket": TEST_BUCKET,
        "license_rate_limit_per_key": 1000,
        "license_rate_limit_per_network": 1000,
        "license_activation_rate_limit_per_hour": 1000,
        **overrides,
    }
    return Settings(_env_file=None, **values)  # type: ignore[call-arg]


# Containers built during a test; the `container` fixture closes their license services
# (which writes their rate-limit hits and stops the counter thread) before the test's
# Firestore client is closed.
_BUILT: list[Container] = []


def build_container(settings: Settings, clock: FixedClock, db: Any, **secrets: str) -> Container:
    """An instance over the test secrets (some replaced by `secrets`) and `db`."""
    values = {**factories.TEST_SECRETS, **secrets}
    built = Container(settings, clock=clock, secrets=EnvSecrets(values))
    built.__dict__["db"] = db
    _BUILT.append(built)
    return built


@pytest.fixture
def clock() -> FixedClock:
    return FixedClock(factories.NOW)


@pytest.fixture
def settings() -> Settings:
    return make_settings()


@pytest.fixture
def container(settings: Settings, clock: FixedClock, firestore_db: Any) -> Iterator[Container]:
    built = build_container(settings, clock, firestore_db)
    yield built
    while _BUILT:
        done = _BUILT.pop()
        if "license_service" in done.__dict__:
            done.license_service.close()


@pytest.fixture
def public_keys(container: Container) -> dict[str, Any]:
    """What a plugin ships: the public key only."""
    return trusted_keys(container.signer.public_key_b64())


def store_purchase(container: Container, purchase: factories.Purchase) -> None:
    container.customers.put(purchase.customer)
    container.orders.put(purchase.order)
    if purchase.license is not None:
        container.licenses.put(purchase.license)
    for grant in purchase.grants:
        container.download_tokens.put(grant)


@dataclass
class Bought:
    purchase: factories.Purchase

    @property
    def key(self) -> str:
        assert self.purchase.key is not None
        return self.purchase.key

    @property
    def license_id(self) -> str:
        assert self.purchase.license is not None
        return self.purchase.license.id

    @property
    def order_id(self) -> str:
        return self.purchase.order.id


def buy(
    container: Container,
    state: OrderState = OrderState.FULFILLED,
    *,
    n: int = 1,
    **license_overrides: Any,
) -> Bought:
    purchase = factories.purchase(
        container.keys,
        state,
        email=f"buyer{n}@example.com",
        order_id=factories.session_id(n),
    )
    if license_overrides and purchase.license is not None:
        purchase = factories.Purchase(
            purchase.customer,
            purchase.order,
            purchase.license.model_copy(update=license_overrides),
            purchase.key,
            purchase.grants,
            purchase.tokens,
            purchase.email_jobs,
        )
    store_purchase(container, purchase)
    return Bought(purchase)


def refund(container: Container, bought: Bought, event_id: str = "evt_refund") -> None:
    """A full refund, applied by fulfillment as the Stripe webhook would apply it."""
    container.fulfillment.record_refund(
        bought.order_id,
        payment_intent_id=None,
        amount_refunded=bought.purchase.order.amount_total or 1,
        fully_refunded=True,
        ledger_id=event_id,
        event_type="charge.refunded",
    )


@pytest.fixture
def bought(container: Container) -> Bought:
    """A fulfilled order with an active license (limit 3)."""
    return buy(container)


class Plugin:
    """Calls the service as the plugin would (one network, one nonce-less session)."""

    def __init__(self, service: LicenseService, network: str = NETWORK) -> None:
        self.service = service
        self.network = network

    def validate(self, key: str, fingerprint: str | None = None) -> Answer:
        return self.service.validate(
            ValidateRequest(key=key, fingerprint=fingerprint, nonce=nonce()), self.network
        )

    def activate(self, key: str, fingerprint: str, label: str | None = None) -> Answer:
        return self.service.activate(
            ActivateRequest(key=key, fingerprint=fingerprint, label=label, nonce=nonce()),
            self.network,
        )

    def deactivate(
        self, key: str, *, fingerprint: str | None = None, activation_id: str | None = None
    ) -> Answer:
        return self.service.deactivate(
            DeactivateRequest(
                key=key, fingerprint=fingerprint, activation_id=activation_id, nonce=nonce()
            ),
            self.network,
        )

    def certificate(self, key: str, fingerprint: str) -> Answer:
        return self.service.certificate(
            CertificateRequest(key=key, fingerprint=fingerprint, nonce=nonce()), self.network
        )

    def updates(self, **fields: Any) -> Answer:
        fields.setdefault("current_version", "1.0.0")
        fields.setdefault("platform", "linux-x86_64")
        fields.setdefault("nonce", nonce())
        return self.service.updates(UpdatesRequest(**fields), self.network)


@pytest.fixture
def plugin(container: Container) -> Plugin:
    return Plugin(container.license_service)


@pytest.fixture
def installed(container: Container) -> Iterator[Container]:
    use_container(container)
    yield container
    use_container(None)


@pytest.fixture
def license_client(installed: Container) -> Any:
    from functions_framework import create_app

    return create_app("license_api", MAIN).test_client()


def nonce() -> str:
    """A fresh nonce as a plugin makes one (16 random bytes, base64url)."""
    return secrets.token_urlsafe(16)


def machine(n: int) -> str:
    """A plausible machine fingerprint (the plugin sends a hash of hardware ids)."""
    return f"machine-{n:02d}-" + "ab" * 16
