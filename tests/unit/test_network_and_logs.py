import json
import logging

import pytest
from hypothesis import given
from hypothesis import strategies as st

from commerce.domain.network import client_address, network_prefix
from commerce.logs import JsonFormatter, redact, redact_text


@pytest.mark.parametrize(
    ("address", "prefix"),
    [
        ("203.0.113.7", "203.0.113.7/32"),
        ("2001:db8:1:2:3:4:5:6", "2001:db8:1:2::/64"),
        ("2001:db8:1:2::ffff", "2001:db8:1:2::/64"),
        ("::ffff:198.51.100.4", "198.51.100.4/32"),
        ("not an ip", "unknown"),
        (None, "unknown"),
    ],
)
def test_network_prefix_is_the_address_for_ipv4_and_the_64_for_ipv6(address, prefix):
    assert network_prefix(address) == prefix


def test_client_address_trusts_only_the_entries_our_proxies_appended():
    forged = "6.6.6.6, 203.0.113.7"
    assert client_address(forged, "10.0.0.1", trusted_hops=1) == "203.0.113.7"
    assert client_address("6.6.6.6, 203.0.113.7, 35.1.1.1", None, trusted_hops=2) == "203.0.113.7"
    assert client_address(None, "127.0.0.1") == "127.0.0.1"
    assert client_address("1.2.3.4", "127.0.0.1", trusted_hops=0) == "127.0.0.1"


def test_redaction_removes_keys_tokens_and_stripe_secrets():
    text = (
        "key GENX-ABCD-EFGH-JKMN token /d/abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQ "
        "stripe sk_test_123abc whsec_zzz Bearer abc.def"
    )
    cleaned = redact_text(text)
    for secret in ["GENX-ABCD", "abcdefghijklmnop", "sk_test_123abc", "whsec_zzz", "abc.def"]:
        assert secret not in cleaned


_BASE64URL = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
# What may stand next to a token in a log line: anything but another base64url character.
_EDGE = st.text(
    alphabet=st.characters(blacklist_characters=_BASE64URL, blacklist_categories=("Cs",)),
    max_size=3,
)


@given(
    token=st.text(alphabet=_BASE64URL, min_size=43, max_size=43),
    before=_EDGE,
    after=_EDGE,
    as_link=st.booleans(),
)
def test_every_download_token_is_redacted_whatever_its_first_and_last_characters(
    token: str, before: str, after: str, as_link: bool
) -> None:
    # secrets.token_urlsafe(32) may begin or end with "-" or "_" (one token in 32 does),
    # where a word boundary finds nothing to stand on.
    shown = f"/d/{token}" if as_link else token
    cleaned = redact_text(f"download {before}{shown}{after} failed")
    assert token not in cleaned
    assert "[redacted]" in cleaned


def test_redaction_blanks_sensitive_fields_but_keeps_hints():
    out = redact({"license_key": "x", "key_hint": "JKMN", "nested": {"api_token": "t"}, "n": 1})
    assert out == {
        "license_key": "[redacted]",
        "key_hint": "JKMN",
        "nested": {"api_token": "[redacted]"},
        "n": 1,
    }


def test_json_formatter_emits_cloud_logging_fields_and_redacts():
    record = logging.makeLogRecord(
        {
            "name": "t",
            "levelname": "WARNING",
            "levelno": 30,
            "msg": "sent GENX-ABCD-EFGH-JKMN",
            "args": (),
            "event": "email.sent",
            "download_token": "secret-value",
        }
    )
    entry = json.loads(JsonFormatter("demo").format(record))
    assert entry["severity"] == "WARNING"
    assert entry["event"] == "email.sent"
    assert "GENX-ABCD" not in entry["message"]
    assert entry["download_token"] == "[redacted]"
