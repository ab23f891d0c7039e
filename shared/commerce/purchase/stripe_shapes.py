"""The shapes of what Stripe sends, checked before anything is compared or stored.

Pure: no SDK imports. Two checks:

- `parse_signature_header`: the `Stripe-Signature` header as Stripe writes it
  (`t=<unix seconds>,v1=<64 hex>[,v1=...][,v0=...]`), printable ASCII, one `t`, at
  least one `v1`, bounded length. Anything else is a 400 `invalid_signature` here,
  before the official library sees it (non-ASCII text made its constant-time compare
  raise `TypeError`: a 500 that Stripe would retry for three days). The library checks
  that a timestamp is not too old; `check_not_future` refuses one more than
  `SIGNATURE_FUTURE_SKEW_SECONDS` ahead of our clock.
- `check_event_ids`: the ids that become Firestore document ids or query values (the
  event id, a Checkout Session id, a PaymentIntent id) and the charge and dispute ids
  of the events we act on must have Stripe's shape: a known prefix, then letters,
  digits and underscores, at most `MAX_ID_LENGTH` characters in all (Stripe: "never
  more than 255"). A slash or an over-long id would make Firestore raise. The
  prefixes are those of Stripe's published fixtures (`openapi/fixtures3.json`);
  `py_` is the charge of a non-card payment and `du_` a dispute of one.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from commerce.errors import InvalidSignature
from commerce.purchase.schemas import InvalidEvent

SIGNATURE_FUTURE_SKEW_SECONDS = 300
MAX_SIGNATURE_HEADER = 2048  # t= plus a few v1/v0 pairs while a secret is rolled
MAX_ID_LENGTH = 255

EVENT_PREFIXES = ("evt_",)
CHECKOUT_SESSION_PREFIXES = ("cs_test_", "cs_live_")
PAYMENT_INTENT_PREFIXES = ("pi_",)
CHARGE_PREFIXES = ("ch_", "py_")
DISPUTE_PREFIXES = ("dp_", "du_")
FRAUD_WARNING_PREFIXES = ("issfr_",)

_ITEM = re.compile(r"([a-z][a-z0-9]*)=([\x21-\x2b\x2d-\x7e]+)")  # printable, no comma
_TIMESTAMP = re.compile(r"[0-9]{1,12}")
_V1 = re.compile(r"[0-9a-f]{64}")
_ID_TAIL = re.compile(r"[A-Za-z0-9_]+")

_MALFORMED = "The Stripe-Signature header is malformed."


@dataclass(frozen=True)
class SignatureHeader:
    timestamp: int
    signatures: tuple[str, ...]


def parse_signature_header(header: str) -> SignatureHeader:
    """`t=...,v1=...` -> its parts; raises InvalidSignature for anything else."""
    if len(header) > MAX_SIGNATURE_HEADER or not header.isascii():
        raise InvalidSignature(_MALFORMED)
    timestamps: list[str] = []
    signatures: list[str] = []
    for item in header.split(","):
        match = _ITEM.fullmatch(item)
        if match is None:
            raise InvalidSignature(_MALFORMED)
        scheme, value = match.groups()
        if scheme == "t":
            timestamps.append(value)
        elif scheme == "v1":
            if not _V1.fullmatch(value):
                raise InvalidSignature(_MALFORMED)
            signatures.append(value)
    if len(timestamps) != 1 or not _TIMESTAMP.fullmatch(timestamps[0]) or not signatures:
        raise InvalidSignature(_MALFORMED)
    return SignatureHeader(int(timestamps[0]), tuple(signatures))


def check_not_future(header: SignatureHeader, now: float) -> None:
    if header.timestamp > now + SIGNATURE_FUTURE_SKEW_SECONDS:
        raise InvalidSignature("The signature is dated in the future.")


class MalformedStripeId(InvalidEvent):
    """A validly signed event whose ids cannot be Stripe's (nothing is stored)."""

    code = "invalid_stripe_id"
    default_detail = "The event carries an id that does not have Stripe's shape."

    def __init__(self, field: str) -> None:
        self.field = field
        super().__init__(f"{field} does not have the shape of a Stripe id.")


def is_stripe_id(value: object, prefixes: tuple[str, ...]) -> bool:
    return (
        isinstance(value, str)
        and len(value) <= MAX_ID_LENGTH
        and any(value.startswith(p) and len(value) > len(p) for p in prefixes)
        and _ID_TAIL.fullmatch(value) is not None
    )


def _require(value: object, prefixes: tuple[str, ...], field: str) -> None:
    if not is_stripe_id(value, prefixes):
        raise MalformedStripeId(field)


def _optional(value: object, prefixes: tuple[str, ...], field: str) -> None:
    if isinstance(value, Mapping):  # expanded object
        value = value.get("id")
    if value is not None:
        _require(value, prefixes, field)


def check_event_ids(event: Mapping[str, Any]) -> None:
    """Raise MalformedStripeId unless every id we may store or look up has its shape.

    Only the event id is checked for event types we merely record; their objects are
    never read.
    """
    _require(event.get("id"), EVENT_PREFIXES, "id")
    event_type = event.get("type")
    data = event.get("data")
    obj = data.get("object") if isinstance(data, Mapping) else None
    if not isinstance(event_type, str) or not isinstance(obj, Mapping):
        return  # nothing is read from it; the dispatcher refuses what it needs
    if event_type.startswith("checkout.session."):
        _require(obj.get("id"), CHECKOUT_SESSION_PREFIXES, "data.object.id")
        _optional(obj.get("payment_intent"), PAYMENT_INTENT_PREFIXES, "data.object.payment_intent")
    elif event_type == "charge.refunded":
        _require(obj.get("id"), CHARGE_PREFIXES, "data.object.id")
        _optional(obj.get("payment_intent"), PAYMENT_INTENT_PREFIXES, "data.object.payment_intent")
    elif event_type.startswith("charge.dispute."):
        _require(obj.get("id"), DISPUTE_PREFIXES, "data.object.id")
        _optional(obj.get("charge"), CHARGE_PREFIXES, "data.object.charge")
        _optional(obj.get("payment_intent"), PAYMENT_INTENT_PREFIXES, "data.object.payment_intent")
    elif event_type.startswith("radar.early_fraud_warning."):
        _require(obj.get("id"), FRAUD_WARNING_PREFIXES, "data.object.id")
        _optional(obj.get("charge"), CHARGE_PREFIXES, "data.object.charge")
        _optional(obj.get("payment_intent"), PAYMENT_INTENT_PREFIXES, "data.object.payment_intent")
