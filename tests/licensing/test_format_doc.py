"""The test vectors of docs/license-format.md, read from the page itself, reproduced by
the reference verifier and by the shop's signing code (so page and code cannot drift)."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from commerce.licensing.certificates import sign_certificate
from commerce.licensing.verifier import (
    CertificateState,
    LicenseCall,
    ResponseCheck,
    b64url_decode,
    b64url_encode,
    canonical_json,
    certificate_message,
    check_response,
    fingerprint_sha256,
    key_id,
    key_sha256,
    trusted_keys,
    verify_certificate,
)
from commerce.secrets import EnvSecrets
from commerce.signing import Signer

DOC = Path(__file__).resolve().parents[2] / "docs" / "license-format.md"
_VECTOR = re.compile(r"<!-- vector: ([a-z0-9-]+) -->\s*```text\n(.*?)\n```", re.DOTALL)


def read_vectors() -> dict[str, str]:
    found: dict[str, str] = {}
    for name, body in _VECTOR.findall(DOC.read_text(encoding="utf-8")):
        assert name not in found, f"vector {name} appears twice"
        found[name] = body
    return found


V = read_vectors()


def test_the_page_has_every_vector() -> None:
    assert set(V) == {
        "seed-hex",
        "seed-base64url",
        "public-key-hex",
        "public-key-base64url",
        "key-id",
        "fingerprint",
        "fingerprint-sha256",
        "certificate-payload",
        "certificate-signature-hex",
        "certificate-signature-base64url",
        "certificate",
        "certificate-states",
        "response-nonce",
        "response-key",
        "response-key-sha256",
        "response-body",
        "response-headers",
        "other-fingerprint-sha256",
    }


def test_the_seed_gives_the_public_key_and_key_id() -> None:
    seed = bytes.fromhex(V["seed-hex"])
    public = Ed25519PrivateKey.from_private_bytes(seed).public_key()

    assert b64url_decode(V["seed-base64url"]) == seed
    assert public.public_bytes(Encoding.Raw, PublicFormat.Raw).hex() == V["public-key-hex"]
    assert b64url_decode(V["public-key-base64url"]).hex() == V["public-key-hex"]
    assert key_id(bytes.fromhex(V["public-key-hex"])) == V["key-id"]


def test_the_fingerprint_hash() -> None:
    assert fingerprint_sha256(V["fingerprint"]) == V["fingerprint-sha256"]


def test_the_payload_is_canonical_and_its_signature_is_reproduced() -> None:
    payload = V["certificate-payload"].encode("ascii")
    seed = bytes.fromhex(V["seed-hex"])

    assert canonical_json(json.loads(payload)) == payload
    signature = Ed25519PrivateKey.from_private_bytes(seed).sign(certificate_message(payload))
    assert signature.hex() == V["certificate-signature-hex"]
    assert b64url_encode(signature) == V["certificate-signature-base64url"]


def test_the_shops_signer_issues_exactly_the_documented_certificate() -> None:
    signer = Signer(EnvSecrets({"SIGNING_PRIVATE_KEY": V["seed-base64url"]}))

    text = sign_certificate(json.loads(V["certificate-payload"]), signer)

    assert text == V["certificate"]


@pytest.mark.parametrize(
    ("now", "state"),
    [tuple(line.split()) for line in V["certificate-states"].splitlines()],
)
def test_the_documented_states_by_local_clock(now: str, state: str) -> None:
    keys = trusted_keys(V["public-key-base64url"])

    check = verify_certificate(
        V["certificate"], keys, now=int(now), fingerprint=V["fingerprint"], product="genx"
    )

    assert check.state is CertificateState(state)


def test_the_documented_certificate_on_another_machine() -> None:
    keys = trusted_keys(V["public-key-base64url"])
    other = V["fingerprint"].replace("machine-01", "machine-02")

    check = verify_certificate(V["certificate"], keys, now=1772357400, fingerprint=other)

    assert check.state is CertificateState.WRONG_MACHINE


def documented_answer() -> tuple[bytes, str, str]:
    headers = dict(line.split(": ", 1) for line in V["response-headers"].splitlines())
    return V["response-body"].encode(), headers["X-GENX-Signature"], headers["X-GENX-Key-Id"]


def documented_call(**changes: str) -> LicenseCall:
    fields = {
        "operation": "validate",
        "nonce": V["response-nonce"],
        "key": V["response-key"],
        "fingerprint": V["fingerprint"],
        **changes,
    }
    return LicenseCall(**fields)


def test_the_documented_key_and_fingerprint_hashes() -> None:
    assert key_sha256(V["response-key"], V["response-nonce"]) == V["response-key-sha256"]
    other = V["fingerprint"].replace("machine-01", "machine-02")
    assert fingerprint_sha256(other) == V["other-fingerprint-sha256"]


def test_the_documented_answer_verifies_with_the_public_key_alone() -> None:
    body, signature, kid = documented_answer()
    keys = trusted_keys(V["public-key-base64url"])

    assert check_response(body, signature, kid, keys, request=documented_call()) is (
        ResponseCheck.OK
    )
    seed = b64url_decode(V["seed-base64url"])
    assert b64url_encode(Ed25519PrivateKey.from_private_bytes(seed).sign(body)) == signature


@pytest.mark.parametrize(
    ("changes", "outcome"),
    [
        ({"nonce": "another-nonce-0000000"}, ResponseCheck.NONCE_MISMATCH),
        ({"key": "GENX-0000-0000-0000"}, ResponseCheck.REQUEST_MISMATCH),
        ({"operation": "certificate"}, ResponseCheck.REQUEST_MISMATCH),
        (
            {"fingerprint": "machine-02-abababababababababababababababab"},
            ResponseCheck.REQUEST_MISMATCH,
        ),
    ],
    ids=["other-nonce", "other-key", "other-operation", "relayed-to-machine-02"],
)
def test_the_documented_answer_is_refused_for_any_other_request(
    changes: dict[str, str], outcome: ResponseCheck
) -> None:
    body, signature, kid = documented_answer()
    keys = trusted_keys(V["public-key-base64url"])

    assert check_response(body, signature, kid, keys, request=documented_call(**changes)) is (
        outcome
    )


def test_the_shop_forms_exactly_the_documented_answer() -> None:
    """The shop's own answer code, given the documented request and verdict, produces
    the documented bytes and signature (so page, shop and verifier cannot drift)."""
    from commerce.bootstrap import Container
    from commerce.clock import FixedClock
    from commerce.licensing.endpoints import _Call, signed_response
    from commerce.licensing.schemas import Answer, StatusCode
    from tests.licensing.conftest import make_settings
    from tests.support import factories

    body = json.loads(V["response-body"])
    call = _Call(
        "validate",
        V["response-nonce"],
        {"key": V["response-key"], "fingerprint": V["fingerprint"], "nonce": V["response-nonce"]},
    )
    answer = Answer(
        StatusCode.VALID, {"license": body["license"], "activation": body["activation"]}
    )
    secrets = {**factories.TEST_SECRETS, "SIGNING_PRIVATE_KEY": V["seed-base64url"]}
    settings = make_settings()
    container = Container(
        settings,
        clock=FixedClock(datetime.fromtimestamp(body["time"], UTC)),
        secrets=EnvSecrets(secrets),
    )
    _, signature, kid = documented_answer()

    response = signed_response(answer, call, container)

    assert response.get_data() == V["response-body"].encode()
    assert response.headers["X-GENX-Signature"] == signature
    assert response.headers["X-GENX-Key-Id"] == kid
