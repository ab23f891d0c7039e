"""Re-send download links and license keys to a buyer who lost the e-mail.

The answer never depends on whether the address bought: every accepted request gets
the same 202 and the same message, and the only observable difference is mail in the
buyer's own inbox. Limits: per network (an abusive client gets 429) and per address
(over the limit the request is answered the same and silently sends nothing, so the
form cannot be used to flood somebody's inbox and cannot reveal recent requests).

When the address has entitled orders, the new download grants, one `resend` e-mail
job and the audit entry are committed in one transaction; the job is then handed to
the e-mail queue. If that hand-over fails the job stays `pending` and the sweeper
enqueues it later, so the buyer still gets the mail.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from dataclasses import dataclass
from datetime import timedelta

from pydantic import BaseModel, ConfigDict, Field, field_validator

from commerce.audit import Auditor
from commerce.bootstrap import Container
from commerce.clock import Clock
from commerce.domain.ids import derived_id
from commerce.domain.models import EmailJobKind, Entitlement, Order
from commerce.email_queue import EmailQueue
from commerce.errors import RateLimited
from commerce.grants import new_download_grant, new_email_job
from commerce.keys import KeyService, normalize_email
from commerce.logs import get_logger
from commerce.ratelimit import RateLimiter
from commerce.settings import Settings
from commerce.storefront.messages import SUPPORTED_LOCALES, message
from commerce.unit_of_work import Storage, UnitOfWork

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
    """Rate-limit bucket of an address: a hash, so the address is not a counter's name."""
    return "resend:address:" + hashlib.sha256(normalized_email.encode()).hexdigest()


@dataclass
class ResendLinks:
    settings: Settings
    clock: Clock
    keys: KeyService
    rate_limiter: RateLimiter
    storage: Storage
    auditor: Auditor
    email_queue: EmailQueue

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

        customer_id = self.keys.customer_id_for(email)
        with self.storage.batch() as uow:
            customer = uow.customers.get(customer_id)
            orders = uow.orders.where("customer_id", "==", customer_id) if customer else []
        if customer is None:
            self.auditor.record("resend.ignored", actor="storefront", reason="no_customer")
            return ACCEPTED
        candidates = [order.id for order in orders]
        locale = request.locale or customer.locale
        job_id = self._queue_job(customer_id, candidates, locale)
        if job_id is None:
            self.auditor.record(
                "resend.ignored",
                actor="storefront",
                customer_id=customer_id,
                reason="no_entitled_orders",
            )
            return ACCEPTED
        try:
            self.email_queue.enqueue(job_id)
        except Exception:
            # The job is committed and pending: the sweeper enqueues it later.
            _log.warning(
                "could not enqueue re-send job; the sweeper will retry",
                extra={"event": "resend.enqueue_failed", "job_id": job_id},
                exc_info=True,
            )
        return ACCEPTED

    def _queue_job(self, customer_id: str, order_ids: list[str], locale: str) -> str | None:
        """In one transaction: fresh grants for each entitled order, one e-mail job, audit."""
        now = self.clock.now()
        ttl = timedelta(hours=self.settings.download_token_ttl_hours)
        job_id = derived_id("email", EmailJobKind.RESEND.value, customer_id, secrets.token_hex(16))

        def work(uow: UnitOfWork) -> str | None:
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


def resend_links_service(container: Container) -> ResendLinks:
    """Wire the service from the composition root's container."""
    return ResendLinks(
        settings=container.settings,
        clock=container.clock,
        keys=container.keys,
        rate_limiter=container.rate_limiter,
        storage=container.storage,
        auditor=container.auditor,
        email_queue=container.email_queue,
    )
