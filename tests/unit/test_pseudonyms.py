"""Keyed hashes of networks and rate-limit buckets (commerce.pseudonyms), and the user
agent family kept in audits. No emulator."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime

import pytest

from commerce.clock import FixedClock
from commerce.domain.network import agent_family
from commerce.domain.rate_limits import window_for
from commerce.errors import SecretUnavailable
from commerce.pseudonyms import Pseudonyms
from commerce.ratelimit import RateLimiter
from commerce.repositories.memory import MemoryRateLimits, MemoryStorage
from commerce.secrets import EnvSecrets
from tests.support.factories import TEST_SECRETS

NOW = datetime(2026, 3, 1, 9, 30, tzinfo=UTC)
OTHER_KEY = "b3RoZXIta2V5LW9mLWF0LWxlYXN0LTE2LWJ5dGVz"


def pseudonyms(key: str = TEST_SECRETS["PSEUDONYM_KEY"]) -> Pseudonyms:
    return Pseudonyms(EnvSecrets({"PSEUDONYM_KEY": key}))


def limiter(names: Pseudonyms) -> RateLimiter:
    return RateLimiter(
        MemoryRateLimits(MemoryStorage()), FixedClock(NOW), 60, bucket_key=names.bucket
    )


def test_a_network_hash_is_stable_short_and_keyed() -> None:
    names, other = pseudonyms(), pseudonyms(OTHER_KEY)

    assert names.network("203.0.113.7/32") == names.network("203.0.113.7/32")
    assert len(names.network("203.0.113.7/32")) == 16
    assert names.network("203.0.113.7/32") != names.network("203.0.113.8/32")
    assert names.network("203.0.113.7/32") != other.network("203.0.113.7/32")
    assert "203.0.113" not in names.network("203.0.113.7/32")


def test_a_counter_id_cannot_be_found_by_hashing_a_guessed_address() -> None:
    bucket = "resend:address:ada@example.com"
    unkeyed = hashlib.sha256(bucket.encode()).hexdigest()[:32]

    keyed = limiter(pseudonyms()).window(bucket, 3).doc_id
    rekeyed = limiter(pseudonyms(OTHER_KEY)).window(bucket, 3).doc_id

    assert not keyed.startswith(unkeyed)
    assert window_for(bucket, limit=3, window_seconds=60, now=NOW).doc_id.startswith(unkeyed)
    assert keyed != rekeyed
    assert keyed.split("-")[0] == limiter(pseudonyms()).window(bucket, 9).doc_id.split("-")[0]


def test_without_the_key_rate_limited_calls_fail_closed() -> None:
    names = Pseudonyms(EnvSecrets({}))

    with pytest.raises(SecretUnavailable):
        limiter(names).check("checkout:203.0.113.7/32", 5)
    with pytest.raises(SecretUnavailable):
        names.network("203.0.113.7/32")


@pytest.mark.parametrize(
    ("user_agent", "family"),
    [
        ("Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0", "firefox"),
        (
            "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
            "Chrome/131.0.0.0 Safari/537.36",
            "chrome",
        ),
        (
            "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
            "Chrome/131.0.0.0 Safari/537.36 Edg/131.0.0.0",
            "edge",
        ),
        (
            "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_6) AppleWebKit/605.1.15 (KHTML, like "
            "Gecko) Version/17.6 Safari/605.1.15",
            "safari",
        ),
        ("curl/8.5.0", "curl"),
        ("Wget/1.21.4", "wget"),
        ("python-requests/2.32.3", "python"),
        ("GENX-Plugin/1.2.0 (linux-x86_64)", "genx"),
        ("Googlebot/2.1 (+http://www.google.com/bot.html)", "bot"),
        ("pytest-agent/1.0", "other"),
        ("", "none"),
        (None, "none"),
    ],
)
def test_a_user_agent_is_kept_only_as_its_family(user_agent: str | None, family: str) -> None:
    assert agent_family(user_agent) == family
