"""Whether a buyer's e-mail address can be used, decided once, where it arrives.

The syntax check is `email-validator`'s (RFC 5321/5322 rules for the local part and a
real domain-name check), not a pattern of ours; deliverability (DNS) is not checked:
no network call on the payment path, and Stripe has already taken the address.
Addresses that need SMTPUTF8 (non-ASCII local part) are refused too: neither mail
path (smtplib to maildev, SendGrid) is proven with them, and a refused address is
flagged for support instead of failing at send time.

An address is unusable when it is missing (`email_missing`) or when it is not a valid
address, including any control character (CR, LF, NUL...) anywhere in it
(`email_invalid`). Only a usable address becomes a customer, a mask or an e-mail.
"""

from __future__ import annotations

import functools
import unicodedata
from dataclasses import dataclass
from enum import StrEnum

MAX_LENGTH = 254  # RFC 5321 path limit; the validator checks it too


class AddressProblem(StrEnum):
    """Why an order needs a person: the values of `Order.needs_attention`."""

    MISSING = "email_missing"
    INVALID = "email_invalid"


@dataclass(frozen=True)
class CheckedAddress:
    """`address` is the validator's normalized form when usable; `problem` otherwise."""

    address: str | None
    problem: AddressProblem | None

    @property
    def usable(self) -> bool:
        return self.address is not None


def has_control_characters(text: str) -> bool:
    """Any control, format, private-use or unassigned character (Unicode categories
    C*: CR, LF, TAB, NUL, DEL, zero-width...) or line/paragraph separator (Zl, Zp)."""
    return any(
        unicodedata.category(ch)[0] == "C" or unicodedata.category(ch) in ("Zl", "Zp")
        for ch in text
    )


def check_address(raw: object) -> CheckedAddress:
    """The address as the validator normalizes it, or why it cannot be used."""
    if isinstance(raw, str):
        return _check_text(raw)
    if raw is None:
        return CheckedAddress(None, AddressProblem.MISSING)
    return CheckedAddress(None, AddressProblem.INVALID)


# The validator (with IDNA) took about a quarter of a webhook delivery's CPU, asked six
# times per fulfilment for the same address (customer id, attention flag, and the
# order's mask, twice); the answer depends on the text alone, so recent answers are
# kept (a few hundred addresses of this instance's latest buyers, in memory only).
@functools.lru_cache(maxsize=256)
def _check_text(raw: str) -> CheckedAddress:
    if not raw.strip():
        return CheckedAddress(None, AddressProblem.MISSING)
    if len(raw) > MAX_LENGTH or has_control_characters(raw):
        return CheckedAddress(None, AddressProblem.INVALID)
    # Imported here, not at the top: email-validator compiles its RFC patterns at import
    # (about 14 ms of CPU), which a function that never checks an address (download,
    # license_api, order_status...) would otherwise pay on every cold start through the
    # domain models (docs/performance.md, "Cold start").
    from email_validator import EmailNotValidError, validate_email

    try:
        valid = validate_email(raw.strip(), check_deliverability=False, allow_smtputf8=False)
    except EmailNotValidError:
        return CheckedAddress(None, AddressProblem.INVALID)
    # ASCII form (IDN domains in punycode): what SMTP and SendGrid take without SMTPUTF8.
    return CheckedAddress(valid.ascii_email or valid.normalized, None)


def usable_address(raw: object) -> str | None:
    """The normalized address, or None when it cannot be used."""
    return check_address(raw).address
