"""Fixtures of the fuzz suite: one container with every dependency a function can reach
(Google's Firestore and the storage emulator, the project's Stripe double through the
official library, an in-process SMTP sink, a recording e-mail queue), a published
release and one fulfilled purchase whose real key, token and ids the generators mix
into their input, so the fuzzer gets past the first checks.

Hypothesis profiles: `fuzz` (the default: 40 examples per function, derandomized, no
example database, so `make test` is quick and stable) and `fuzz-long` (`make fuzz`:
GENX_FUZZ_PROFILE=fuzz-long, 1,000 examples per function, random).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from hypothesis import HealthCheck, settings

from commerce.adapters.artifacts import ArtifactStore
from commerce.bootstrap import Container, use_container
from commerce.clock import FixedClock
from commerce.domain.orders import OrderState
from commerce.secrets import EnvSecrets
from commerce.settings import Settings
from emulators.local_secrets import new_service_account_key
from emulators.stack import free_port
from emulators.stripe_setup import client_for, ensure_catalog
from tests.delivery.conftest import SmtpSink, artifact_files
from tests.support import factories
from tests.support.emulators import TEST_BUCKET, TEST_PROJECT
from tests.support.stripe_double import running_stripe_double

WEBHOOK_SECRET = "whsec_fuzz_" + "f" * 32
STRIPE_KEY = "sk_test_fuzz"
STOREFRONT = "http://shop.test"

_COMMON = {
    "deadline": None,
    "database": None,
    "suppress_health_check": [HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
}
settings.register_profile("fuzz", max_examples=40, derandomize=True, **_COMMON)
settings.register_profile("fuzz-long", max_examples=1000, **_COMMON)
PROFILE = settings.get_profile(os.environ.get("GENX_FUZZ_PROFILE", "fuzz"))


@dataclass(frozen=True)
class Seeds:
    """Real values of one fulfilled purchase, for the generators to mix in."""

    key: str
    token: str
    session_id: str
    job_id: str
    payment_intent: str


@pytest.fixture(scope="session")
def stripe_double_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with running_stripe_double(tmp_path_factory.mktemp("fuzz-double"), WEBHOOK_SECRET) as url:
        yield url


@pytest.fixture
def smtp_sink() -> Iterator[SmtpSink]:
    sink = SmtpSink(port=free_port())
    controller = Controller(sink, hostname="127.0.0.1", port=sink.port)
    controller.start()
    try:
        yield sink
    finally:
        controller.stop()


class RecordingQueue:
    def __init__(self) -> None:
        self.job_ids: list[str] = []

    def enqueue(self, job_id: str) -> None:
        self.job_ids.append(job_id)


@pytest.fixture
def installed(
    firestore_db: Any,
    storage_client: Any,
    stripe_double_url: str,
    smtp_sink: SmtpSink,
    tmp_path: Path,
) -> Iterator[tuple[Container, Seeds]]:
    """The container every function of functions/main.py gets, with one purchase."""
    price_id = ensure_catalog(client_for(STRIPE_KEY, stripe_double_url)).price_id
    signer = tmp_path / "url-signer.json"
    signer.write_text(json.dumps(new_service_account_key(TEST_PROJECT)))
    values: dict[str, Any] = {
        "environment": "local",
        "gcp_project": TEST_PROJECT,
        "storefront_url": STOREFRONT,
        "storefront_origins": (STOREFRONT,),
        "public_base_url": "http://functions.test",
        "artifacts_bucket": TEST_BUCKET,
        "stripe_price_id": price_id,
        "stripe_api_base": stripe_double_url,
        "url_signing_key_file": str(signer),
        "smtp_port": smtp_sink.port,
        "email_worker_url": "http://127.0.0.1:9/send_email",
    }
    settings_ = Settings(_env_file=None, **values)  # type: ignore[call-arg]
    secrets = {
        **factories.TEST_SECRETS,
        "STRIPE_SECRET_KEY": STRIPE_KEY,
        "STRIPE_WEBHOOK_SECRET": WEBHOOK_SECRET,
    }
    container = Container(settings_, clock=FixedClock(factories.NOW), secrets=EnvSecrets(secrets))
    container.__dict__["db"] = firestore_db
    container.__dict__["artifacts"] = ArtifactStore(settings_, storage_client)
    container.__dict__["email_queue"] = RecordingQueue()
    container.publisher.publish(artifact_files(tmp_path / "dist"), "1.0.0")
    purchase = factories.purchase(container.keys, OrderState.FULFILLED)
    container.customers.put(purchase.customer)
    container.orders.put(purchase.order)
    assert purchase.license is not None
    assert purchase.key is not None
    container.licenses.put(purchase.license)
    for grant in purchase.grants:
        container.download_tokens.put(grant)
    for job in purchase.email_jobs:
        container.email_jobs.put(job)
    seeds = Seeds(
        key=purchase.key,
        token=purchase.tokens[0],
        session_id=purchase.order.id,
        job_id=purchase.email_jobs[0].id,
        payment_intent=purchase.order.payment_intent_id or "pi_none",
    )
    use_container(container)
    try:
        yield container, seeds
    finally:
        use_container(None)
        if "license_service" in container.__dict__:
            container.license_service.close()
