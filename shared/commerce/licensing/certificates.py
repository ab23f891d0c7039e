"""Issuing offline license certificates (the format is in docs/license-format.md).

A certificate binds one license to one machine for a while: the plugin verifies it with
the public key alone (`commerce.licensing.verifier`) and runs offline until
`refresh_by + grace_seconds`.
"""

from __future__ import annotations

import weakref
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from commerce.domain.models import License
from commerce.licensing.schemas import Activation
from commerce.licensing.verifier import (
    CERTIFICATE_FORMAT,
    canonical_json,
    certificate_message,
    certificate_text,
    key_id,
)
from commerce.signing import Signer, unb64url


@dataclass(frozen=True)
class CertificatePolicy:
    refresh_after: timedelta
    grace: timedelta


def certificate_payload(
    license_: License,
    activation: Activation,
    *,
    now: datetime,
    policy: CertificatePolicy,
    signer_key_id: str,
) -> dict[str, Any]:
    issued_at = int(now.timestamp())
    return {
        "activation_id": activation.id,
        "channel": license_.channel,
        "entitled_major_versions": sorted(set(license_.entitled_major_versions)),
        "fingerprint_sha256": activation.fingerprint_sha256,
        "format": CERTIFICATE_FORMAT,
        "grace_seconds": int(policy.grace.total_seconds()),
        "issued_at": issued_at,
        "key_hint": license_.key_hint,
        "key_id": signer_key_id,
        "license_id": license_.id,
        "product": license_.product_id,
        "refresh_by": issued_at + int(policy.refresh_after.total_seconds()),
    }


_KEY_IDS: weakref.WeakKeyDictionary[Signer, str] = weakref.WeakKeyDictionary()


def signer_key_id(signer: Signer) -> str:
    """The id of the signer's key, derived once per signer (a Signer keeps the key it
    first loaded, so the id cannot change; every license answer names it)."""
    known = _KEY_IDS.get(signer)
    if known is None:
        known = key_id(unb64url(signer.public_key_b64()))
        _KEY_IDS[signer] = known
    return known


def sign_certificate(payload: dict[str, Any], signer: Signer) -> str:
    """The certificate text `genxcert1.<payload>.<signature>` for `payload`."""
    payload_bytes = canonical_json(payload)
    signature = signer.private_key.sign(certificate_message(payload_bytes))
    return certificate_text(payload_bytes, signature)


def issue_certificate(
    license_: License,
    activation: Activation,
    *,
    now: datetime,
    policy: CertificatePolicy,
    signer: Signer,
) -> tuple[str, dict[str, Any]]:
    payload = certificate_payload(
        license_, activation, now=now, policy=policy, signer_key_id=signer_key_id(signer)
    )
    return sign_certificate(payload, signer), payload
