"""Was this Checkout Session paid for what we sell? The one rule, on plain values.

A validly signed `checkout.session.completed` only proves that Stripe saw a session
complete; it says nothing about what was bought. A session created outside our checkout
(a payment link, the Dashboard, another integration on the account) can carry our
`metadata.product_id` with another price, 1 JPY, a subscription or a 100 % coupon. So
fulfillment first retrieves the session from Stripe with its line items and holds it
to the catalog here:

- livemode matches the secret key's mode (a live session never fulfils on a test stack
  and the other way round);
- `mode=payment`, and Stripe reports it paid (`paid`, or `no_payment_required`);
- exactly one line item, of a configured price, quantity 1 (one license per order);
- the session's and the line item's currency are a configured currency;
- the amounts are whole, non-negative, and `amount_total` is the price less the
  discount Stripe reports (`total_details.amount_discount`), nothing else: no tax or
  shipping is configured in Checkout, so anything else is a session we did not make
  (enabling Stripe Tax with tax-exclusive prices needs this rule extended first);
- a total of 0 (a 100 % promotion code) is a giveaway: fulfilled only when the shop
  allows giveaways.

Pure: values in, a verdict out; `purchase/verification.py` builds the values from
Stripe's answer.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

PAID_STATUSES = frozenset({"paid", "no_payment_required"})


class Rejection(StrEnum):
    """Why a paid session is not fulfilled (stored on the order, audited, logged)."""

    UNKNOWN_SESSION = "unknown_session"  # Stripe never created it (retrieve: 404)
    LIVEMODE_MISMATCH = "livemode_mismatch"
    WRONG_MODE = "wrong_mode"
    NOT_PAID = "not_paid"
    WRONG_PRICE = "wrong_price"
    WRONG_QUANTITY = "wrong_quantity"
    WRONG_CURRENCY = "wrong_currency"
    WRONG_AMOUNT = "wrong_amount"
    GIVEAWAY_NOT_ALLOWED = "giveaway_not_allowed"


@dataclass(frozen=True)
class LineItem:
    price_id: str | None
    quantity: int | None
    unit_amount: int | None
    currency: str | None


@dataclass(frozen=True)
class StripeSession:
    """What Stripe answers about a session (retrieved with `line_items` expanded)."""

    id: str
    livemode: bool
    mode: str | None
    status: str | None
    payment_status: str | None
    currency: str | None
    amount_subtotal: int | None
    amount_total: int | None
    amount_discount: int | None
    line_items: tuple[LineItem, ...]
    more_line_items: bool = False  # the expanded list had more pages


@dataclass(frozen=True)
class Catalog:
    """What the shop sells and accepts."""

    price_ids: frozenset[str]
    currencies: frozenset[str]
    livemode: bool
    allow_giveaways: bool


@dataclass(frozen=True)
class Verdict:
    rejection: Rejection | None
    detail: str = ""
    giveaway: bool = False

    @property
    def accepted(self) -> bool:
        return self.rejection is None


def _reject(rejection: Rejection, detail: str) -> Verdict:
    return Verdict(rejection, detail)


def check_session(session: StripeSession, catalog: Catalog) -> Verdict:
    """The verdict on a session Stripe reports; the first failed rule wins."""
    if session.livemode is not catalog.livemode:
        mode = "live" if session.livemode else "test"
        return _reject(Rejection.LIVEMODE_MISMATCH, f"a {mode}-mode session on the other mode")
    if session.mode != "payment":
        return _reject(Rejection.WRONG_MODE, f"mode={session.mode}")
    if session.status != "complete" or session.payment_status not in PAID_STATUSES:
        return _reject(
            Rejection.NOT_PAID, f"status={session.status} payment_status={session.payment_status}"
        )
    if session.more_line_items or len(session.line_items) != 1:
        count = f"{len(session.line_items)}{'+' if session.more_line_items else ''}"
        return _reject(Rejection.WRONG_PRICE, f"{count} line items, expected 1")
    (item,) = session.line_items
    if item.price_id not in catalog.price_ids:
        return _reject(Rejection.WRONG_PRICE, f"price {item.price_id} is not in the catalog")
    if item.quantity != 1:
        return _reject(Rejection.WRONG_QUANTITY, f"quantity {item.quantity}")
    currencies = {session.currency, item.currency}
    if not currencies <= catalog.currencies:
        shown = ",".join(sorted(str(c) for c in currencies))
        return _reject(Rejection.WRONG_CURRENCY, f"currency {shown}")
    price, total = item.unit_amount, session.amount_total
    discount = session.amount_discount or 0
    if price is None or total is None or price < 0 or total < 0 or not 0 <= discount <= price:
        return _reject(Rejection.WRONG_AMOUNT, f"price={price} total={total} discount={discount}")
    if session.amount_subtotal != price or total != price - discount:
        return _reject(
            Rejection.WRONG_AMOUNT,
            f"total {total} (subtotal {session.amount_subtotal}) != price {price} - discount "
            f"{discount}",
        )
    if total == 0:
        if not catalog.allow_giveaways:
            return _reject(Rejection.GIVEAWAY_NOT_ALLOWED, "a free order (100 % discount)")
        return Verdict(None, "a free order (100 % discount), giveaways allowed", giveaway=True)
    if session.payment_status != "paid":
        return _reject(Rejection.NOT_PAID, f"payment_status={session.payment_status} for {total}")
    return Verdict(None)
