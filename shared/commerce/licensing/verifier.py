"""Reference verifier for license certificates and signed license-API responses.

Self-contained on purpose: it imports only the standard library and `cryptography`,
so it can be copied into a plugin's Python tooling or read as the executable form of
docs/license-format.md. Nothing here needs the shop's secrets: the public key alone
decides.

Certificate text:  `genxcert1.<base64url(payload)>.<base64url(signature)>`
Signed message:    `b"genx-license-certificate/1\\n" + payload`
Payload:           canonical JSON (see `canonical_json`)
Response:          Ed25519 over the exact body bytes; `X-GENX-Signature`, `X-GENX-Key-Id`;
                   the body echoes the nonce and binds the request (`LicenseCall`), so
                   `check_response` refuses replayed and relayed answers.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

CERTIFICATE_FORMAT = "genx-license-certificate/1"
CERTIFICATE_PREFIX = "genxcert1"
SIGNING_CONTEXT = CERTIFICATE_FORMAT.encode("ascii") + b"\n"
SIGNATURE_HEADER = "X-GENX-Signature"
KEY_ID_HEADER = "X-GENX-Key-Id"
MAX_CERTIFICATE_LENGTH = 4096
MAX_SAFE_INTEGER = 2**53 - 1

_REQUIRED_FIELDS: dict[str, type] = {
    "activation_id": str,
    "channel": str,
    "entitled_major_versions": list,
    "fingerprint_sha256": str,
    "format": str,
    "grace_seconds": int,
    "issued_at": int,
    "key_hint": str,
    "key_id": str,
    "license_id": str,
    "product": str,
    "refresh_by": int,
}


# --- encoding ------------------------------------------------------------------------


def b64url_encode(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64url_decode(text: str) -> bytes:
    """Strict base64url without padding; raises ValueError on anything else."""
    if not isinstance(text, str) or "=" in text:
        raise ValueError("base64url text without padding expected")
    try:
        raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError):
        raise ValueError("not base64url") from None
    if b64url_encode(raw) != text:  # refuse non-canonical encodings (stray bits)
        raise ValueError("non-canonical base64url")
    return raw


def _canonical_string(value: str) -> str:
    # Printable ASCII without the two characters JSON would escape: the canonical text
    # then never contains an escape sequence, in any language's JSON writer.
    if any(not (0x20 <= ord(ch) <= 0x7E) or ch in '"\\' for ch in value):
        raise ValueError(f"string {value!r} is outside the canonical character set")
    return '"' + value + '"'


def _canonical(value: Any) -> str:
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, int):
        if abs(value) > MAX_SAFE_INTEGER:
            raise ValueError("integers must stay within +-(2**53 - 1)")
        return str(value)
    if isinstance(value, str):
        return _canonical_string(value)
    if isinstance(value, Mapping):
        keys = sorted(value)
        if any(not isinstance(key, str) for key in keys):
            raise ValueError("object keys must be strings")
        return "{" + ",".join(_canonical_string(k) + ":" + _canonical(value[k]) for k in keys) + "}"
    if isinstance(value, list | tuple):
        return "[" + ",".join(_canonical(item) for item in value) + "]"
    raise ValueError(
        f"{type(value).__name__} is not allowed in canonical JSON (no floats, no null)"
    )


def canonical_json(value: Any) -> bytes:
    """Canonical JSON bytes: UTF-8 (in fact ASCII), object keys sorted by code point, no
    whitespace, integers only (|n| <= 2**53 - 1), strings of printable ASCII without
    `"` or `\\`, no floats and no null."""
    return _canonical(value).encode("ascii")


def key_id(public_key: bytes | Ed25519PublicKey) -> str:
    """First 16 hex digits of SHA-256 over the raw 32-byte public key."""
    raw = (
        public_key.public_bytes(Encoding.Raw, PublicFormat.Raw)
        if isinstance(public_key, Ed25519PublicKey)
        else public_key
    )
    return hashlib.sha256(raw).hexdigest()[:16]


def fingerprint_sha256(fingerprint: str) -> str:
    """What a certificate stores about the machine: SHA-256 (hex) of its UTF-8 fingerprint."""
    return hashlib.sha256(fingerprint.encode("utf-8")).hexdigest()


def certificate_message(payload: bytes) -> bytes:
    """The exact bytes a certificate's signature covers."""
    return SIGNING_CONTEXT + payload


def certificate_text(payload: bytes, signature: bytes) -> str:
    return f"{CERTIFICATE_PREFIX}.{b64url_encode(payload)}.{b64url_encode(signature)}"


def split_certificate(text: str) -> tuple[bytes, bytes]:
    """(payload, signature) of a certificate text; ValueError when malformed."""
    if not isinstance(text, str) or len(text) > MAX_CERTIFICATE_LENGTH:
        raise ValueError("certificate text expected")
    parts = text.strip().split(".")
    if len(parts) != 3 or parts[0] != CERTIFICATE_PREFIX:
        raise ValueError(f"certificate must look like {CERTIFICATE_PREFIX}.<payload>.<signature>")
    payload, signature = b64url_decode(parts[1]), b64url_decode(parts[2])
    if len(signature) != 64:
        raise ValueError("an Ed25519 signature has 64 bytes")
    return payload, signature


# --- keys ------------------------------------------------------------------------------

PublicKeys = Mapping[str, Ed25519PublicKey]


def load_public_key(raw_or_b64: bytes | str) -> Ed25519PublicKey:
    raw = b64url_decode(raw_or_b64) if isinstance(raw_or_b64, str) else raw_or_b64
    return Ed25519PublicKey.from_public_bytes(raw)


def trusted_keys(*keys: bytes | str | Ed25519PublicKey) -> dict[str, Ed25519PublicKey]:
    """{key id: key} for the public keys a plugin ships (usually one; two while rotating)."""
    loaded = [k if isinstance(k, Ed25519PublicKey) else load_public_key(k) for k in keys]
    return {key_id(k): k for k in loaded}


def _verify(key: Ed25519PublicKey, signature: bytes, message: bytes) -> bool:
    try:
        key.verify(signature, message)
    except InvalidSignature:
        return False
    return True


# --- responses -------------------------------------------------------------------------

NONCE_PATTERN = re.compile(r"[A-Za-z0-9_-]{16,128}")
KEY_HASH_CONTEXT = b"genx-license-key/1\n"
OPERATIONS = ("validate", "activate", "deactivate", "certificate", "updates")


def is_valid_nonce(nonce: object) -> bool:
    """16 to 128 base64url characters (send 16 random bytes: 22 characters)."""
    return isinstance(nonce, str) and NONCE_PATTERN.fullmatch(nonce) is not None


def key_sha256(key: str, nonce: str) -> str:
    """How an answer names the key it is about: lower-case hex SHA-256 of
    `"genx-license-key/1\\n" || nonce || "\\n" || key`, the key exactly as sent (UTF-8).

    Salted with the request's nonce so equal keys never hash alike across answers and
    no table of key hashes can be precomputed; never the key itself.
    """
    return hashlib.sha256(
        KEY_HASH_CONTEXT + nonce.encode("ascii") + b"\n" + key.encode("utf-8")
    ).hexdigest()


def text_sha256(text: str) -> str:
    """Lower-case hex SHA-256 of a text's UTF-8 bytes (how an answer names a certificate)."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class LicenseCall:
    """What the plugin sent: the answer must be about exactly this request."""

    operation: str
    nonce: str
    key: str | None = None
    fingerprint: str | None = None
    certificate: str | None = None

    def __post_init__(self) -> None:
        if self.operation not in OPERATIONS:
            raise ValueError(f"operation must be one of {OPERATIONS}")
        if not is_valid_nonce(self.nonce):
            raise ValueError("nonce must be 16 to 128 base64url characters")

    def binding(self) -> dict[str, str | None]:
        """The `request` object a signed answer to this call carries."""
        return {
            "operation": self.operation,
            "key_sha256": key_sha256(self.key, self.nonce) if self.key is not None else None,
            "fingerprint_sha256": (
                fingerprint_sha256(self.fingerprint) if self.fingerprint is not None else None
            ),
            "certificate_sha256": (
                text_sha256(self.certificate) if self.certificate is not None else None
            ),
        }


class ResponseCheck(StrEnum):
    OK = "OK"
    UNSIGNED = "UNSIGNED"
    UNKNOWN_KEY = "UNKNOWN_KEY"
    BAD_SIGNATURE = "BAD_SIGNATURE"
    MALFORMED = "MALFORMED"  # signed, but not a JSON object
    NONCE_MISMATCH = "NONCE_MISMATCH"  # a replayed answer, or one to another request
    REQUEST_MISMATCH = "REQUEST_MISMATCH"  # about another operation, key, machine or cert


def check_signature(
    body: bytes, signature: str | None, key_id_header: str | None, keys: PublicKeys
) -> ResponseCheck:
    """Step one: did a trusted key sign these exact bytes? (OK says nothing about
    which request they answer: a plugin uses `check_response`.)"""
    if not signature or not key_id_header:
        return ResponseCheck.UNSIGNED
    key = keys.get(key_id_header)
    if key is None:
        return ResponseCheck.UNKNOWN_KEY
    try:
        raw_signature = b64url_decode(signature)
    except ValueError:
        return ResponseCheck.BAD_SIGNATURE
    if not _verify(key, raw_signature, body):
        return ResponseCheck.BAD_SIGNATURE
    return ResponseCheck.OK


def check_response(
    body: bytes,
    signature: str | None,
    key_id_header: str | None,
    keys: PublicKeys,
    *,
    request: LicenseCall,
) -> ResponseCheck:
    """Is `body` an authentic answer to exactly `request`?

    Verifies the Ed25519 signature over the exact body bytes first and only then looks
    inside: the echoed `nonce` must be the one sent (else a replay) and the `request`
    object must name the same operation, key, machine and certificate (else an answer
    obtained for another request, e.g. a relay's VALID for another machine).
    """
    signed = check_signature(body, signature, key_id_header, keys)
    if signed is not ResponseCheck.OK:
        return signed
    try:
        answer = json.loads(body)
    except ValueError:
        return ResponseCheck.MALFORMED
    if not isinstance(answer, dict):
        return ResponseCheck.MALFORMED
    echoed = answer.get("nonce")
    if not isinstance(echoed, str) or not hmac.compare_digest(
        echoed.encode("utf-8", "replace"), request.nonce.encode("utf-8", "replace")
    ):
        return ResponseCheck.NONCE_MISMATCH
    bound = answer.get("request")
    if not isinstance(bound, dict) or bound != request.binding():
        return ResponseCheck.REQUEST_MISMATCH
    return ResponseCheck.OK


# --- certificates ----------------------------------------------------------------------


class CertificateState(StrEnum):
    VALID = "VALID"  # issued_at <= now < refresh_by
    REFRESH_DUE = "REFRESH_DUE"  # refresh_by <= now < refresh_by + grace: works, refresh online
    CLOCK_ROLLBACK = "CLOCK_ROLLBACK"  # issued_at > now: warning, the clock went back
    EXPIRED = "EXPIRED"  # now >= refresh_by + grace
    WRONG_MACHINE = "WRONG_MACHINE"  # fingerprint differs
    WRONG_PRODUCT = "WRONG_PRODUCT"
    BAD_SIGNATURE = "BAD_SIGNATURE"  # no trusted key signed these bytes
    MALFORMED = "MALFORMED"


USABLE_STATES = frozenset(
    {CertificateState.VALID, CertificateState.REFRESH_DUE, CertificateState.CLOCK_ROLLBACK}
)
WARNING_STATES = frozenset({CertificateState.REFRESH_DUE, CertificateState.CLOCK_ROLLBACK})


@dataclass(frozen=True)
class CertificateCheck:
    state: CertificateState
    payload: dict[str, Any] | None = None
    reason: str = ""

    @property
    def usable(self) -> bool:
        """The plugin may run: the certificate is authentic, for this machine, in time."""
        return self.state in USABLE_STATES

    @property
    def warning(self) -> bool:
        return self.state in WARNING_STATES

    @property
    def offline_until(self) -> int | None:
        """Unix seconds until which the certificate works offline (refresh_by + grace)."""
        if self.payload is None:
            return None
        return int(self.payload["refresh_by"]) + int(self.payload["grace_seconds"])


def _well_formed(payload: Any) -> str:
    """'' when the payload has every field with the right type, else the first problem."""
    if not isinstance(payload, dict):
        return "payload is not an object"
    for name, kind in _REQUIRED_FIELDS.items():
        value = payload.get(name)
        if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
            return f"field {name} missing or not {kind.__name__}"
    if payload["format"] != CERTIFICATE_FORMAT:
        return f"unknown format {payload['format']!r}"
    majors = payload["entitled_major_versions"]
    if not all(isinstance(m, int) and not isinstance(m, bool) for m in majors):
        return "entitled_major_versions must be integers"
    if payload["grace_seconds"] < 0 or payload["refresh_by"] < payload["issued_at"]:
        return "inconsistent times"
    return ""


def verify_certificate(
    text: str,
    keys: PublicKeys,
    *,
    now: int,
    fingerprint: str | None = None,
    product: str | None = None,
) -> CertificateCheck:
    """Check a certificate offline with the public key(s) alone.

    Order: shape, signature (over the exact payload bytes, never a re-serialisation),
    payload fields, key id, product, machine, then time. `now` is the local clock in
    Unix seconds; see docs/license-format.md for the clock-rollback rule.
    """
    try:
        payload_bytes, signature = split_certificate(text)
    except ValueError as exc:
        return CertificateCheck(CertificateState.MALFORMED, reason=str(exc))
    message = certificate_message(payload_bytes)
    signer_id = next((kid for kid, key in keys.items() if _verify(key, signature, message)), None)
    if signer_id is None:
        return CertificateCheck(CertificateState.BAD_SIGNATURE, reason="no trusted key signed it")
    try:
        payload = json.loads(payload_bytes.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        return CertificateCheck(CertificateState.MALFORMED, reason="payload is not JSON")
    problem = _well_formed(payload)
    if problem:
        return CertificateCheck(CertificateState.MALFORMED, reason=problem)
    if payload["key_id"] != signer_id:
        return CertificateCheck(CertificateState.MALFORMED, payload, "key_id is not the signer's")
    if product is not None and payload["product"] != product:
        return CertificateCheck(CertificateState.WRONG_PRODUCT, payload)
    if fingerprint is not None and not hmac.compare_digest(
        payload["fingerprint_sha256"], fingerprint_sha256(fingerprint)
    ):
        return CertificateCheck(CertificateState.WRONG_MACHINE, payload)
    if payload["issued_at"] > now:
        return CertificateCheck(
            CertificateState.CLOCK_ROLLBACK, payload, "issued after the local time"
        )
    if now >= payload["refresh_by"] + payload["grace_seconds"]:
        return CertificateCheck(CertificateState.EXPIRED, payload)
    if now >= payload["refresh_by"]:
        return CertificateCheck(CertificateState.REFRESH_DUE, payload)
    return CertificateCheck(CertificateState.VALID, payload)


def entitles(check: CertificateCheck, major_version: int) -> bool:
    """May this (usable) certificate run major version `major_version`?"""
    if not check.usable or check.payload is None:
        return False
    majors: Sequence[int] = check.payload["entitled_major_versions"]
    return major_version in majors
