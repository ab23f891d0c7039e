"""Fixtures of the delivery tests: a container on the Firestore and storage emulators
with a fixed clock, a published sample release, fulfilled purchases, an SMTP sink."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session

from commerce.adapters.artifacts import ArtifactStore
from commerce.bootstrap import Container
from commerce.clock import FixedClock
from commerce.domain.orders import OrderState
from commerce.domain.releases import Release
from commerce.secrets import EnvSecrets
from commerce.settings import Settings
from emulators.local_secrets import new_service_account_key
from emulators.stack import free_port
from tests.support import factories
from tests.support.emulators import TEST_BUCKET, TEST_PROJECT

PUBLIC_BASE = "http://functions.test"
SAMPLE_VERSION = "1.0.0"
SAMPLE_PLATFORMS = ("linux-x86_64.tar.gz", "windows-x86_64.zip", "macos-universal.zip")


def make_settings(**overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "environment": "local",
        "gcp_project": TEST_PROJECT,
        "storefront_url": "http://shop.test",
        "public_base_url": PUBLIC_BASE,
        "artifacts_bucket": TEST_BUCKET,
        "download_rate_limit_per_token": 10,
        "download_rate_limit_per_network": 30,
        "email_worker_url": "http://127.0.0.1:9/send_email",
        **overrides,
    }
    return Settings(_env_file=None, **values)  # type: ignore[call-arg]


@pytest.fixture(scope="session")
def url_signer_file(tmp_path_factory: pytest.TempPathFactory) -> str:
    path = tmp_path_factory.mktemp("signer") / "url-signer.json"
    path.write_text(json.dumps(new_service_account_key("demo-genx-test")))
    return str(path)


@pytest.fixture
def settings(url_signer_file: str) -> Settings:
    return make_settings(url_signing_key_file=url_signer_file)


@pytest.fixture
def clock() -> FixedClock:
    return FixedClock(factories.NOW)


@pytest.fixture
def container(
    settings: Settings, clock: FixedClock, firestore_db: Any, storage_client: Any
) -> Container:
    built = Container(settings, clock=clock, secrets=EnvSecrets(dict(factories.TEST_SECRETS)))
    built.__dict__["db"] = firestore_db
    built.__dict__["artifacts"] = ArtifactStore(settings, storage_client)
    built.download_service.release_cache_seconds = 0  # releases change within a test
    return built


def artifact_files(directory: Path, version: str = SAMPLE_VERSION) -> list[Path]:
    """Small, distinct, deterministic artifacts named by the conventions."""
    directory.mkdir(parents=True, exist_ok=True)
    paths = []
    for n, suffix in enumerate(SAMPLE_PLATFORMS):
        path = directory / f"genx-{version}-{suffix}"
        path.write_bytes(f"GENX {version} {suffix}\n".encode() * (200 + n) + bytes(range(256)))
        paths.append(path)
    return paths


@pytest.fixture
def release(container: Container, tmp_path: Path) -> Release:
    return container.publisher.publish(artifact_files(tmp_path / "dist"), SAMPLE_VERSION)


@dataclass
class Bought:
    purchase: factories.Purchase

    @property
    def token(self) -> str:
        return self.purchase.tokens[0]

    @property
    def order_id(self) -> str:
        return self.purchase.order.id


def store_purchase(container: Container, purchase: factories.Purchase) -> None:
    container.customers.put(purchase.customer)
    container.orders.put(purchase.order)
    if purchase.license is not None:
        container.licenses.put(purchase.license)
    for grant in purchase.grants:
        container.download_tokens.put(grant)
    for job in purchase.email_jobs:
        container.email_jobs.put(job)


@pytest.fixture
def bought(container: Container) -> Bought:
    """A fulfilled order with an active license and one fresh download grant."""
    purchase = factories.purchase(container.keys, OrderState.FULFILLED)
    store_purchase(container, purchase)
    return Bought(purchase)


# -- a real SMTP server in-process --------------------------------------------------------


@dataclass
class SmtpSink:
    """Accepts mail like a provider; `refuse_next` makes the next N messages fail with
    `refuse_code` (451: try later; 550: rejected)."""

    port: int = 0
    messages: list[Envelope] = field(default_factory=list)
    refuse_next: int = 0
    refuse_code: str = "451 4.3.0 Try again later"
    refused: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)
    controller: Controller | None = None

    def start(self) -> None:
        """Listen on `port` (again: an outage ends)."""
        self.controller = Controller(self, hostname="127.0.0.1", port=self.port)
        self.controller.start()

    def stop(self) -> None:
        """Stop listening: connections are refused, as when the provider is down."""
        if self.controller is not None:
            self.controller.stop()
            self.controller = None

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:  # noqa: N802
        with self.lock:
            if self.refuse_next > 0:
                self.refuse_next -= 1
                self.refused += 1
                return self.refuse_code
            self.messages.append(envelope)
        return "250 Message accepted"

    def texts(self) -> list[str]:
        return [bytes(m.original_content or b"").decode() for m in self.messages]


@pytest.fixture
def smtp_sink() -> Iterator[SmtpSink]:
    sink = SmtpSink(port=free_port())
    sink.start()
    try:
        yield sink
    finally:
        sink.stop()
