"""Ask Stripe what a paid session really is, and hold it to the catalog
(`commerce.domain.payments`).

Where the lookup happens: INSIDE the session's unit of work, after its batched read
(`Fulfillment.settle_paid`). That read (ledger entry, order, license, customer) begins
the transaction and locks those documents; a repeat of the event, or an order already
fulfilled, stops there without asking Stripe, and deliveries of one session in one
instance take turns, so a duplicate waits for the first delivery and then finds its
ledger entry instead of asking Stripe again. Only a delivery that will fulfil or
reject asks, and the order is written in the same unit with Stripe's answer.

The cost: the locks on that session's documents (its ledger entry, order and
license, and the buyer's customer document) are held during the one Stripe lookup,
so another change of those documents (a refund of the same session arriving at that
moment, the same buyer's other purchase) waits for it. The lookup's time is bounded:
it must end COMMIT_RESERVE_SHARE plus Firestore's own reserve
(`commerce.deadlines.FIRESTORE_RESERVE_SHARE`) before the request's budget does
(`deadlines.leaving`), so the commit after it still has its time; a Stripe that does
not answer by then is a 503 `dependency_timeout` with nothing written. A contention
re-run of the unit does not ask again: the answer is kept per delivery (`PaidSessions`).
Before (issue 14 as first built), the lookup came before the transaction behind a
ledger read of its own: one more Firestore round trip per first delivery, measured in
docs/performance.md ("Webhook fulfillment").

When Stripe cannot be asked (unreachable, 5xx, our key refused): `VerificationUnavailable`
(503), the unit of work rolls back, so the webhook answers 503 and Stripe delivers the
event again later; a session is never fulfilled unverified. When Stripe answers 404 for
the session id, Stripe never created it: the verdict is `unknown_session` (rejected,
2xx: retrying cannot help).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Protocol

from commerce.deadlines import FIRESTORE_RESERVE_SHARE, leaving
from commerce.domain.payments import (
    Catalog,
    LineItem,
    Rejection,
    StripeSession,
    Verdict,
    check_session,
)
from commerce.errors import TransientFailure
from commerce.purchase.ledger import Change
from commerce.purchase.schemas import PaymentProviderError, SessionFacts

if TYPE_CHECKING:
    from commerce.purchase.fulfillment import Fulfillment, Verified
    from commerce.settings import Settings


# Share of the request's budget left over when the Stripe lookup inside a unit of work
# must have ended, on top of Firestore's reserve: the commit's time (about 0.7 s of the
# webhook's 7 s; a commit on the emulator takes milliseconds).
COMMIT_RESERVE_SHARE = 0.1


class VerificationUnavailable(TransientFailure):
    code = "payment_provider_unavailable"
    default_detail = "The payment provider could not be asked about the session; retry later."


class SessionLookup(Protocol):
    @property
    def livemode(self) -> bool: ...
    def session_with_line_items(self, session_id: str) -> dict[str, Any] | None: ...


def _int(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _str(value: object) -> str | None:
    return value if isinstance(value, str) and value else None


def _mapping(value: object) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def stripe_session(raw: Mapping[str, Any]) -> StripeSession:
    """The values the rule needs from Stripe's session object (line items expanded).
    Anything missing or of the wrong type becomes None and fails the rule."""
    page = _mapping(raw.get("line_items"))
    items = []
    data = page.get("data")
    for item in data if isinstance(data, list) else []:
        item = _mapping(item)
        price = _mapping(item.get("price"))
        items.append(
            LineItem(
                price_id=_str(price.get("id")),
                quantity=_int(item.get("quantity")),
                unit_amount=_int(price.get("unit_amount")),
                currency=_str(item.get("currency")),
            )
        )
    details = _mapping(raw.get("total_details"))
    return StripeSession(
        id=str(raw.get("id", "")),
        livemode=raw.get("livemode") is True,
        mode=_str(raw.get("mode")),
        status=_str(raw.get("status")),
        payment_status=_str(raw.get("payment_status")),
        currency=_str(raw.get("currency")),
        amount_subtotal=_int(raw.get("amount_subtotal")),
        amount_total=_int(raw.get("amount_total")),
        amount_discount=_int(details.get("amount_discount")),
        line_items=tuple(items),
        more_line_items=page.get("has_more") is True or not page,
    )


class SessionVerifier:
    def __init__(self, *, settings: Settings, gateway: SessionLookup) -> None:
        self.settings = settings
        self.gateway = gateway

    def catalog(self) -> Catalog:
        prices = {self.settings.stripe_price_id} - {""}
        return Catalog(
            price_ids=frozenset(prices),
            currencies=frozenset(self.settings.payment_currencies),
            livemode=self.gateway.livemode,
            allow_giveaways=self.settings.allow_giveaways,
        )

    def verify(
        self, session_id: str, reported: Mapping[str, Any] | None = None
    ) -> tuple[Verdict, Mapping[str, Any] | None]:
        """(verdict, Stripe's session or None when Stripe never created it).

        `reported`: the session as the event (or a list) carried it. It is signed by
        Stripe too, so it must pass the same rule: its own fields (amount, currency,
        mode, livemode, payment status, discount when present) over the retrieved line
        items. Both must pass; Stripe's retrieved answer is checked first."""
        try:
            catalog = self.catalog()
            raw = self.gateway.session_with_line_items(session_id)
        except PaymentProviderError as exc:
            raise VerificationUnavailable() from exc
        if raw is None:
            return Verdict(Rejection.UNKNOWN_SESSION, "Stripe answered 404"), None
        verdict = check_session(stripe_session(raw), catalog)
        if verdict.accepted and reported is not None:
            merged = {**raw, **{k: v for k, v in reported.items() if k != "line_items"}}
            as_reported = check_session(stripe_session(merged), catalog)
            if not as_reported.accepted:
                detail = f"the event disagrees: {as_reported.detail}"
                return Verdict(as_reported.rejection, detail), raw
        return verdict, raw


class PaidSessions:
    """A paid session, from the webhook or reconciliation: verified with Stripe inside
    its unit of work, then fulfilled or rejected in that unit with its ledger entry
    (`Fulfillment.settle_paid`)."""

    def __init__(self, *, verifier: SessionVerifier, fulfillment: Fulfillment) -> None:
        self.verifier = verifier
        self.fulfillment = fulfillment

    def settle(
        self,
        session: SessionFacts,
        *,
        ledger_id: str,
        event_type: str,
        event_id: str | None,
        reported: Mapping[str, Any] | None = None,
    ) -> Change:
        """`reported`: the session object as the event or list carried it."""
        answers: list[Verified] = []

        def verified() -> Verified:
            """Stripe is asked at most once per delivery: a contention re-run of the unit
            of work gets the first answer. A failure raises out of the unit (rolled back)."""
            if not answers:
                with leaving(FIRESTORE_RESERVE_SHARE + COMMIT_RESERVE_SHARE):
                    verdict, raw = self.verifier.verify(session.id, reported)
                # Stripe's answer is the truth about the session; the event is only the
                # trigger (a session Stripe never created keeps the event's facts).
                answers.append(
                    (verdict, SessionFacts.from_stripe(raw) if raw is not None else session)
                )
            return answers[0]

        return self.fulfillment.settle_paid(
            session, verified, ledger_id=ledger_id, event_type=event_type, event_id=event_id
        )
