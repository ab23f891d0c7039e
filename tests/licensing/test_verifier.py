"""The reference verifier (pure): canonical JSON, certificates and signed answers verify
with the public key alone and fail on any changed byte."""

from __future__ import annotations

import json

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import given, settings
from hypothesis import strategies as st

from commerce.licensing.verifier import (
    CERTIFICATE_FORMAT,
    CertificateState,
    ResponseCheck,
    b64url_decode,
    b64url_encode,
    canonical_json,
    certificate_message,
    certificate_text,
    check_response,
    entitles,
    fingerprint_sha256,
    key_id,
    split_certificate,
    trusted_keys,
    verify_certificate,
)

SHOP_KEY = Ed25519PrivateKey.from_private_bytes(bytes(range(32)))
OTHER_KEY = Ed25519PrivateKey.from_private_bytes(bytes(range(1, 33)))
KEYS = trusted_keys(SHOP_KEY.public_key())
FINGERPRINT = "fp-" + "c0ffee" * 8
ISSUED = 1_772_357_400
DAY = 86_400


def payload(**overrides: object) -> dict:
    fields = {
        "activation_id": "act_000000000000000000000001",
        "channel": "stable",
        "entitled_major_versions": [1, 2],
        "fingerprint_sha256": fingerprint_sha256(FINGERPRINT),
        "format": CERTIFICATE_FORMAT,
        "grace_seconds": 14 * DAY,
        "issued_at": ISSUED,
        "key_hint": "ABCD",
        "key_id": key_id(SHOP_KEY.public_key()),
        "license_id": "lic_1",
        "product": "genx",
        "refresh_by": ISSUED + 14 * DAY,
    }
    fields.update(overrides)
    return fields


def certificate(key: Ed25519PrivateKey = SHOP_KEY, **overrides: object) -> str:
    body = canonical_json(payload(**overrides))
    return certificate_text(body, key.sign(certificate_message(body)))


# -- canonical JSON ---------------------------------------------------------------------


def test_canonical_json_sorts_keys_and_drops_whitespace() -> None:
    assert canonical_json({"b": [2, 1], "a": {"d": True, "c": "x"}}) == (
        b'{"a":{"c":"x","d":true},"b":[2,1]}'
    )


@pytest.mark.parametrize(
    "value",
    [1.5, None, 2**53, -(2**53), "tab\there", 'quote"', "back\\slash", "caf\u00e9", {1: 2}],
)
def test_canonical_json_refuses_what_other_languages_could_encode_differently(
    value: object,
) -> None:
    with pytest.raises(ValueError, match=r"."):
        canonical_json({"v": value})


@settings(max_examples=200)
@given(
    st.recursive(
        st.integers(-(2**53) + 1, 2**53 - 1)
        | st.booleans()
        | st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E, exclude_characters='"\\')),
        lambda inner: (
            st.lists(inner, max_size=4)
            | st.dictionaries(
                st.text(
                    st.characters(min_codepoint=0x20, max_codepoint=0x7E, exclude_characters='"\\'),
                    max_size=8,
                ),
                inner,
                max_size=4,
            )
        ),
        max_leaves=12,
    )
)
def test_canonical_json_round_trips_and_is_stable(value: object) -> None:
    encoded = canonical_json(value)
    assert canonical_json(json.loads(encoded)) == encoded
    assert encoded == json.dumps(value, sort_keys=True, separators=(",", ":")).encode()


def test_base64url_decoding_is_strict() -> None:
    assert b64url_decode(b64url_encode(b"\x00\xff\x10")) == b"\x00\xff\x10"
    for junk in ("AP8Q=", "AP9", "AP+Q", "A", "AP8Q\n"):
        with pytest.raises(ValueError, match=r"."):
            b64url_decode(junk)


# -- certificates -----------------------------------------------------------------------


def test_a_fresh_certificate_is_valid_for_its_machine_with_the_public_key_alone() -> None:
    check = verify_certificate(certificate(), KEYS, now=ISSUED, fingerprint=FINGERPRINT)

    assert check.state is CertificateState.VALID
    assert check.usable
    assert not check.warning
    assert check.offline_until == ISSUED + 28 * DAY
    assert entitles(check, 2)
    assert not entitles(check, 3)


def test_every_changed_byte_of_a_certificate_fails() -> None:
    text = certificate()
    payload_bytes, signature = split_certificate(text)
    for index in range(len(payload_bytes)):
        changed = bytearray(payload_bytes)
        changed[index] ^= 0x01
        forged = certificate_text(bytes(changed), signature)
        assert verify_certificate(forged, KEYS, now=ISSUED).state is (
            CertificateState.BAD_SIGNATURE
        ), index
    for index in range(len(signature)):
        changed = bytearray(signature)
        changed[index] ^= 0x80
        forged = certificate_text(payload_bytes, bytes(changed))
        assert verify_certificate(forged, KEYS, now=ISSUED).state is (
            CertificateState.BAD_SIGNATURE
        ), index


def test_every_changed_character_of_the_certificate_text_is_refused() -> None:
    text = certificate()
    for index, char in enumerate(text):
        replacement = "B" if char != "B" else "C"
        forged = text[:index] + replacement + text[index + 1 :]
        check = verify_certificate(forged, KEYS, now=ISSUED)
        assert check.state in (CertificateState.BAD_SIGNATURE, CertificateState.MALFORMED), index
        assert not check.usable


def test_a_certificate_signed_by_another_key_is_refused() -> None:
    forged = certificate(OTHER_KEY, key_id=key_id(OTHER_KEY.public_key()))

    assert verify_certificate(forged, KEYS, now=ISSUED).state is CertificateState.BAD_SIGNATURE


def test_during_a_key_rotation_both_trusted_keys_verify() -> None:
    keys = trusted_keys(SHOP_KEY.public_key(), OTHER_KEY.public_key())
    newer = certificate(OTHER_KEY, key_id=key_id(OTHER_KEY.public_key()))

    assert verify_certificate(newer, keys, now=ISSUED).state is CertificateState.VALID
    assert verify_certificate(certificate(), keys, now=ISSUED).state is CertificateState.VALID


def test_a_certificate_naming_another_key_than_its_signer_is_malformed() -> None:
    lying = certificate(key_id="0000000000000000")

    assert verify_certificate(lying, KEYS, now=ISSUED).state is CertificateState.MALFORMED


@pytest.mark.parametrize(
    ("now", "state"),
    [
        (ISSUED - 1, CertificateState.CLOCK_ROLLBACK),
        (ISSUED, CertificateState.VALID),
        (ISSUED + 14 * DAY - 1, CertificateState.VALID),
        (ISSUED + 14 * DAY, CertificateState.REFRESH_DUE),
        (ISSUED + 28 * DAY - 1, CertificateState.REFRESH_DUE),
        (ISSUED + 28 * DAY, CertificateState.EXPIRED),
    ],
)
def test_time_states_including_clock_rollback(now: int, state: CertificateState) -> None:
    check = verify_certificate(certificate(), KEYS, now=now, fingerprint=FINGERPRINT)

    assert check.state is state


def test_clock_rollback_is_a_usable_warning_and_expiry_is_not_usable() -> None:
    rolled_back = verify_certificate(certificate(), KEYS, now=ISSUED - DAY)
    expired = verify_certificate(certificate(), KEYS, now=ISSUED + 60 * DAY)

    assert rolled_back.usable
    assert rolled_back.warning
    assert not expired.usable


def test_another_machine_or_product_is_refused() -> None:
    text = certificate()

    assert verify_certificate(text, KEYS, now=ISSUED, fingerprint="fp-other-1").state is (
        CertificateState.WRONG_MACHINE
    )
    assert verify_certificate(text, KEYS, now=ISSUED, product="other").state is (
        CertificateState.WRONG_PRODUCT
    )


@pytest.mark.parametrize(
    "broken",
    [
        {"format": "genx-license-certificate/2"},
        {"issued_at": "1772357400"},
        {"grace_seconds": -1},
        {"refresh_by": ISSUED - 1},
        {"entitled_major_versions": [1, True]},
        {"issued_at": True},
    ],
)
def test_authentic_but_malformed_payloads_are_refused(broken: dict) -> None:
    check = verify_certificate(_signed_raw(payload(**broken)), KEYS, now=ISSUED)

    assert check.state is CertificateState.MALFORMED


def _signed_raw(fields: dict) -> str:
    body = json.dumps(fields, sort_keys=True, separators=(",", ":")).encode()
    return certificate_text(body, SHOP_KEY.sign(certificate_message(body)))


@pytest.mark.parametrize(
    "junk", ["", "genxcert1", "genxcert1..", "genxcert2.e30.AAAA", "x" * 5000, "genxcert1.e30.AA"]
)
def test_junk_is_malformed_and_never_raises(junk: str) -> None:
    assert verify_certificate(junk, KEYS, now=ISSUED).state is CertificateState.MALFORMED


# -- signed answers ---------------------------------------------------------------------


def test_a_signed_answer_verifies_and_fails_on_any_changed_byte() -> None:
    body = b'{"nonce":"abc123","status":"VALID","time":1772357400}'
    signature = b64url_encode(SHOP_KEY.sign(body))
    kid = key_id(SHOP_KEY.public_key())

    assert check_response(body, signature, kid, KEYS, expected_nonce="abc123") is ResponseCheck.OK
    for index in range(len(body)):
        changed = bytearray(body)
        changed[index] ^= 0x01
        assert check_response(bytes(changed), signature, kid, KEYS) is (
            ResponseCheck.BAD_SIGNATURE
        ), index


def test_a_replayed_answer_is_caught_by_the_nonce() -> None:
    body = b'{"nonce":"old-nonce","status":"VALID","time":1772357400}'
    signature = b64url_encode(SHOP_KEY.sign(body))
    kid = key_id(SHOP_KEY.public_key())

    assert check_response(body, signature, kid, KEYS, expected_nonce="new-nonce") is (
        ResponseCheck.NONCE_MISMATCH
    )


def test_unsigned_or_unknown_key_answers_are_refused() -> None:
    body = b'{"status":"VALID"}'
    signature = b64url_encode(OTHER_KEY.sign(body))

    assert check_response(body, None, None, KEYS) is ResponseCheck.UNSIGNED
    assert check_response(body, signature, key_id(OTHER_KEY.public_key()), KEYS) is (
        ResponseCheck.UNKNOWN_KEY
    )
    assert check_response(body, "!!", key_id(SHOP_KEY.public_key()), KEYS) is (
        ResponseCheck.BAD_SIGNATURE
    )
