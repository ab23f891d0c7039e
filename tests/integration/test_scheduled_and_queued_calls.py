"""Every Cloud Scheduler job and Cloud Tasks target, sent as Google sends it.

The method, path, headers and body come from the Terraform tree (infra/platform_calls.py
reads scheduler.tf and tasks.tf and evaluates `base64encode(jsonencode(...))`); a task's
request comes from the code that builds it (CloudTasksEmailQueue.build_task) combined
with the queue's overrides. Each request goes through the target function's
functions-framework test client on the Firestore and storage emulators and must be
answered 2xx. Jobs that call an external API are checked against that API's own
description in tests/infra/test_platform_calls.py.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from functions_framework import create_app

from commerce.adapters.artifacts import ArtifactStore
from commerce.adapters.tasks_queue import CloudTasksEmailQueue
from commerce.bootstrap import Container, use_container
from commerce.clock import FixedClock
from commerce.delivery.mailers import OutgoingEmail
from commerce.domain.models import EmailJobState
from commerce.domain.orders import OrderState
from commerce.secrets import EnvSecrets
from commerce.settings import Settings
from emulators.stripe_double import Config, start_in_thread
from emulators.stripe_setup import client_for, ensure_catalog
from infra import platform_calls
from infra.platform_calls import PlatformCall
from tests.support import factories
from tests.support.emulators import TEST_BUCKET, TEST_PROJECT

MAIN = str(Path(__file__).resolve().parents[2] / "functions" / "main.py")
STRIPE_KEY = "sk_test_platform_calls"
CALLS = [call for call in platform_calls.scheduled_calls() if call.target is not None]
QUEUES = platform_calls.queue_targets()


def settings_for(**overrides: Any) -> Settings:
    """Settings shaped like Terraform's function environment (locals.tf base_env)."""
    values: dict[str, Any] = {
        "environment": "local",
        "gcp_project": TEST_PROJECT,
        "gcp_region": "europe-west1",
        "storefront_url": "https://shop.example",
        "public_base_url": "https://shop.example",
        "artifacts_bucket": TEST_BUCKET,
        "email_worker_url": platform_calls.function_url("send_email"),
        "tasks_location": "europe-west1",
        "tasks_invoker_service_account": "fn-tasks-invoker@genx-prod.iam.gserviceaccount.com",
        **overrides,
    }
    return Settings(_env_file=None, **values)  # type: ignore[call-arg]


class RecordingMailer:
    def __init__(self) -> None:
        self.sent: list[OutgoingEmail] = []

    def send(self, message: OutgoingEmail) -> str:
        self.sent.append(message)
        return f"msg-{len(self.sent)}"


class RecordingQueue:
    def __init__(self) -> None:
        self.enqueued: list[str] = []

    def enqueue(self, job_id: str, *, attempt: int = 0) -> None:
        self.enqueued.append(job_id)


@pytest.fixture(scope="module")
def stripe_double_url() -> Iterator[str]:
    double = start_in_thread(Config(port=0))
    try:
        yield double.url
    finally:
        double.stop()


@pytest.fixture
def build_container(
    firestore_db: Any, storage_client: Any
) -> Iterator[Callable[[Settings, dict[str, str]], Container]]:
    def build(settings: Settings, secrets: dict[str, str]) -> Container:
        container = Container(
            settings, clock=FixedClock(factories.NOW), secrets=EnvSecrets(secrets)
        )
        container.__dict__["db"] = firestore_db
        container.__dict__["artifacts"] = ArtifactStore(settings, storage_client)
        use_container(container)
        return container

    yield build
    use_container(None)


def send(call: PlatformCall) -> Any:
    """The request, as Google sends it, through the target's test client."""
    assert call.target is not None
    client = create_app(call.target, MAIN).test_client()
    return client.open(
        call.path,
        method=call.method,
        headers=dict(call.headers),
        data=call.body,
        query_string=call.query or None,
    )


def test_the_terraform_tree_has_the_scheduled_and_queued_calls_this_module_exercises() -> None:
    # If a job or queue is added, its target needs a case below (and a 2xx).
    assert sorted(call.target or "" for call in CALLS) == ["email_sweeper", "reconcile"]
    assert [(queue.source, queue.target) for queue in QUEUES] == [
        ("google_cloud_tasks_queue.email", "send_email")
    ]


@pytest.mark.parametrize("call", CALLS, ids=lambda call: call.source)
def test_each_scheduled_job_as_sent_is_answered_2xx(
    call: PlatformCall, build_container, stripe_double_url: str
) -> None:
    if call.target == "reconcile":
        price = ensure_catalog(client_for(STRIPE_KEY, stripe_double_url)).price_id
        container = build_container(
            settings_for(stripe_api_base=stripe_double_url, stripe_price_id=price),
            {**factories.TEST_SECRETS, "STRIPE_SECRET_KEY": STRIPE_KEY},
        )
        expected = {"repaired": 0, "failed": 0}
    elif call.target == "email_sweeper":
        container = build_container(settings_for(), dict(factories.TEST_SECRETS))
        queue = RecordingQueue()
        container.__dict__["email_queue"] = queue
        bought = factories.purchase(container.keys, OrderState.PAID)
        job = factories.make_email_job(bought.customer, bought.order, id="email_stale")
        container.customers.put(bought.customer)
        container.orders.put(bought.order)
        container.email_jobs.put(job)
        container.clock.advance(seconds=container.settings.email_sweep_after_seconds + 1)  # type: ignore[attr-defined]
        expected = {"requeued": 1}
    else:
        pytest.fail(f"no harness for scheduled target {call.target} ({call.source})")

    answer = send(call)

    assert 200 <= answer.status_code < 300, answer.get_data(as_text=True)
    body = answer.get_json()
    assert {key: body[key] for key in expected} == expected
    if call.target == "email_sweeper":
        assert queue.enqueued == ["email_stale"]


def test_the_email_task_as_cloud_tasks_sends_it_is_delivered(build_container) -> None:
    (queue,) = QUEUES
    settings = settings_for(tasks_queue=queue.queue_name)
    container = build_container(settings, dict(factories.TEST_SECRETS))
    mailer = RecordingMailer()
    container.__dict__["mailer"] = mailer
    bought = factories.purchase(container.keys, OrderState.FULFILLED)
    job = factories.make_email_job(
        bought.customer, bought.order, license_=bought.license, grants=bought.grants, id="email_q1"
    )
    container.customers.put(bought.customer)
    container.orders.put(bought.order)
    assert bought.license is not None
    container.licenses.put(bought.license)
    for grant in bought.grants:
        container.download_tokens.put(grant)
    container.email_jobs.put(job)
    # The task exactly as the application hands it to Cloud Tasks in the cloud
    # (no emulator: with an OIDC token for the invoker).
    task = CloudTasksEmailQueue(settings).build_task(job.id)
    call = platform_calls.queued_call(queue, task)

    answer = send(call)

    assert answer.status_code == 200, answer.get_data(as_text=True)
    assert answer.get_json() == {"job_id": "email_q1", "state": "sent"}
    assert [message.to for message in mailer.sent] == [bought.customer.email]
    stored = container.email_jobs.get("email_q1")
    assert stored is not None
    assert stored.state is EmailJobState.SENT
    assert call.auth == "oidc"
    assert call.url.startswith("https://")
    assert call.path == "/"


def test_a_job_that_forgets_its_content_type_would_be_refused(
    build_container, stripe_double_url: str, tmp_path: Path
) -> None:
    # Without the header Cloud Scheduler sends application/octet-stream, which the
    # functions refuse: the harness sends what Google sends, not what we meant.
    shop = tmp_path / "shop"
    shutil.copytree(platform_calls.SHOP_MODULE, shop)
    scheduler = shop / "scheduler.tf"
    text = scheduler.read_text(encoding="utf-8")
    header = '    headers     = { "Content-Type" = "application/json" }\n'
    assert text.count(header) == 2
    scheduler.write_text(text.replace(header, "", 1), encoding="utf-8")
    (call,) = [c for c in platform_calls.scheduled_calls(shop) if c.target == "reconcile"]
    build_container(
        settings_for(stripe_api_base=stripe_double_url),
        {**factories.TEST_SECRETS, "STRIPE_SECRET_KEY": STRIPE_KEY},
    )

    answer = send(call)

    assert answer.status_code == 415
