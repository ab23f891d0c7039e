"""The buyer address check (email-validator, no DNS) and the mask shown on pages."""

from __future__ import annotations

import unicodedata

import pytest
from hypothesis import given
from hypothesis import strategies as st

from commerce.delivery.mailers import MailPermanent, OutgoingEmail, check_address, to_mime
from commerce.domain.email_address import AddressProblem
from commerce.domain.email_address import check_address as check_buyer
from commerce.domain.models import mask_email


def is_control(ch: str) -> bool:
    return unicodedata.category(ch)[0] == "C" or unicodedata.category(ch) in ("Zl", "Zp")


@pytest.mark.parametrize(
    ("raw", "address"),
    [
        ("jane@example.com", "jane@example.com"),
        ("  Jane.Buyer@Example.COM ", "Jane.Buyer@example.com"),
        ("jane+shop@sub.example.co.uk", "jane+shop@sub.example.co.uk"),
        ("jane@exämple.com", "jane@xn--exmple-cua.com"),
    ],
)
def test_usable_addresses_come_back_normalized(raw: str, address: str) -> None:
    checked = check_buyer(raw)
    assert checked.usable
    assert checked.address == address
    assert checked.problem is None


@pytest.mark.parametrize(
    ("raw", "problem"),
    [
        (None, AddressProblem.MISSING),
        ("", AddressProblem.MISSING),
        ("   ", AddressProblem.MISSING),
        (42, AddressProblem.INVALID),
        ("jane@example.com\r\n", AddressProblem.INVALID),
        ("jane@example.com\r\nBcc: all@example.com", AddressProblem.INVALID),
        ("ja\tne@example.com", AddressProblem.INVALID),
        ("jane@example.com\u200b", AddressProblem.INVALID),
        ("jäne@example.com", AddressProblem.INVALID),  # needs SMTPUTF8
        ("jane@localhost", AddressProblem.INVALID),
        ("jane@example", AddressProblem.INVALID),
        ("jane@@example.com", AddressProblem.INVALID),
        ("a" * 250 + "@example.com", AddressProblem.INVALID),
    ],
)
def test_unusable_addresses_say_why(raw: object, problem: AddressProblem) -> None:
    checked = check_buyer(raw)
    assert not checked.usable
    assert checked.address is None
    assert checked.problem is problem


@given(st.text(max_size=80))
def test_a_mask_never_holds_a_control_character(raw: str) -> None:
    assert not any(is_control(ch) for ch in mask_email(raw))


@given(
    st.text(max_size=40), st.sampled_from("\r\n\x00\x07\x1b\x7f\u2028\ufeff"), st.text(max_size=40)
)
def test_no_address_with_a_control_character_is_usable(
    before: str, control: str, after: str
) -> None:
    assert check_buyer(f"{before}jane{control}@example.com{after}").address is None
    assert check_buyer(f"jane@example.com{control}{before}").address is None


@given(st.emails())
def test_every_usable_address_is_free_of_control_characters_and_masks_cleanly(
    raw: str,
) -> None:
    address = check_buyer(raw).address
    if address is not None:
        assert not any(is_control(ch) for ch in address)
        assert mask_email(address).endswith("@" + address.partition("@")[2])


def test_the_mailer_refuses_a_recipient_with_line_breaks_as_a_permanent_failure() -> None:
    message = OutgoingEmail(
        sender="GENX <sales@genx.example>",
        to="jane@example.com\r\nBcc: all@example.com",
        subject="Your license",
        text="key",
        html="<p>key</p>",
    )
    with pytest.raises(MailPermanent, match="not valid"):
        check_address(message.to)
    with pytest.raises(MailPermanent, match="not valid"):
        to_mime(message)
    assert to_mime(message.__class__(**{**message.__dict__, "to": "jane@example.com"}))["To"] == (
        "jane@example.com"
    )
