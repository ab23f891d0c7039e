"""The e-mail path through the real Cloud Tasks emulator: task -> send_email worker
(functions-framework over HTTP) -> SMTP sink. The emulator retries failed tasks and
does not de-duplicate, so these show the worker's own guarantees."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from functions_framework import create_app
from typer.testing import CliRunner
from werkzeug.serving import make_server

from commerce.adapters.artifacts import ArtifactStore
from commerce.bootstrap import Container, use_container
from commerce.cli import app
from commerce.delivery.mailers import SmtpMailer
from commerce.domain import email_retry
from commerce.domain.models import EmailJobState
from commerce.domain.releases import Release
from commerce.secrets import EnvSecrets
from emulators.stack import free_port
from tests.delivery.conftest import Bought, SmtpSink, make_settings
from tests.delivery.test_email import pending_job
from tests.support import factories

MAIN = str(Path(__file__).resolve().parents[2] / "functions" / "main.py")


@pytest.fixture
def worker_container(
    container: Container, tasks_emulator, smtp_sink: SmtpSink, url_signer_file: str
) -> Iterator[Container]:
    """The container, served as the send_email function on a local port, with the
    e-mail queue pointing the emulator's tasks at it."""
    port = free_port()
    settings = make_settings(
        url_signing_key_file=url_signer_file,
        tasks_emulator_host=tasks_emulator.host,
        email_worker_url=f"http://127.0.0.1:{port}/",
        smtp_port=smtp_sink.port,
    )
    served = Container(settings, clock=container.clock, secrets=EnvSecrets(factories.TEST_SECRETS))
    served.__dict__["db"] = container.db
    served.__dict__["artifacts"] = ArtifactStore(settings, container.artifacts.client)
    served.__dict__["mailer"] = SmtpMailer("127.0.0.1", smtp_sink.port, timeout=5)
    use_container(served)
    server = make_server("127.0.0.1", port, create_app("send_email", MAIN), threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield served
    finally:
        server.shutdown()
        use_container(None)
        served.email_queue.client.transport.close()


def wait_for_state(container: Container, job_id: str, states: set[EmailJobState]) -> EmailJobState:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        job = container.email_jobs.get(job_id)
        if job is not None and job.state in states:
            return job.state
        time.sleep(0.1)
    raise AssertionError(f"job {job_id} never reached {states}")


def test_failing_provider_is_retried_by_the_queue_and_the_mail_goes_out_exactly_once(
    worker_container: Container, smtp_sink: SmtpSink, release: Release, bought: Bought
) -> None:
    worker_container.email_jobs.put(pending_job(bought))
    smtp_sink.refuse_next = 3  # an outage: three deferrals, then recovery

    worker_container.email_queue.enqueue("email_job_1")

    assert wait_for_state(worker_container, "email_job_1", {EmailJobState.SENT}) is (
        EmailJobState.SENT
    )
    time.sleep(1.0)  # let any stray redelivery arrive before counting
    assert smtp_sink.refused == 3
    assert len(smtp_sink.messages) == 1
    job = worker_container.email_jobs.get("email_job_1")
    assert job is not None
    assert job.attempts == 4


def test_the_same_job_enqueued_twice_is_sent_once(
    worker_container: Container, smtp_sink: SmtpSink, release: Release, bought: Bought
) -> None:
    worker_container.email_jobs.put(pending_job(bought))

    worker_container.email_queue.enqueue("email_job_1")
    worker_container.email_queue.enqueue("email_job_1")  # the emulator does not de-duplicate
    worker_container.email_queue.enqueue("email_job_1", attempt=1)

    wait_for_state(worker_container, "email_job_1", {EmailJobState.SENT})
    time.sleep(1.0)
    assert len(smtp_sink.messages) == 1


def test_sweeper_recovers_a_job_whose_enqueue_never_happened(
    worker_container: Container, smtp_sink: SmtpSink, release: Release, bought: Bought
) -> None:
    worker_container.email_jobs.put(pending_job(bought))  # committed, never enqueued
    worker_container.clock.advance(seconds=worker_container.settings.email_sweep_after_seconds + 1)  # type: ignore[attr-defined]

    assert worker_container.email_worker.sweep() == ["email_job_1"]

    wait_for_state(worker_container, "email_job_1", {EmailJobState.SENT})
    assert len(smtp_sink.messages) == 1


def test_after_an_smtp_outage_the_waiting_email_goes_out_once_at_its_scheduled_retry(
    worker_container: Container, smtp_sink: SmtpSink, release: Release, bought: Bought
) -> None:
    """The sink is down for the first attempt: the worker records the error and the next
    attempt, queues a task for that moment (the emulator honours schedule times), and
    `commerce emails pending` shows the job; the sink comes back and that task sends
    the e-mail, once. The clock is the wall clock's now, so the emulator waits for it."""
    worker_container.clock.set(datetime.now(UTC))  # type: ignore[attr-defined]
    smtp_sink.stop()
    worker_container.email_jobs.put(pending_job(bought))

    worker_container.email_queue.enqueue("email_job_1")

    waiting = wait_for(
        lambda: (
            (job := worker_container.email_jobs.get("email_job_1")) is not None
            and job.attempts == 1
            and job.state is EmailJobState.PENDING
            and job
        ),
        "the first attempt deferred",
    )
    assert waiting.last_error == "SMTP unavailable: ConnectionRefusedError"
    assert waiting.next_attempt_at == worker_container.clock.now() + timedelta(seconds=5)
    listed = CliRunner().invoke(app, ["emails", "pending", "--json"])
    assert listed.exit_code == 0, listed.output
    [row] = json.loads(listed.stdout)
    assert (row["id"], row["state"], row["attempts"]) == ("email_job_1", "pending", 1)
    assert row["last_error"] == "SMTP unavailable: ConnectionRefusedError"
    assert row["next_attempt_at"] == waiting.next_attempt_at.isoformat()

    smtp_sink.start()

    assert wait_for_state(worker_container, "email_job_1", {EmailJobState.SENT}) is (
        EmailJobState.SENT
    )
    time.sleep(1.0)  # let any stray redelivery arrive before counting
    assert len(smtp_sink.messages) == 1
    job = worker_container.email_jobs.get("email_job_1")
    assert job is not None
    assert job.attempts == 2


def test_after_an_smtp_outage_the_sweeper_sends_a_job_whose_retry_task_was_lost(
    worker_container: Container, smtp_sink: SmtpSink, release: Release, bought: Bought
) -> None:
    """Deliveries fail while the sink is down and their retry tasks cannot be queued
    (the worker answers 503); once the sink is back and the retry is overdue, the
    `email_sweeper` function queues the job and the e-mail goes out once."""

    class RetriesLost:
        def enqueue(self, job_id: str, *, attempt: int = 0, at: datetime | None = None) -> None:
            raise ConnectionError("tasks queue unreachable")

    real_queue = worker_container.email_queue
    worker_container.__dict__["email_queue"] = RetriesLost()
    smtp_sink.stop()
    worker_container.email_jobs.put(pending_job(bought))
    send_email = create_app("send_email", MAIN).test_client()
    for _ in range(2):
        assert send_email.post("/", json={"job_id": "email_job_1"}).status_code == 503
    job = worker_container.email_jobs.get("email_job_1")
    assert job is not None
    assert (job.state, job.attempts) == (EmailJobState.PENDING, 2)
    assert job.next_attempt_at is not None
    worker_container.__dict__["email_queue"] = real_queue
    sweeper = create_app("email_sweeper", MAIN).test_client()
    assert sweeper.post("/", json={"trigger": "scheduler"}).get_json() == {"requeued": 0}

    smtp_sink.start()
    worker_container.clock.set(job.next_attempt_at + email_retry.OVERDUE + timedelta(seconds=1))  # type: ignore[attr-defined]
    assert sweeper.post("/", json={"trigger": "scheduler"}).get_json() == {"requeued": 1}

    wait_for_state(worker_container, "email_job_1", {EmailJobState.SENT})
    time.sleep(1.0)
    assert len(smtp_sink.messages) == 1
    assert sweeper.post("/", json={"trigger": "scheduler"}).get_json() == {"requeued": 0}


def wait_for(condition: Any, what: str) -> Any:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"never happened: {what}")
