"""What the success page may learn about an order: its state and the masked address.

Read-only, and deliberately narrow: never the key, the token, the full address or the
amounts. The Checkout Session id in the success URL is the only credential, so its
shape is checked before any lookup (no storage read for junk).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from commerce.domain.models import Order
from commerce.domain.orders import OrderState
from commerce.errors import InvalidRequest

if TYPE_CHECKING:
    from commerce.unit_of_work import Storage

# Stripe's ids are `cs_test_...` / `cs_live_...`; letters, digits and underscores only.
SESSION_ID_SHAPE = re.compile(r"^cs_[A-Za-z0-9_]{8,250}$")


class OrderLookup(Protocol):
    def get(self, doc_id: str) -> Order | None: ...


class InvalidSessionId(InvalidRequest):
    code = "invalid_session_id"
    default_detail = "session_id must be a Stripe Checkout Session id (cs_...)."


@dataclass(frozen=True)
class OrderStatus:
    state: str
    email_masked: str | None

    def as_dict(self) -> dict[str, str | None]:
        return {"state": self.state, "email_masked": self.email_masked}


def check_session_id(session_id: str | None) -> str:
    if not session_id or not SESSION_ID_SHAPE.match(session_id):
        raise InvalidSessionId()
    return session_id


def order_status(orders: OrderLookup, session_id: str | None) -> OrderStatus:
    """The public status of the order made by Checkout Session `session_id`.

    An order the webhook has not recorded yet reads as `pending`: the buyer is
    typically back on the success page before Stripe's event arrives, and answering
    "unknown" differently would only tell a prober which ids exist.
    """
    order = orders.get(check_session_id(session_id))
    if order is None:
        return OrderStatus(OrderState.PENDING.value, None)
    return OrderStatus(order.state.value, order.email_masked)


@dataclass(frozen=True)
class OrderStatusService:
    """`order_status` over the storage port: one read of committed state, no
    transaction, and none at all for a malformed id."""

    storage: Storage

    def status(self, session_id: str | None) -> OrderStatus:
        checked = check_session_id(session_id)
        with self.storage.batch() as uow:
            return order_status(uow.orders, checked)
