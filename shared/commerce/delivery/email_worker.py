"""The e-mail worker behind the `send_email` task handler, the sweeper and the CLI.

At most once per job: a delivery first *claims* the job in a unit of work
(pending -> sending, attempts + 1); only the claimant talks to the provider, and it
records the outcome in another unit of work (sent / failed / dead, or back to
pending for a retry); the job's states and steps are `commerce.domain.email_jobs`.
Duplicate task deliveries (the tasks emulator does not de-duplicate; Cloud Tasks may
deliver twice) find the job sending or sent and do nothing. The one window left: a
crash between the provider accepting the message and the `sent` write; the sweeper
then re-sends after `email_sweep_after_seconds` (a duplicate e-mail beats a missing
one; documented in docs/email.md).

Retries are scheduled by the worker: after a transient failure the job goes back to
pending with its next attempt (`commerce.domain.email_retry`), and a task for that
time is queued before the answer. The sweeper queues jobs whose task was lost.

Answers: 2xx when this task needs no further delivery (sent, failed, dead, in
progress elsewhere, unknown, or a retry scheduled); TransientFailure (503) when Cloud
Tasks should retry this task itself (the retry could not be scheduled, or the job
could not be claimed).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Protocol

from commerce.delivery.mailers import Mailer, MailPermanent, MailTransient, OutgoingEmail
from commerce.domain import email_jobs, email_retry
from commerce.domain.email_jobs import FINISHED
from commerce.domain.models import EmailJob, EmailJobState
from commerce.domain.releases import latest
from commerce.errors import Conflict, NotFound, TransientFailure
from commerce.grants import download_link
from commerce.logs import get_logger

if TYPE_CHECKING:
    from commerce.audit import Auditor
    from commerce.clock import Clock
    from commerce.delivery.download import ReleaseSource
    from commerce.keys import KeyService
    from commerce.settings import Settings
    from commerce.unit_of_work import Storage, UnitOfWork

_log = get_logger("commerce.delivery.email")


class Requeue(Protocol):
    """The e-mail queue as the worker and the sweeper use it: a new `attempt` gives a
    new task name; `at` delays the task until then."""

    def enqueue(self, job_id: str, *, attempt: int = 0, at: datetime | None = None) -> None: ...


class EmailJobUnknown(NotFound):
    code = "email_job_unknown"
    default_detail = "There is no e-mail job with this id."


class EmailContentUnavailable(Exception):
    """The job's records cannot make a message (permanent: retrying will not help)."""


@dataclass(frozen=True)
class DeliveryResult:
    job_id: str
    state: str  # the job's state after this delivery, or "unknown" / "in_progress"
    sent_now: bool = False


@dataclass(frozen=True)
class _Claim:
    job: EmailJob | None
    result: DeliveryResult | None


class EmailWorker:
    def __init__(
        self,
        *,
        settings: Settings,
        clock: Clock,
        storage: Storage,
        releases: ReleaseSource,
        keys: KeyService,
        auditor: Auditor,
        mailer: Callable[[], Mailer],
        queue: Callable[[], Requeue],
    ) -> None:
        self.settings = settings
        self.clock = clock
        self.storage = storage
        self.releases = releases
        self.keys = keys
        self.auditor = auditor
        self._mailer = mailer
        self._queue = queue

    @property
    def stale_after(self) -> timedelta:
        return timedelta(seconds=self.settings.email_sweep_after_seconds)

    # -- the task handler -----------------------------------------------------------
    def deliver(self, job_id: str, *, task_retry_count: int = 0) -> DeliveryResult:
        claim = self.storage.run(lambda uow: self._claim(uow, job_id, task_retry_count))
        if claim.result is not None:
            return claim.result
        job = claim.job
        assert job is not None
        try:
            message = self.compose(job)
            provider_id = self._mailer().send(message)
        except (MailPermanent, EmailContentUnavailable) as exc:
            return self._finish_failed(job, str(exc))
        except MailTransient as exc:
            return self._retry_or_bury(job, exc.reason)
        except Exception as exc:
            # Storage hiccups, bugs: give the job back and let Cloud Tasks retry.
            _log.exception(
                "e-mail delivery error", extra={"event": "email.error", "job_id": job_id}
            )
            return self._retry_or_bury(job, f"internal: {type(exc).__name__}")
        return self._finish_sent(job, provider_id)

    def _claim(self, uow: UnitOfWork, job_id: str, task_retry_count: int) -> _Claim:
        job = uow.email_jobs.get(job_id)
        if job is None:
            _log.warning("unknown e-mail job", extra={"event": "email.unknown", "job_id": job_id})
            return _Claim(None, DeliveryResult(job_id, "unknown"))
        now = self.clock.now()
        if job.state in FINISHED:
            return _Claim(None, DeliveryResult(job_id, job.state.value))
        if job.state is EmailJobState.SENDING and now - job.updated_at < self.stale_after:
            return _Claim(None, DeliveryResult(job_id, "in_progress"))
        attempts = max(job.attempts, task_retry_count)
        if attempts >= self.settings.email_max_attempts:
            self._bury(uow, job, job.last_error or "attempts exhausted")
            return _Claim(None, DeliveryResult(job_id, EmailJobState.DEAD.value))
        fields = email_jobs.claim(job, now, attempts=attempts)
        uow.email_jobs.update(job_id, fields)
        return _Claim(job.model_copy(update=fields), None)

    def _finish_sent(self, job: EmailJob, provider_id: str) -> DeliveryResult:
        """The claimant records what the provider accepted (no read: it holds the claim)."""

        def record(uow: UnitOfWork) -> None:
            uow.email_jobs.update(job.id, email_jobs.mark_sent(job, self.clock.now(), provider_id))
            self.auditor.record(
                "email.sent",
                uow=uow,
                customer_id=job.customer_id,
                order_id=job.order_ids[0] if job.order_ids else None,
                job_id=job.id,
                kind=job.kind.value,
                attempts=job.attempts,
            )

        self.storage.run(record)
        _log.info("e-mail sent", extra={"event": "email.sent", "job_id": job.id})
        return DeliveryResult(job.id, EmailJobState.SENT.value, sent_now=True)

    def _finish_failed(self, job: EmailJob, reason: str) -> DeliveryResult:
        def record(uow: UnitOfWork) -> None:
            uow.email_jobs.update(job.id, email_jobs.mark_failed(job, self.clock.now(), reason))
            self.auditor.record(
                "email.failed",
                uow=uow,
                customer_id=job.customer_id,
                order_id=job.order_ids[0] if job.order_ids else None,
                job_id=job.id,
                reason=reason[:300],
            )

        self.storage.run(record)
        _log.warning(
            "e-mail failed permanently",
            extra={"event": "email.failed", "job_id": job.id, "reason": reason[:300]},
        )
        return DeliveryResult(job.id, EmailJobState.FAILED.value)

    def _bury(self, uow: UnitOfWork, job: EmailJob, reason: str) -> None:
        uow.email_jobs.update(job.id, email_jobs.bury(job, self.clock.now(), reason))
        self.auditor.record(
            "email.dead",
            uow=uow,
            customer_id=job.customer_id,
            order_id=job.order_ids[0] if job.order_ids else None,
            job_id=job.id,
            attempts=job.attempts,
            reason=reason[:300],
        )
        _log.error(
            "e-mail attempts exhausted",
            extra={"event": "email.dead", "job_id": job.id, "attempts": job.attempts},
        )

    def _retry_or_bury(self, job: EmailJob, reason: str) -> DeliveryResult:
        def record(uow: UnitOfWork) -> str:
            current = uow.email_jobs.get(job.id)
            if current is None or current.state is not EmailJobState.SENDING:
                return current.state.value if current else "unknown"
            if current.attempts >= self.settings.email_max_attempts:
                self._bury(uow, current.model_copy(update={"last_error": reason}), reason)
                return EmailJobState.DEAD.value
            uow.email_jobs.update(job.id, email_jobs.retry_later(current, self.clock.now(), reason))
            return EmailJobState.PENDING.value

        state = self.storage.run(record)
        if state != EmailJobState.PENDING.value:
            return DeliveryResult(job.id, state)
        due = self.clock.now() + email_retry.delay(job.attempts)
        _log.warning(
            "e-mail delivery deferred",
            extra={
                "event": "email.retry",
                "job_id": job.id,
                "attempts": job.attempts,
                "next_attempt_at": due.isoformat(),
                "reason": reason[:300],
            },
        )
        try:
            # A new task name per scheduled attempt (unix time of its due moment).
            self._queue().enqueue(job.id, attempt=int(due.timestamp()), at=due)
        except Exception as exc:
            _log.warning(
                "e-mail retry not scheduled; the queue retries this task",
                extra={
                    "event": "email.retry_not_scheduled",
                    "job_id": job.id,
                    "error_type": type(exc).__name__,
                },
            )
            raise TransientFailure(
                "the mail provider is unavailable; the task will be retried"
            ) from None
        return DeliveryResult(job.id, EmailJobState.PENDING.value)

    # -- the message ----------------------------------------------------------------
    def compose(self, job: EmailJob) -> OutgoingEmail:
        """The job's message, from its records as committed (read without locks)."""
        with self.storage.batch() as uow:
            return self._compose(uow, job)

    def _compose(self, uow: UnitOfWork, job: EmailJob) -> OutgoingEmail:
        # Imported here: the sweeper and duplicate or unknown deliveries render nothing.
        from commerce.delivery.email_content import (
            DownloadLine,
            EmailContent,
            LicenseLine,
            ReceiptLine,
            format_amount,
            format_date,
            pick_locale,
            render,
        )

        customer = uow.customers.get(job.customer_id)
        if customer is None:
            raise EmailContentUnavailable("the job's customer does not exist")
        locale = pick_locale(job.locale or customer.locale)
        receipts = []
        channel = "stable"
        for order in uow.orders.get_many(list(job.order_ids)):
            channel = order.channel
            receipts.append(
                ReceiptLine(
                    order_id=order.id,
                    amount=format_amount(order.amount_total, order.currency, locale),
                    date=format_date(order.created_at, locale),
                )
            )
        licenses = []
        entitled: dict[str, tuple[int, ...]] = {}  # license id -> major versions
        for license_ in uow.licenses.get_many(list(job.license_ids)):
            entitled[license_.id] = license_.entitled_major_versions
            try:
                key = self.keys.key_for(license_.id, license_.generation, license_.secret_id)
            except LookupError:
                raise EmailContentUnavailable(
                    "the secret that derived this license key is no longer configured"
                ) from None
            licenses.append(LicenseLine(key=key))
        downloads = []
        linked: list[str] = []  # the licenses the links serve
        for token_id in job.download_token_ids:
            found = uow.download_tokens.where("token_id", "==", token_id, limit=1)
            grant = found[0] if found else None
            if grant is None:
                raise EmailContentUnavailable("a download grant of the job does not exist")
            channel = grant.channel
            linked.append(grant.license_id)
            token = self.keys.token_for(grant.token_id, grant.secret_id or None)
            downloads.append(
                DownloadLine(
                    link=download_link(str(self.settings.public_base_url), token),
                    expires=format_date(grant.expires_at, locale),
                    max_redemptions=grant.max_redemptions,
                    remaining=grant.remaining,
                )
            )
        if len(job.license_ids) != len(licenses) or len(job.order_ids) != len(receipts):
            raise EmailContentUnavailable("an order or license of the job does not exist")
        content = EmailContent(
            kind=job.kind.value,
            locale=locale,
            product_name=self.settings.product_name,
            seller_name=self.settings.seller_name,
            support_email=self.settings.support_email,
            receipts=tuple(receipts),
            licenses=tuple(licenses),
            downloads=tuple(downloads),
            release=latest(
                self.releases.in_channel(channel), channel, self._majors(uow, linked, entitled)
            ),
        )
        rendered = render(content)
        return OutgoingEmail(
            sender=self.settings.mail_from,
            to=customer.email,
            subject=rendered.subject,
            text=rendered.text,
            html=rendered.html,
            reply_to=self.settings.support_email,
            job_id=job.id,
        )

    def _majors(
        self, uow: UnitOfWork, linked: list[str], entitled: dict[str, tuple[int, ...]]
    ) -> set[int] | None:
        """The major versions the e-mail's links serve (a download link serves only its
        license's), so the checksums shown are those of the files the links deliver;
        None (any major) when the e-mail has no link."""
        missing = [license_id for license_id in linked if license_id not in entitled]
        for license_ in uow.licenses.get_many(missing):
            entitled[license_.id] = license_.entitled_major_versions
        if not linked:
            return None
        return {major for license_id in linked for major in entitled.get(license_id, ())}

    # -- sweeper and operator commands ------------------------------------------------
    def sweep(self) -> list[str]:
        """Re-enqueue jobs left pending past their due time (their task was lost or
        never queued) or sending too long (their worker died)."""
        now = self.clock.now()
        overdue = now - email_retry.OVERDUE
        with self.storage.batch() as uow:
            found = [
                *uow.email_jobs.query(
                    ("state", "==", EmailJobState.PENDING),
                    ("next_attempt_at", "<", overdue),
                    limit=500,
                ),
                # Jobs written before due times were recorded carry none.
                *uow.email_jobs.query(
                    ("state", "==", EmailJobState.PENDING),
                    ("updated_at", "<", overdue),
                    limit=500,
                ),
                *uow.email_jobs.query(
                    ("state", "==", EmailJobState.SENDING),
                    ("updated_at", "<", now - self.stale_after),
                    limit=500,
                ),
            ]
        stale = [
            job for job in found if email_jobs.is_stale(job, now, sending_after=self.stale_after)
        ]
        stale = list({job.id: job for job in stale}.values())
        requeued = []
        for job in stale:
            if self._requeue(job.id, only_if_stale=True):
                requeued.append(job.id)
        if requeued:
            _log.warning(
                "stale e-mail jobs re-enqueued",
                extra={"event": "email.swept", "count": len(requeued)},
            )
        return requeued

    def resend(self, job_id: str, *, force: bool = False) -> EmailJob:
        """Operator: give a failed/dead (or, with force, sent) job a fresh start."""
        job = self._job(job_id)
        if job is None:
            raise EmailJobUnknown()
        if job.state is EmailJobState.SENT and not force:
            raise Conflict("this e-mail was sent already; use --force to send it again")
        self._requeue(job_id, only_if_stale=False, reset_attempts=True)
        refreshed = self._job(job_id)
        assert refreshed is not None
        return refreshed

    def waiting(self) -> list[EmailJob]:
        """Jobs not delivered yet (pending, or sending now), the soonest due first:
        what an outage holds back, with each job's last error and next attempt."""
        with self.storage.batch() as uow:
            jobs = [
                job
                for state in (EmailJobState.PENDING, EmailJobState.SENDING)
                for job in uow.email_jobs.where("state", "==", state, limit=500)
            ]
        return sorted(jobs, key=lambda job: job.next_attempt_at or job.updated_at)

    def failed(self) -> list[EmailJob]:
        with self.storage.batch() as uow:
            jobs = [
                job
                for state in (EmailJobState.FAILED, EmailJobState.DEAD)
                for job in uow.email_jobs.where("state", "==", state, limit=500)
            ]
        return sorted(jobs, key=lambda job: job.updated_at, reverse=True)

    def _job(self, job_id: str) -> EmailJob | None:
        with self.storage.batch() as uow:
            return uow.email_jobs.get(job_id)

    def _requeue(self, job_id: str, *, only_if_stale: bool, reset_attempts: bool = False) -> bool:
        now = self.clock.now()

        def reset(uow: UnitOfWork) -> bool:
            job = uow.email_jobs.get(job_id)
            if job is None:
                return False
            if only_if_stale and not email_jobs.is_stale(job, now, sending_after=self.stale_after):
                return False
            if reset_attempts:
                self.auditor.record(
                    "email.resent", uow=uow, actor="operator", customer_id=job.customer_id,
                    job_id=job.id, previous_state=job.state.value,
                )  # fmt: skip
            uow.email_jobs.update(
                job_id, email_jobs.requeue(job, now, reset_attempts=reset_attempts)
            )
            return True

        if not self.storage.run(reset):
            return False
        # A fresh task name each time: Cloud Tasks refuses a used one for about an hour.
        self._queue().enqueue(job_id, attempt=int(now.timestamp()))
        return True
