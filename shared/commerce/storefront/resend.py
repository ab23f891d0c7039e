"""Re-send download links and license keys to a buyer who lost the e-mail.

The answer never depends on whether the address bought: every accepted request gets
the same 202 and the same message, and the only observable difference is mail in the
buyer's own inbox. Limits: per network (an abusive client gets 429) and per address
(over the limit the request is answered the same and silently sends nothing, so the
form cannot be used to flood somebody's inbox and cannot reveal recent requests).

**Constant work on the request path.** `request_links` does the same for every
well-formed address: the two rate-limit counts and one Cloud Task (`ResendTask`:
the address's customer id, a keyed hash, never the address), named after the customer
and the collapse window (`resend_collapse_window_seconds`), so repeats within a window
are one task. Nothing is looked up on the request path: a buyer and a stranger cause
the same reads, writes and enqueue (tests/storefront/test_resend_same_work.py counts
them; docs/performance.md has the timings). If the queue cannot be reached the answer
is 503 for everybody alike, and the client may retry.

**The worker** (`send_email` given a `{"resend": ...}` task, `handle_task`) looks the
customer and their orders up; when some are entitled, the new download grants, one
`resend` e-mail job (its id derived from customer and window, so a retried task finds
it and makes no second one) and the audit entry are committed in one transaction, and
the job is delivered right there like any e-mail job (a failure leaves it to the task's
retry and the sweeper).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from pydantic import BaseModel, ConfigDict, Field, field_validator

from commerce.audit import Auditor
from commerce.clock import Clock
from commerce.domain.ids import derived_id
from commerce.domain.models import EmailJobKind, Entitlement, Order
from commerce.email_queue import ResendQueue, ResendTask
from commerce.errors import RateLimited, TransientFailure
from commerce.grants import new_download_grant, new_email_job
from commerce.keys import KeyService, normalize_email
from commerce.logs import get_logger
from commerce.ratelimit import RateLimiter
from commerce.settings import Settings
from commerce.storefront.messages import SUPPORTED_LOCALES, message
from commerce.unit_of_work import Storage, UnitOfWork

if TYPE_CHECKING:
    from commerce.delivery.email_worker import DeliveryResult

_EMAIL_SHAPE = re.compile(r"^[^@\s]{1,64}@[^@\s]+\.[^@\s]+$")
_log = get_logger("commerce.storefront.resend")


class ResendRequest(BaseModel):
    """The re-send form: JSON or form-encoded."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    email: str = Field(max_length=254)
    locale: str | None = None

    @field_validator("email")
    @classmethod
    def _looks_like_an_address(cls, value: str) -> str:
        if not _EMAIL_SHAPE.match(value):
            raise ValueError("not an e-mail address")
        return value

    @field_validator("locale")
    @classmethod
    def _known_locale(cls, value: str | None) -> str | None:
        """Unknown locales fall back to the customer's own (never an error)."""
        if value is None:
            return None
        short = value.split("-", 1)[0].lower()
        return short if short in SUPPORTED_LOCALES else None


@dataclass(frozen=True)
class ResendAccepted:
    """The one answer every accepted request gets."""

    status: int = 202

    def as_dict(self, locale: str, product: str) -> dict[str, str]:
        return {"status": "accepted", "detail": message(locale, "resend_neutral", product=product)}


ACCEPTED = ResendAccepted()


def address_bucket(normalized_email: str) -> str:
    """Rate-limit bucket of an address (the rate limiter keys and hashes bucket names)."""
    return "resend:address:" + normalized_email


def collapse_window(now: datetime, seconds: int) -> int:
    epoch = int(now.timestamp())
    return epoch - epoch % seconds


@dataclass
class ResendLinks:
    settings: Settings
    clock: Clock
    keys: KeyService
    rate_limiter: RateLimiter
    storage: Storage
    auditor: Auditor
    queue: Callable[[], ResendQueue]
    deliver: Callable[..., DeliveryResult] | None = None

    # -- the request path: the same work for every address -----------------------------
    def request_links(self, request: ResendRequest, *, network: str) -> ResendAccepted:
        settings = self.settings
        window = settings.resend_rate_limit_window_seconds
        self.rate_limiter.check(
            "resend:network:" + network,
            settings.resend_rate_limit_per_network,
            window_seconds=window,
        )
        email = normalize_email(request.email)
        try:
            self.rate_limiter.check(
                address_bucket(email), settings.resend_rate_limit_per_address, window_seconds=window
            )
        except RateLimited:
            self.auditor.record("resend.suppressed", actor="storefront", reason="address_limit")
            return ACCEPTED
        task = ResendTask(
            customer_id=self.keys.customer_id_for(email),
            locale=request.locale,
            window=collapse_window(self.clock.now(), settings.resend_collapse_window_seconds),
        )
        try:
            self.queue().enqueue_resend(task)
        except Exception as exc:
            # Nothing was recorded: the client is told to retry (the same for everybody).
            _log.warning(
                "could not queue a re-send request",
                extra={"event": "resend.enqueue_failed"},
                exc_info=True,
            )
            raise TransientFailure("The request could not be queued; try again.") from exc
        return ACCEPTED

    # -- the worker --------------------------------------------------------------------
    def handle_task(self, task: ResendTask, *, task_retry_count: int = 0) -> DeliveryResult | None:
        """Look the customer up, queue the e-mail job if anything is entitled and deliver
        it. None: nothing to send (no such customer, nothing entitled)."""
        job_id = self.prepare(task)
        if job_id is None:
            return None
        if self.deliver is None:
            raise RuntimeError("the re-send worker needs the e-mail worker's deliver")
        return self.deliver(job_id, task_retry_count=task_retry_count)

    def prepare(self, task: ResendTask) -> str | None:
        customer_id = task.customer_id
        with self.storage.batch() as uow:
            customer = uow.customers.get(customer_id)
            orders = uow.orders.where("customer_id", "==", customer_id) if customer else []
        if customer is None:
            self.auditor.record("resend.ignored", actor="storefront", reason="no_customer")
            return None
        locale = task.locale or customer.locale
        job_id = resend_job_id(customer_id, task.window)
        queued = self._queue_job(job_id, customer_id, [order.id for order in orders], locale)
        if queued is None:
            self.auditor.record(
                "resend.ignored",
                actor="storefront",
                customer_id=customer_id,
                reason="no_entitled_orders",
            )
        return queued

    def _queue_job(
        self, job_id: str, customer_id: str, order_ids: list[str], locale: str
    ) -> str | None:
        """In one transaction: fresh grants for each entitled order, one e-mail job, audit
        (nothing when the job exists already: the task was retried)."""
        now = self.clock.now()
        ttl = timedelta(hours=self.settings.download_token_ttl_hours)

        def work(uow: UnitOfWork) -> str | None:
            if uow.email_jobs.get(job_id) is not None:
                return job_id
            orders = uow.orders.get_many(order_ids)
            entitled: list[tuple[Order, str]] = []
            licenses = {
                lic.id: lic
                for lic in uow.licenses.get_many([o.license_id for o in orders if o.license_id])
            }
            for order in orders:
                license_ = licenses.get(order.license_id or "")
                if (
                    order.customer_id == customer_id
                    and license_ is not None
                    and license_.entitlement(order.state) is Entitlement.ENTITLED
                ):
                    entitled.append((order, license_.id))
            if not entitled:
                return None
            token_ids: list[str] = []
            for order, license_id in entitled:
                grant = new_download_grant(
                    self.keys,
                    order_id=order.id,
                    license_id=license_id,
                    channel=order.channel,
                    now=now,
                    ttl=ttl,
                    max_redemptions=self.settings.download_max_redemptions,
                )
                uow.download_tokens.create(grant)
                token_ids.append(grant.token_id)
                if order.download_grant_ids is not None:  # None: written before the list
                    # Listed with the grant, so a refund reads it by key (`Fulfillment`).
                    uow.orders.update(
                        order.id,
                        {"download_grant_ids": [*order.download_grant_ids, grant.token_hash]},
                    )
            job = new_email_job(
                job_id,
                kind=EmailJobKind.RESEND,
                customer_id=customer_id,
                now=now,
                order_ids=tuple(order.id for order, _ in entitled),
                license_ids=tuple(license_id for _, license_id in entitled),
                download_token_ids=tuple(token_ids),
                locale=locale,
            )
            uow.email_jobs.create(job)
            self.auditor.record(
                "resend.queued",
                uow=uow,
                actor="storefront",
                customer_id=customer_id,
                job_id=job_id,
                order_ids=list(job.order_ids),
            )
            return job_id

        return self.storage.run(work)


def resend_job_id(customer_id: str, window: int) -> str:
    """One re-send job per customer and collapse window (a retried task finds it)."""
    return derived_id("email", EmailJobKind.RESEND.value, customer_id, str(window))
