import base64
from datetime import UTC, datetime, timedelta

import pytest

from commerce.domain import tokens
from commerce.domain.tokens import (
    DownloadGrant,
    DownloadTokenExhausted,
    DownloadTokenExpired,
    DownloadTokenRevoked,
)

NOW = datetime(2026, 5, 1, 10, 0, tzinfo=UTC)


def grant(**overrides):
    token = tokens.generate_token()
    values = dict(
        token=token,
        token_id="tid",
        order_id="cs_1",
        license_id="lic_1",
        channel="stable",
        now=NOW,
        ttl=timedelta(hours=72),
        max_redemptions=3,
    )
    values.update(overrides)
    return token, DownloadGrant.issue(**values)


def test_tokens_carry_256_bits_and_are_url_safe():
    seen = set()
    for _ in range(100):
        token = tokens.generate_token()
        assert tokens.looks_like_token(token)
        raw = base64.urlsafe_b64decode(token + "=")
        assert len(raw) * 8 >= 256
        seen.add(token)
    assert len(seen) == 100


def test_derived_tokens_are_reproducible_url_safe_and_secret_dependent():
    token = tokens.derive_token(b"k" * 32, "tid-1")
    assert tokens.looks_like_token(token)
    assert tokens.derive_token(b"k" * 32, "tid-1") == token
    assert tokens.derive_token(b"k" * 32, "tid-2") != token
    assert tokens.derive_token(b"j" * 32, "tid-1") != token


def test_grant_stores_only_the_hash():
    token, issued = grant()
    assert issued.token_hash == tokens.hash_token(token)
    assert token not in repr(issued)
    assert issued.expires_at == NOW + timedelta(hours=72)


def test_grant_is_redeemable_until_it_expires():
    _, issued = grant()
    issued.check_redeemable(NOW + timedelta(hours=71, minutes=59))
    with pytest.raises(DownloadTokenExpired):
        issued.check_redeemable(NOW + timedelta(hours=72))


def test_grant_counts_redemptions_up_to_the_maximum():
    _, issued = grant(max_redemptions=2)
    once = issued.redeemed(NOW)
    twice = once.redeemed(NOW)
    assert (once.redemptions, twice.redemptions, twice.remaining) == (1, 2, 0)
    with pytest.raises(DownloadTokenExhausted):
        twice.redeemed(NOW)


def test_expiry_is_reported_before_exhaustion():
    _, issued = grant(max_redemptions=1)
    used = issued.redeemed(NOW)
    with pytest.raises(DownloadTokenExpired):
        used.check_redeemable(NOW + timedelta(days=5))


def test_revoked_grant_cannot_be_redeemed():
    from dataclasses import replace

    _, issued = grant()
    with pytest.raises(DownloadTokenRevoked):
        replace(issued, revoked=True).check_redeemable(NOW)


def test_grant_needs_at_least_one_redemption():
    with pytest.raises(ValueError, match="max_redemptions"):
        grant(max_redemptions=0)


@pytest.mark.parametrize("candidate", ["", "short", "x" * 43 + "!", "a" * 44])
def test_malformed_tokens_are_recognised_without_lookup(candidate):
    assert not tokens.looks_like_token(candidate)
