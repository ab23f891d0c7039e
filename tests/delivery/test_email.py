"""The fulfillment e-mail: rendering, the SMTP and SendGrid adapters, the at-most-once
worker (duplicate deliveries, permanent and transient failures, exhausted attempts)."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from commerce.bootstrap import Container
from commerce.clock import FixedClock
from commerce.delivery.email_content import (
    EmailContent,
    LicenseLine,
    ReceiptLine,
    format_amount,
    pick_locale,
    render,
)
from commerce.delivery.mailers import (
    MailPermanent,
    MailTransient,
    OutgoingEmail,
    SendGridMailer,
    SmtpMailer,
)
from commerce.domain.models import EmailJob, EmailJobState
from commerce.domain.releases import Release
from commerce.errors import TransientFailure
from commerce.grants import download_link
from tests.delivery.conftest import PUBLIC_BASE, Bought, SmtpSink, artifact_files
from tests.support import factories
from tests.support.threads import run_copies


def pending_job(bought: Bought, **overrides: Any) -> EmailJob:
    purchase = bought.purchase
    return factories.make_email_job(
        purchase.customer,
        purchase.order,
        license_=purchase.license,
        grants=purchase.grants,
        id=overrides.pop("id", "email_job_1"),
        **overrides,
    )


@pytest.fixture
def smtp_container(container: Container, smtp_sink: SmtpSink) -> Container:
    container.__dict__["mailer"] = SmtpMailer("127.0.0.1", smtp_sink.port, timeout=5)
    return container


# -- rendering (pure) ---------------------------------------------------------------------


def content(locale: str = "en", **overrides: Any) -> EmailContent:
    values: dict[str, Any] = {
        "kind": "fulfillment",
        "locale": locale,
        "product_name": "GENX",
        "seller_name": "GENX Software",
        "support_email": "help@example.com",
        "receipts": (ReceiptLine("cs_test_1", "49.00 EUR", "2026-03-01 09:30 UTC"),),
        "licenses": (LicenseLine("GENX-AAAA-BBBB-CCCC"),),
        "downloads": (),
        "release": None,
        **overrides,
    }
    return EmailContent(**values)


def test_html_is_autoescaped_and_text_is_not() -> None:
    rendered = render(content(seller_name="A & <B>"))

    assert "A &amp; &lt;B&gt;" in rendered.html
    assert "A & <B>" in rendered.text


def test_german_buyers_get_german_text_and_unknown_locales_english() -> None:
    assert "Vielen Dank" in render(content(pick_locale("de-DE"))).text
    assert "Thank you" in render(content(pick_locale("fr"))).text
    assert pick_locale(None) == "en"


def test_amounts_respect_currency_exponent_and_locale() -> None:
    assert format_amount(4900, "eur", "en") == "49.00 EUR"
    assert format_amount(4900, "eur", "de") == "49,00 EUR"
    assert format_amount(4900, "jpy", "en") == "4,900 JPY"


# -- worker with a real SMTP sink ----------------------------------------------------------


def test_fulfillment_email_through_smtp_contains_receipt_key_link_and_checksums(
    smtp_container: Container, smtp_sink: SmtpSink, release: Release, bought: Bought
) -> None:
    smtp_container.email_jobs.put(pending_job(bought))

    result = smtp_container.email_worker.deliver("email_job_1")

    assert result.state == "sent"
    assert len(smtp_sink.messages) == 1
    envelope = smtp_sink.messages[0]
    assert envelope.rcpt_tos == ["ada@example.com"]
    raw = smtp_sink.texts()[0]
    from email import message_from_string, policy

    message = message_from_string(raw, policy=policy.default)
    text = message.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    html = message.get_body(("html",)).get_content()  # type: ignore[union-attr]
    for body in (text, html):
        assert bought.purchase.key is not None
        assert bought.purchase.key in body
        assert download_link(PUBLIC_BASE, bought.token) in body
        assert bought.order_id in body
        assert "49.00 EUR" in body
        for file in release.files:
            assert file.sha256 in body
    assert "license" in message["Subject"].lower()
    job = smtp_container.email_jobs.get("email_job_1")
    assert job is not None
    assert job.state is EmailJobState.SENT
    assert job.attempts == 1


def test_the_checksums_are_those_of_the_release_the_link_serves(
    smtp_container: Container, smtp_sink: SmtpSink, release: Release, bought: Bought, tmp_path
) -> None:
    # A newer major the license is not entitled to: its link serves 1.x, so must the mail.
    assert bought.purchase.license is not None
    assert bought.purchase.license.entitled_major_versions == (1,)
    newer = smtp_container.publisher.publish(artifact_files(tmp_path / "two", "2.0.0"), "2.0.0")
    smtp_container.email_jobs.put(pending_job(bought))

    assert smtp_container.email_worker.deliver("email_job_1").state == "sent"

    raw = smtp_sink.texts()[0]
    assert all(file.sha256 in raw for file in release.files)
    assert not any(file.sha256 in raw for file in newer.files)


def test_a_task_delivered_twice_sends_once(
    smtp_container: Container, smtp_sink: SmtpSink, release: Release, bought: Bought
) -> None:
    smtp_container.email_jobs.put(pending_job(bought))

    first = smtp_container.email_worker.deliver("email_job_1")
    second = smtp_container.email_worker.deliver("email_job_1", task_retry_count=1)

    assert (first.sent_now, second.sent_now) == (True, False)
    assert len(smtp_sink.messages) == 1


def test_concurrent_duplicate_deliveries_send_once(
    smtp_container: Container, smtp_sink: SmtpSink, release: Release, bought: Bought
) -> None:
    smtp_container.email_jobs.put(pending_job(bought))
    results: list[str] = []

    def deliver() -> None:
        try:
            results.append(smtp_container.email_worker.deliver("email_job_1").state)
        except TransientFailure:
            results.append("retry")

    run_copies(deliver, 3)

    assert len(smtp_sink.messages) == 1
    assert results.count("sent") >= 1


def test_provider_deferral_returns_the_job_and_schedules_its_retry(
    smtp_container: Container, smtp_sink: SmtpSink, release: Release, bought: Bought
) -> None:
    scheduled: list[tuple[str, datetime | None]] = []

    class Recorder:
        def enqueue(self, job_id: str, *, attempt: int = 0, at: datetime | None = None) -> None:
            scheduled.append((job_id, at))

    smtp_container.__dict__["email_queue"] = Recorder()
    smtp_container.email_jobs.put(pending_job(bought))
    smtp_sink.refuse_next = 1

    assert smtp_container.email_worker.deliver("email_job_1").state == "pending"
    job = smtp_container.email_jobs.get("email_job_1")
    assert job is not None
    assert (job.state, job.attempts) == (EmailJobState.PENDING, 1)
    assert job.last_error is not None
    assert "451" in job.last_error
    assert scheduled == [("email_job_1", job.next_attempt_at)]
    assert job.next_attempt_at == smtp_container.clock.now() + timedelta(seconds=5)

    assert smtp_container.email_worker.deliver("email_job_1", task_retry_count=1).sent_now
    assert len(smtp_sink.messages) == 1


def test_permanent_rejection_marks_the_job_failed_and_audits_it(
    smtp_container: Container, smtp_sink: SmtpSink, release: Release, bought: Bought
) -> None:
    smtp_container.email_jobs.put(pending_job(bought))
    smtp_sink.refuse_next = 1
    smtp_sink.refuse_code = "550 5.1.1 No such user"

    result = smtp_container.email_worker.deliver("email_job_1")

    assert result.state == "failed"
    job = smtp_container.email_jobs.get("email_job_1")
    assert job is not None
    assert job.state is EmailJobState.FAILED
    assert "550" in (job.last_error or "")
    actions = [e.action for e in smtp_container.audit_log.for_order(bought.order_id)]
    assert "email.failed" in actions
    assert [j.id for j in smtp_container.email_worker.failed()] == ["email_job_1"]


def test_invalid_address_fails_without_contacting_the_provider(
    smtp_container: Container, smtp_sink: SmtpSink, release: Release, bought: Bought
) -> None:
    customer = bought.purchase.customer.model_copy(update={"email": "not an address"})
    smtp_container.customers.put(customer)
    smtp_container.email_jobs.put(pending_job(bought))

    assert smtp_container.email_worker.deliver("email_job_1").state == "failed"
    assert smtp_sink.messages == []
    assert smtp_sink.refused == 0


def test_exhausted_attempts_bury_the_job_as_dead(
    smtp_container: Container,
    smtp_sink: SmtpSink,
    release: Release,
    bought: Bought,
    caplog: pytest.LogCaptureFixture,
) -> None:
    max_attempts = smtp_container.settings.email_max_attempts
    smtp_container.email_jobs.put(pending_job(bought, attempts=max_attempts - 1))
    smtp_sink.refuse_next = 5

    result = smtp_container.email_worker.deliver("email_job_1", task_retry_count=max_attempts - 1)

    assert result.state == "dead"
    job = smtp_container.email_jobs.get("email_job_1")
    assert job is not None
    assert job.state is EmailJobState.DEAD
    assert any(getattr(r, "event", None) == "email.dead" for r in caplog.records)
    # A late duplicate of the task does nothing.
    assert smtp_container.email_worker.deliver("email_job_1").state == "dead"
    assert smtp_sink.messages == []


def test_a_task_retried_beyond_the_limit_is_buried_before_sending(
    smtp_container: Container, smtp_sink: SmtpSink, release: Release, bought: Bought
) -> None:
    smtp_container.email_jobs.put(pending_job(bought))
    limit = smtp_container.settings.email_max_attempts

    assert smtp_container.email_worker.deliver("email_job_1", task_retry_count=limit).state == (
        "dead"
    )
    assert smtp_sink.messages == []


def test_resend_revives_a_dead_job_with_a_fresh_task_name(
    smtp_container: Container, release: Release, bought: Bought, clock: FixedClock
) -> None:
    queued: list[tuple[str, int]] = []

    class Recorder:
        def enqueue(self, job_id: str, *, attempt: int = 0, at: datetime | None = None) -> None:
            queued.append((job_id, attempt))

    smtp_container.__dict__["email_queue"] = Recorder()
    smtp_container.email_jobs.put(pending_job(bought, state=EmailJobState.DEAD, attempts=8))

    job = smtp_container.email_worker.resend("email_job_1")

    assert (job.state, job.attempts) == (EmailJobState.PENDING, 0)
    assert queued == [("email_job_1", int(clock.now().timestamp()))]


def test_sweeper_requeues_only_jobs_stuck_longer_than_the_threshold(
    smtp_container: Container, release: Release, bought: Bought, clock: FixedClock
) -> None:
    queued: list[str] = []

    class Recorder:
        def enqueue(self, job_id: str, *, attempt: int = 0, at: datetime | None = None) -> None:
            queued.append(job_id)

    smtp_container.__dict__["email_queue"] = Recorder()
    smtp_container.email_jobs.put(pending_job(bought, id="email_old"))
    smtp_container.email_jobs.put(
        pending_job(bought, id="email_sending", state=EmailJobState.SENDING)
    )
    smtp_container.email_jobs.put(pending_job(bought, id="email_sent", state=EmailJobState.SENT))
    clock.advance(seconds=smtp_container.settings.email_sweep_after_seconds + 1)
    smtp_container.email_jobs.put(pending_job(bought, id="email_new", updated_at=clock.now()))

    assert sorted(smtp_container.email_worker.sweep()) == ["email_old", "email_sending"]
    assert sorted(queued) == ["email_old", "email_sending"]
    assert smtp_container.email_worker.sweep() == []  # touched: not stale any more


# -- SendGrid adapter against a local fake endpoint -----------------------------------------


@dataclass
class FakeSendGrid:
    status: int = 202
    requests: list[dict[str, Any]] = field(default_factory=list)
    port: int = 0


@pytest.fixture
def fake_sendgrid() -> Iterator[FakeSendGrid]:
    fake = FakeSendGrid()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length", 0))
            fake.requests.append(
                {
                    "path": self.path,
                    "headers": dict(self.headers),
                    "body": json.loads(self.rfile.read(length)),
                }
            )
            self.send_response(fake.status)
            self.send_header("X-Message-Id", "sg-message-1")
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    fake.port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield fake
    finally:
        server.shutdown()
        server.server_close()


MESSAGE = OutgoingEmail(
    sender="GENX Shop <shop@example.com>",
    to="ada@example.com",
    subject="Your GENX license",
    text="key GENX-AAAA-BBBB-CCCC",
    html="<p>key GENX-AAAA-BBBB-CCCC</p>",
    reply_to="support@example.com",
)


def test_sendgrid_adapter_posts_v3_mail_send_with_bearer_key_and_both_bodies(
    fake_sendgrid: FakeSendGrid,
) -> None:
    mailer = SendGridMailer("SG.test-key.abcdefgh", host=f"http://127.0.0.1:{fake_sendgrid.port}")

    assert mailer.send(MESSAGE) == "sg-message-1"

    (request,) = fake_sendgrid.requests
    assert request["path"] == "/v3/mail/send"
    assert request["headers"]["Authorization"] == "Bearer SG.test-key.abcdefgh"
    body = request["body"]
    assert body["personalizations"][0]["to"] == [{"email": "ada@example.com"}]
    assert body["from"] == {"email": "shop@example.com", "name": "GENX Shop"}
    assert body["subject"] == "Your GENX license"
    assert [c["type"] for c in body["content"]] == ["text/plain", "text/html"]
    assert body["reply_to"] == {"email": "support@example.com"}


@pytest.mark.parametrize(
    ("status", "error"),
    [(429, MailTransient), (500, MailTransient), (503, MailTransient), (400, MailPermanent)],
)
def test_sendgrid_failures_are_sorted_into_transient_and_permanent(
    fake_sendgrid: FakeSendGrid, status: int, error: type[Exception]
) -> None:
    fake_sendgrid.status = status
    mailer = SendGridMailer("SG.test-key.abcdefgh", host=f"http://127.0.0.1:{fake_sendgrid.port}")

    with pytest.raises(error):
        mailer.send(MESSAGE)


def test_unreachable_smtp_server_is_transient() -> None:
    from emulators.stack import free_port

    with pytest.raises(MailTransient):
        SmtpMailer("127.0.0.1", free_port(), timeout=2).send(MESSAGE)
