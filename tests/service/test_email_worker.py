"""The e-mail worker on the in-memory unit of work with a recording mailer: at most
once per job, retries, burial, re-send and the sweeper (SMTP, SendGrid and the task
queue for real: tests/delivery, on the emulators)."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import pytest

from commerce.bootstrap import Container
from commerce.clock import FixedClock
from commerce.delivery.email_worker import EmailJobUnknown
from commerce.delivery.mailers import MailPermanent, MailTransient, OutgoingEmail
from commerce.domain import email_retry
from commerce.domain.models import EmailJob, EmailJobState
from commerce.domain.orders import OrderState
from commerce.errors import Conflict, TransientFailure
from commerce.repositories.memory import MemoryStorage
from commerce.unit_of_work import UnitOfWork
from tests.support import factories


class Mailer:
    """Records what was sent; `refuse` makes the next sends fail with these errors."""

    def __init__(self) -> None:
        self.sent: list[OutgoingEmail] = []
        self.refuse: list[Exception] = []

    def send(self, message: OutgoingEmail) -> str:
        if self.refuse:
            raise self.refuse.pop(0)
        self.sent.append(message)
        return f"msg-{len(self.sent)}"


class Requeued:
    """The queue: records (job id, attempt) and each task's schedule time; `fail`
    makes enqueueing raise."""

    def __init__(self) -> None:
        self.jobs: list[tuple[str, int]] = []
        self.at: list[datetime | None] = []
        self.fail = False

    def enqueue(self, job_id: str, *, attempt: int = 0, at: datetime | None = None) -> None:
        if self.fail:
            raise ConnectionError("tasks queue unreachable")
        self.jobs.append((job_id, attempt))
        self.at.append(at)


class NoReleases:
    def in_channel(self, channel: str) -> list[Any]:
        return []


@pytest.fixture
def mailer(container: Container) -> Mailer:
    recording = Mailer()
    container.mailer = recording  # type: ignore[misc,assignment]
    return recording


@pytest.fixture
def requeued(container: Container) -> Requeued:
    queue = Requeued()
    container.email_queue = queue  # type: ignore[misc,assignment]
    return queue


@pytest.fixture
def purchase(container: Container, storage: MemoryStorage, clock: FixedClock) -> Any:
    container.releases = NoReleases()  # type: ignore[misc,assignment]
    bought = factories.purchase(container.keys, OrderState.FULFILLED, now=clock.now())

    def store(uow: UnitOfWork) -> None:
        uow.customers.put(bought.customer)
        uow.orders.put(bought.order)
        uow.licenses.put(bought.license)
        for grant in bought.grants:
            uow.download_tokens.put(grant)

    storage.run(store)
    return bought


def put_job(storage: MemoryStorage, purchase: Any, **overrides: Any) -> EmailJob:
    job = factories.make_email_job(
        purchase.customer,
        purchase.order,
        license_=purchase.license,
        grants=purchase.grants,
        id=overrides.pop("id", "email_job_1"),
        **overrides,
    )
    storage.run(lambda uow: uow.email_jobs.put(job))
    return job


def job_in(storage: MemoryStorage, job_id: str = "email_job_1") -> EmailJob:
    job: EmailJob | None = storage.load("email_jobs", job_id)
    assert job is not None
    return job


def test_a_job_is_sent_once_with_key_and_link_however_often_the_task_comes(
    container: Container, storage: MemoryStorage, mailer: Mailer, purchase: Any
) -> None:
    put_job(storage, purchase)

    first = container.email_worker.deliver("email_job_1")
    second = container.email_worker.deliver("email_job_1", task_retry_count=1)

    assert (first.sent_now, second.sent_now) == (True, False)
    (message,) = mailer.sent
    assert message.to == purchase.customer.email
    assert purchase.key in message.text
    assert purchase.tokens[0] in message.text
    job = job_in(storage)
    assert (job.state, job.attempts, job.provider_message_id) == (EmailJobState.SENT, 1, "msg-1")
    assert storage.audit_actions() == ["email.sent"]


def test_a_deferral_gives_the_job_back_and_schedules_its_retry(
    container: Container,
    storage: MemoryStorage,
    mailer: Mailer,
    purchase: Any,
    requeued: Requeued,
    clock: FixedClock,
) -> None:
    put_job(storage, purchase)
    mailer.refuse = [MailTransient("451 try later"), MailTransient("SMTP unavailable")]

    assert container.email_worker.deliver("email_job_1").state == "pending"
    job = job_in(storage)
    assert (job.state, job.attempts, job.last_error) == (EmailJobState.PENDING, 1, "451 try later")
    first_due = clock.now() + timedelta(seconds=5)
    assert job.next_attempt_at == first_due
    assert requeued.jobs == [("email_job_1", int(first_due.timestamp()))]
    assert requeued.at == [first_due]

    clock.advance(seconds=5)
    assert container.email_worker.deliver("email_job_1").state == "pending"
    second_due = clock.now() + timedelta(seconds=10)
    assert job_in(storage).next_attempt_at == second_due
    assert requeued.at == [first_due, second_due]

    clock.advance(seconds=10)
    assert container.email_worker.deliver("email_job_1").sent_now
    assert len(mailer.sent) == 1
    assert job_in(storage).next_attempt_at is None


def test_a_retry_that_cannot_be_scheduled_asks_the_queue_to_retry_the_task(
    container: Container, storage: MemoryStorage, mailer: Mailer, purchase: Any, requeued: Requeued
) -> None:
    put_job(storage, purchase)
    mailer.refuse = [MailTransient("451 try later")]
    requeued.fail = True

    with pytest.raises(TransientFailure):
        container.email_worker.deliver("email_job_1")
    assert job_in(storage).state is EmailJobState.PENDING

    assert container.email_worker.deliver("email_job_1", task_retry_count=1).sent_now
    assert len(mailer.sent) == 1


def test_waiting_jobs_are_listed_with_last_error_and_next_attempt_soonest_first(
    container: Container,
    storage: MemoryStorage,
    mailer: Mailer,
    purchase: Any,
    requeued: Requeued,
    clock: FixedClock,
) -> None:
    put_job(storage, purchase, id="email_a", attempts=3, state=EmailJobState.SENDING)
    mailer.refuse = [MailTransient("SMTP unavailable: ConnectionRefusedError")]
    put_job(storage, purchase, id="email_b")
    container.email_worker.deliver("email_b")
    put_job(storage, purchase, id="email_c", state=EmailJobState.SENT)

    waiting = container.email_worker.waiting()

    assert [(job.id, job.state) for job in waiting] == [
        ("email_a", EmailJobState.SENDING),
        ("email_b", EmailJobState.PENDING),
    ]
    assert waiting[1].last_error == "SMTP unavailable: ConnectionRefusedError"
    assert waiting[1].next_attempt_at == clock.now() + timedelta(seconds=5)


def test_a_permanent_rejection_fails_the_job_and_audits_it(
    container: Container, storage: MemoryStorage, mailer: Mailer, purchase: Any
) -> None:
    put_job(storage, purchase)
    mailer.refuse = [MailPermanent("550 no such user")]

    assert container.email_worker.deliver("email_job_1").state == "failed"

    assert job_in(storage).state is EmailJobState.FAILED
    assert storage.audit_actions() == ["email.failed"]
    assert [job.id for job in container.email_worker.failed()] == ["email_job_1"]


def test_exhausted_attempts_bury_the_job_and_a_late_task_does_nothing(
    container: Container, storage: MemoryStorage, mailer: Mailer, purchase: Any
) -> None:
    limit = container.settings.email_max_attempts
    put_job(storage, purchase, attempts=limit - 1)
    mailer.refuse = [MailTransient("451 later")]

    assert container.email_worker.deliver("email_job_1", task_retry_count=limit - 1).state == (
        "dead"
    )
    assert job_in(storage).state is EmailJobState.DEAD
    assert container.email_worker.deliver("email_job_1").state == "dead"
    assert mailer.sent == []


def test_a_job_whose_records_are_gone_fails_without_contacting_the_provider(
    container: Container, storage: MemoryStorage, mailer: Mailer, purchase: Any
) -> None:
    put_job(storage, purchase)
    storage.run(lambda uow: uow.customers.delete(purchase.customer.id))

    assert container.email_worker.deliver("email_job_1").state == "failed"
    assert mailer.sent == []


def test_an_unknown_job_needs_no_delivery(container: Container, mailer: Mailer) -> None:
    assert container.email_worker.deliver("email_nope").state == "unknown"


def test_resend_revives_a_dead_job_and_refuses_a_sent_one_unless_forced(
    container: Container,
    storage: MemoryStorage,
    purchase: Any,
    requeued: Requeued,
    clock: FixedClock,
) -> None:
    put_job(storage, purchase, state=EmailJobState.DEAD, attempts=8)
    put_job(storage, purchase, id="email_sent", state=EmailJobState.SENT)

    revived = container.email_worker.resend("email_job_1")

    assert (revived.state, revived.attempts) == (EmailJobState.PENDING, 0)
    assert requeued.jobs == [("email_job_1", int(clock.now().timestamp()))]
    with pytest.raises(Conflict):
        container.email_worker.resend("email_sent")
    assert container.email_worker.resend("email_sent", force=True).state is EmailJobState.PENDING
    with pytest.raises(EmailJobUnknown):
        container.email_worker.resend("email_nope")
    assert storage.audit_actions() == ["email.resent", "email.resent"]


def test_the_sweeper_queues_a_deferred_job_once_its_retry_is_overdue(
    container: Container,
    storage: MemoryStorage,
    mailer: Mailer,
    purchase: Any,
    requeued: Requeued,
    clock: FixedClock,
) -> None:
    """The retry task was lost: the sweeper brings the e-mail out after the due time
    plus the overdue margin, not before."""
    put_job(storage, purchase)
    mailer.refuse = [MailTransient("451 try later")]
    container.email_worker.deliver("email_job_1")
    due = job_in(storage).next_attempt_at
    assert due is not None
    requeued.jobs.clear()

    clock.set(due + email_retry.OVERDUE)
    assert container.email_worker.sweep() == []
    clock.advance(seconds=1)
    assert container.email_worker.sweep() == ["email_job_1"]
    assert [job_id for job_id, _ in requeued.jobs] == ["email_job_1"]

    assert container.email_worker.deliver("email_job_1").sent_now
    assert container.email_worker.sweep() == []
    assert len(mailer.sent) == 1


def test_the_sweeper_requeues_only_jobs_stuck_longer_than_the_threshold(
    container: Container,
    storage: MemoryStorage,
    purchase: Any,
    requeued: Requeued,
    clock: FixedClock,
) -> None:
    put_job(storage, purchase, id="email_old")
    put_job(storage, purchase, id="email_sending", state=EmailJobState.SENDING)
    put_job(storage, purchase, id="email_sent", state=EmailJobState.SENT)
    clock.advance(seconds=container.settings.email_sweep_after_seconds + 1)
    put_job(storage, purchase, id="email_new", updated_at=clock.now())

    assert sorted(container.email_worker.sweep()) == ["email_old", "email_sending"]
    assert sorted(job_id for job_id, _ in requeued.jobs) == ["email_old", "email_sending"]


def test_a_stored_address_with_line_breaks_fails_the_job_as_invalid_not_internal(
    container: Container, storage: MemoryStorage, purchase: Any
) -> None:
    """Records written before addresses were validated on arrival: the real SMTP
    mailer refuses the recipient before connecting (port 9 would not answer)."""
    from commerce.delivery.mailers import SmtpMailer

    container.mailer = SmtpMailer("127.0.0.1", 9, timeout=1)  # type: ignore[misc]
    bad = purchase.customer.model_copy(update={"email": "jane@example.com\r\nBcc: x@example.com"})
    storage.run(lambda uow: uow.customers.put(bad))
    put_job(storage, purchase)

    assert container.email_worker.deliver("email_job_1").state == "failed"

    job = job_in(storage)
    assert job.state is EmailJobState.FAILED
    assert job.last_error == "the recipient address is not valid"
    assert job.attempts == 1
    assert storage.audit_actions() == ["email.failed"]
