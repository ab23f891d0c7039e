"""Orders that need a person: paid and fulfilled, but without a usable e-mail address.

Fulfillment never holds a paid order back for its address: the license is minted, the
order is flagged (`Order.needs_attention`), audited (`order.needs_attention`) and an
ERROR line (`fulfillment.email_unusable`) alerts. Support lists these orders
(`commerce orders attention`) and sets the address (`commerce orders set-email`): one
unit of work creates the customer, links order and license to it, clears the flag,
audits `order.email_set` and creates the order's fulfillment e-mail job, whose id is
derived from the order, so however often the command runs, at most one job (and one
e-mail) exists.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from commerce.domain.email_address import AddressProblem, check_address
from commerce.domain.ids import fulfillment_job_id, license_id_for
from commerce.domain.models import Customer, EmailJobKind, Order, mask_email
from commerce.domain.orders import OrderState
from commerce.errors import Conflict, InvalidRequest, NotFound
from commerce.grants import new_email_job
from commerce.keys import normalize_email
from commerce.logs import get_logger

if TYPE_CHECKING:
    from commerce.audit import Auditor
    from commerce.clock import Clock
    from commerce.email_queue import EmailQueue
    from commerce.keys import KeyService
    from commerce.unit_of_work import Storage, UnitOfWork

_log = get_logger("commerce.purchase.attention")
REASONS = tuple(problem.value for problem in AddressProblem)


class OrderUnknown(NotFound):
    code = "order_unknown"
    default_detail = "There is no order with this id."


class InvalidEmail(InvalidRequest):
    code = "invalid_email"
    default_detail = "This is not a usable e-mail address."


class NothingToFix(Conflict):
    code = "order_has_email"
    default_detail = "This order does not need an e-mail address (it has one already)."


@dataclass(frozen=True)
class EmailSet:
    order_id: str
    email_masked: str | None
    email_job_id: str
    enqueued: bool


class OrderAttention:
    def __init__(
        self,
        *,
        storage: Storage,
        keys: KeyService,
        auditor: Auditor,
        clock: Clock,
        email_queue: Callable[[], EmailQueue],
    ) -> None:
        self.storage = storage
        self.keys = keys
        self.auditor = auditor
        self.clock = clock
        self._email_queue = email_queue

    def pending(self, *, limit: int = 500) -> list[Order]:
        """Orders flagged for attention, newest first."""
        with self.storage.batch() as uow:
            orders = [
                order
                for reason in REASONS
                for order in uow.orders.where("needs_attention", "==", reason, limit=limit)
            ]
        return sorted(orders, key=lambda order: order.updated_at, reverse=True)[:limit]

    def set_email(self, order_id: str, email: str, *, actor: str = "support") -> EmailSet:
        """Give a flagged order its buyer's address and send its e-mail, once."""
        address = check_address(email).address
        if address is None:
            raise InvalidEmail()
        customer_id = self.keys.customer_id_for(address)
        job_id = fulfillment_job_id(order_id)
        license_id = license_id_for(order_id)

        def change(uow: UnitOfWork) -> EmailSet:
            found = uow.read(
                uow.orders.key(order_id),
                uow.licenses.key(license_id),
                uow.customers.key(customer_id),
                uow.email_jobs.key(job_id),
            )
            order = found[uow.orders.key(order_id)]
            license_ = found[uow.licenses.key(license_id)]
            customer = found[uow.customers.key(customer_id)]
            if order is None:
                raise OrderUnknown()
            if order.needs_attention is None or found[uow.email_jobs.key(job_id)] is not None:
                raise NothingToFix()
            if order.state is not OrderState.FULFILLED or license_ is None:
                raise Conflict(
                    f"the order is {order.state.value}: it has nothing to send "
                    "(the address is not set)"
                )
            now = self.clock.now()
            self._link(uow, now, order, customer, customer_id, address)
            uow.licenses.update(license_id, {"customer_id": customer_id, "updated_at": now})
            uow.email_jobs.create(
                new_email_job(
                    job_id,
                    kind=EmailJobKind.FULFILLMENT,
                    customer_id=customer_id,
                    now=now,
                    order_ids=(order_id,),
                    license_ids=(license_id,),
                    download_token_ids=order.download_token_ids,
                    locale=order.locale,
                )
            )
            self.auditor.record(
                "order.email_set", uow=uow, actor=actor, order_id=order_id,
                license_id=license_id, customer_id=customer_id, email_job_id=job_id,
                previous_reason=order.needs_attention,
            )  # fmt: skip
            return EmailSet(order_id, mask_email(address), job_id, enqueued=False)

        result = self.storage.run(change)
        _log.info(
            "support set the buyer's e-mail address",
            extra={"event": "order.email_set", "order_id": order_id, "job_id": job_id},
        )
        try:
            self._email_queue().enqueue(job_id)
        except Exception as exc:  # the job is committed: the sweeper picks it up
            _log.warning(
                "e-mail job not enqueued; the sweeper will pick it up",
                extra={
                    "event": "email.enqueue_failed",
                    "job_id": job_id,
                    "order_id": order_id,
                    "error_type": type(exc).__name__,
                },
            )
            return result
        return EmailSet(result.order_id, result.email_masked, job_id, enqueued=True)

    @staticmethod
    def _link(
        uow: UnitOfWork,
        now: datetime,
        order: Order,
        customer: Customer | None,
        customer_id: str,
        address: str,
    ) -> None:
        uow.customers.put(
            Customer.linked_to(
                customer,
                customer_id=customer_id,
                email=normalize_email(address),
                locale=order.locale,
                order_id=order.id,
                now=now,
            )
        )
        uow.orders.update(
            order.id,
            {
                "customer_id": customer_id,
                "email_masked": mask_email(address),
                "needs_attention": None,
                "updated_at": now,
            },
        )
