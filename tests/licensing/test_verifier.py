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
    LicenseCall,
    ResponseCheck,
    b64url_decode,
    b64url_encode,
    canonical_json,
    certificate_message,
    certificate_text,
    check_response,
    check_signature,
    entitles,
    fingerprint_sha256,
    is_valid_nonce,
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

KID = key_id(SHOP_KEY.public_key())
NONCE = "nonce-for-machine-b-0001"
KEY = "GENX-4MZ9-QX1C-7KQ2"


def answer_to(call: LicenseCall, status: str = "VALID", **fields: object) -> bytes:
    """An answer as the shop forms one: the status, the echoed nonce, the binding."""
    body = {"status": status, "nonce": call.nonce, "time": ISSUED, "request": call.binding()}
    body.update(fields)
    return json.dumps(body, separators=(",", ":"), sort_keys=True).encode()


def signed(body: bytes, key: Ed25519PrivateKey = SHOP_KEY) -> str:
    return b64url_encode(key.sign(body))


def test_a_signed_answer_verifies_and_fails_on_any_changed_byte() -> None:
    call = LicenseCall("validate", NONCE, key=KEY, fingerprint=FINGERPRINT)
    body = answer_to(call)
    signature = signed(body)

    assert check_response(body, signature, KID, KEYS, request=call) is ResponseCheck.OK
    for index in range(len(body)):
        changed = bytearray(body)
        changed[index] ^= 0x01
        assert check_response(bytes(changed), signature, KID, KEYS, request=call) is (
            ResponseCheck.BAD_SIGNATURE
        ), index


def test_a_replayed_answer_is_caught_by_the_nonce() -> None:
    old = LicenseCall("validate", "old-nonce-0000000000", key=KEY)
    new = LicenseCall("validate", "new-nonce-0000000000", key=KEY)
    body = answer_to(old)

    assert check_response(body, signed(body), KID, KEYS, request=new) is (
        ResponseCheck.NONCE_MISMATCH
    )


def test_an_answer_for_another_machine_with_this_machines_nonce_is_refused() -> None:
    """The relay: machine A is activated; a relay asks with A's fingerprint and B's
    nonce, gets a signed VALID and hands it to B. The nonce matches; the machine does not."""
    for_a = LicenseCall("validate", NONCE, key=KEY, fingerprint="machine-A-" + "ab" * 8)
    from_b = LicenseCall("validate", NONCE, key=KEY, fingerprint="machine-B-" + "ab" * 8)
    body = answer_to(for_a)

    assert check_signature(body, signed(body), KID, KEYS) is ResponseCheck.OK
    assert check_response(body, signed(body), KID, KEYS, request=from_b) is (
        ResponseCheck.REQUEST_MISMATCH
    )


@pytest.mark.parametrize(
    "other",
    [
        LicenseCall("certificate", NONCE, key=KEY, fingerprint=FINGERPRINT),
        LicenseCall("validate", NONCE, key="GENX-0000-0000-0000", fingerprint=FINGERPRINT),
        LicenseCall("validate", NONCE, key=KEY),
        LicenseCall("validate", NONCE, key=KEY.lower(), fingerprint=FINGERPRINT),
        LicenseCall("validate", NONCE, fingerprint=FINGERPRINT, certificate="genxcert1.a.b"),
    ],
    ids=["operation", "key", "no-fingerprint", "key-spelling", "certificate"],
)
def test_an_answer_to_any_other_request_with_the_same_nonce_is_refused(
    other: LicenseCall,
) -> None:
    call = LicenseCall("validate", NONCE, key=KEY, fingerprint=FINGERPRINT)
    body = answer_to(other)

    assert check_response(body, signed(body), KID, KEYS, request=call) is (
        ResponseCheck.REQUEST_MISMATCH
    )


def test_an_answer_without_a_binding_is_refused() -> None:
    call = LicenseCall("validate", NONCE, key=KEY)
    body = json.dumps({"nonce": NONCE, "status": "VALID", "time": ISSUED}).encode()

    assert check_response(body, signed(body), KID, KEYS, request=call) is (
        ResponseCheck.REQUEST_MISMATCH
    )


def test_the_key_hash_is_salted_by_the_nonce_and_never_the_key() -> None:
    one = LicenseCall("validate", NONCE, key=KEY).binding()["key_sha256"]
    two = LicenseCall("validate", "another-nonce-000000", key=KEY).binding()["key_sha256"]

    assert one != two
    assert one is not None
    assert KEY not in one
    assert len(one) == 64


@settings(max_examples=200)
@given(
    fields=st.lists(
        st.sampled_from(["operation", "key", "fingerprint", "certificate"]), min_size=1
    ),
    text=st.text(st.characters(codec="utf-8"), min_size=1, max_size=40),
)
def test_changing_any_bound_field_refuses_the_answer(fields: list[str], text: str) -> None:
    call = LicenseCall("activate", NONCE, key=KEY, fingerprint=FINGERPRINT)
    changes: dict[str, str | None] = {}
    for name in fields:
        if name == "operation":
            changes[name] = "deactivate"
        else:
            current = getattr(call, name)
            changes[name] = None if current is not None and text == "x" else (current or "") + text
    other = LicenseCall(**{**call.__dict__, **changes})
    body = answer_to(other)

    assert check_response(body, signed(body), KID, KEYS, request=call) is (
        ResponseCheck.REQUEST_MISMATCH
    )


@pytest.mark.parametrize("nonce", ["", "short", "x" * 129, "with space 000000000", "caf\u00e9" * 4])
def test_a_plugin_cannot_make_a_call_with_a_nonce_the_shop_refuses(nonce: str) -> None:
    assert not is_valid_nonce(nonce)
    with pytest.raises(ValueError, match="nonce"):
        LicenseCall("validate", nonce, key=KEY)


def test_unsigned_unknown_key_or_non_object_answers_are_refused() -> None:
    call = LicenseCall("validate", NONCE, key=KEY)
    body = answer_to(call)

    assert check_response(body, None, None, KEYS, request=call) is ResponseCheck.UNSIGNED
    assert check_response(
        body, signed(body, OTHER_KEY), key_id(OTHER_KEY.public_key()), KEYS, request=call
    ) is (ResponseCheck.UNKNOWN_KEY)
    assert check_response(body, "!!", KID, KEYS, request=call) is ResponseCheck.BAD_SIGNATURE
    junk = b"[1,2]"
    assert check_response(junk, signed(junk), KID, KEYS, request=call) is (ResponseCheck.MALFORMED)
