"""The Cloud Tasks and Scheduler workers with their dependencies hung (a port that
accepts and never answers): each attempt ends with a 503 `dependency_timeout` that
Cloud Tasks or Scheduler retries, within its budget (WORKER_BUDGET_SECONDS for
send_email and email_sweeper, RECONCILE_BUDGET_SECONDS for reconcile; 1 s here to keep
the test short), not when the platform stops the instance at the function timeout."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import functions_framework
import pytest

from commerce.bootstrap import Container, use_container
from commerce.clock import FixedClock
from commerce.repositories.base import new_firestore_client
from commerce.secrets import EnvSecrets
from tests.delivery.conftest import make_settings
from tests.support import factories
from tests.support.black_hole import BlackHole, black_hole
from tests.support.emulators import FIRESTORE_ENV, TEST_PROJECT

MAIN = str(Path(__file__).resolve().parents[2] / "functions" / "main.py")
SCHEDULER_BODY = {"trigger": "scheduler"}  # what scheduler.tf sends


@pytest.fixture
def hung(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[BlackHole, BlackHole]]:
    """(hung Firestore, hung Stripe), installed behind the functions."""
    with black_hole() as store, black_hole() as stripe_api:
        with monkeypatch.context() as env:
            env.setenv(FIRESTORE_ENV, f"{store.host}:{store.port}")
            db = new_firestore_client(TEST_PROJECT)
        settings = make_settings(
            stripe_api_base=stripe_api.url,
            worker_budget_seconds=1.0,
            reconcile_budget_seconds=1.0,
        )
        container = Container(
            settings,
            clock=FixedClock(factories.NOW),
            secrets=EnvSecrets({**factories.TEST_SECRETS, "STRIPE_SECRET_KEY": "sk_test_workers"}),
        )
        container.__dict__["db"] = db
        use_container(container)
        try:
            yield store, stripe_api
        finally:
            use_container(None)
            db.close()


@pytest.mark.parametrize(
    ("target", "body"),
    [
        ("send_email", {"job_id": "job_hung_store"}),
        ("email_sweeper", SCHEDULER_BODY),
        ("reconcile", SCHEDULER_BODY),
    ],
)
def test_a_worker_whose_dependencies_hang_answers_503_for_its_caller_to_retry(
    hung: tuple[BlackHole, BlackHole], target: str, body: dict[str, Any]
) -> None:
    store, stripe_api = hung

    answer = functions_framework.create_app(target, MAIN).test_client().post("/", json=body)

    assert answer.status_code == 503, answer.get_data(as_text=True)
    assert answer.get_json()["error"] == "dependency_timeout"
    assert store.connections + stripe_api.connections >= 1  # it waited on them
