"""The order lifecycle as an explicit state machine.

    (new) -> pending -> paid -> fulfilled
    pending -> failed             (async payment failed)
    paid | fulfilled -> refunded  (full refund)
    paid | fulfilled -> disputed  (chargeback opened: downloads suspended)
    disputed -> fulfilled         (dispute won: restored)
    disputed -> revoked           (dispute lost)
    fulfilled -> revoked          (manual revocation by support)
    (new) | pending | paid -> rejected  (the paid session does not match the catalog:
                                         wrong price, amount, currency, mode, livemode,
                                         unknown to Stripe, or a giveaway not allowed)
    rejected -> refunded | revoked      (the shop refunds it, or a chargeback is lost)
    (new) | pending -> refunded | revoked  (refund / lost dispute seen before payment
                                            events arrived: blocks later fulfillment)

Anything else is refused with InvalidTransition.
"""

from __future__ import annotations

from enum import StrEnum

from commerce.errors import InvalidTransition


class OrderState(StrEnum):
    PENDING = "pending"
    PAID = "paid"
    FULFILLED = "fulfilled"
    FAILED = "failed"
    REFUNDED = "refunded"
    DISPUTED = "disputed"
    REVOKED = "revoked"
    REJECTED = "rejected"


ALLOWED_TRANSITIONS: dict[OrderState | None, frozenset[OrderState]] = {
    None: frozenset(
        {
            OrderState.PENDING,
            OrderState.PAID,
            OrderState.REFUNDED,
            OrderState.REVOKED,
            OrderState.REJECTED,
        }
    ),
    OrderState.PENDING: frozenset(
        {
            OrderState.PAID,
            OrderState.FAILED,
            OrderState.REFUNDED,
            OrderState.DISPUTED,
            OrderState.REVOKED,
            OrderState.REJECTED,
        }
    ),
    OrderState.PAID: frozenset(
        {
            OrderState.FULFILLED,
            OrderState.REFUNDED,
            OrderState.DISPUTED,
            OrderState.REVOKED,
            OrderState.REJECTED,
        }
    ),
    OrderState.FULFILLED: frozenset({OrderState.REFUNDED, OrderState.DISPUTED, OrderState.REVOKED}),
    OrderState.DISPUTED: frozenset({OrderState.FULFILLED, OrderState.REVOKED, OrderState.REFUNDED}),
    OrderState.FAILED: frozenset(),
    OrderState.REFUNDED: frozenset(),
    OrderState.REVOKED: frozenset(),
    OrderState.REJECTED: frozenset({OrderState.REFUNDED, OrderState.REVOKED}),
}

# States in which the buyer may download and the license validates.
ENTITLED_STATES = frozenset({OrderState.FULFILLED})
# States that forbid ever issuing a license for the order.
BLOCKING_STATES = frozenset(
    {OrderState.REFUNDED, OrderState.REVOKED, OrderState.FAILED, OrderState.REJECTED}
)


def can_transition(current: OrderState | None, target: OrderState) -> bool:
    return target in ALLOWED_TRANSITIONS[current]


def transition(current: OrderState | None, target: OrderState) -> OrderState:
    if not can_transition(current, target):
        name = current.value if current else "(new)"
        raise InvalidTransition(f"an order cannot go from {name} to {target.value}")
    return target


def is_entitled(state: OrderState) -> bool:
    return state in ENTITLED_STATES
