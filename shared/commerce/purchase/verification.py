"""Ask Stripe what a paid session really is, and hold it to the catalog
(`commerce.domain.payments`).

Where the lookup happens: BEFORE the unit of work, never inside it. A network call
inside a Firestore transaction would hold the transaction open for a Stripe round trip
(up to the client's timeout and retries) and would be repeated on every contention
re-run. The verdict is a fact about the session at Stripe that does not depend on our
documents, so it is taken first and the unit of work then writes the order (fulfilled
or rejected) together with its ledger entry.

When Stripe cannot be asked (unreachable, 5xx, our key refused): `VerificationUnavailable`
(503), so the webhook answers 503 and Stripe delivers the event again later; a session
is never fulfilled unverified. When Stripe answers 404 for the session id, Stripe never
created it: the verdict is `unknown_session` (rejected, 2xx: retrying cannot help).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Protocol

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
from commerce.purchase.schemas import Outcome, PaymentProviderError, SessionFacts

if TYPE_CHECKING:
    from commerce.purchase.fulfillment import Fulfillment
    from commerce.settings import Settings


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
    """A paid session, from the webhook or reconciliation: verify with Stripe (outside
    any unit of work), then fulfil it or reject it in one unit of work with its ledger
    entry."""

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
        # A repeat of an event we recorded needs no Stripe round trip; the ledger read
        # inside the unit of work still decides.
        if self.fulfillment.already_recorded(ledger_id):
            return Change(Outcome.DUPLICATE)
        verdict, raw = self.verifier.verify(session.id, reported)
        # Stripe's answer is the truth about the session; the event is only the trigger.
        facts = SessionFacts.from_stripe(raw) if raw is not None else session
        if not verdict.accepted:
            return self.fulfillment.reject(
                facts, verdict, ledger_id=ledger_id, event_type=event_type, event_id=event_id
            )
        return self.fulfillment.fulfil(
            facts,
            giveaway=verdict.giveaway,
            ledger_id=ledger_id,
            event_type=event_type,
            event_id=event_id,
        )
