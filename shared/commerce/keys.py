"""Key material service: issues, re-derives and recognises license keys and tokens.

Holds the pepper and derivation secrets (from the SecretSource, loaded on first use,
so a function that never needs them never fetches them) and applies the pure rules of
`domain.license_keys` and `domain.tokens`.
"""

from __future__ import annotations

import hashlib
import hmac
import threading
from dataclasses import dataclass

from commerce.domain import license_keys, tokens
from commerce.secrets import SecretName, SecretSource
from commerce.secrets import decode_secret as decode_secret  # re-exported


@dataclass(frozen=True)
class IssuedKey:
    key: str  # plaintext: hand to the caller, never store or log
    key_hash: str
    key_hint: str
    generation: int
    secret_id: str


class KeyService:
    def __init__(self, secrets: SecretSource, prefix: str = license_keys.DEFAULT_PREFIX) -> None:
        self._secrets = secrets
        self.prefix = prefix
        self._material: license_keys.KeyMaterial | None = None
        self._pepper: bytes | None = None
        self._lock = threading.Lock()

    @property
    def pepper(self) -> bytes:
        """The pepper alone: hashing and recognising keys needs no derivation secret, so
        a function that only looks keys up (license_api) never asks for one."""
        with self._lock:
            if self._pepper is None:
                self._pepper = decode_secret(
                    self._secrets.get(SecretName.LICENSE_KEY_PEPPER), "LICENSE_KEY_PEPPER"
                )
            return self._pepper

    @property
    def material(self) -> license_keys.KeyMaterial:
        pepper = self.pepper
        with self._lock:
            if self._material is None:
                current = decode_secret(
                    self._secrets.get(SecretName.KEY_DERIVATION_SECRET), "KEY_DERIVATION_SECRET"
                )
                previous_raw = self._secrets.get_optional(
                    SecretName.KEY_DERIVATION_SECRETS_PREVIOUS
                )
                previous = [
                    decode_secret(part.strip(), "KEY_DERIVATION_SECRETS_PREVIOUS")
                    for part in (previous_raw or "").split(",")
                    if part.strip()
                ]
                self._material = license_keys.KeyMaterial.build(pepper, current, previous)
            return self._material

    # -- license keys ----------------------------------------------------------------
    def issue_key(self, license_id: str, generation: int = 1) -> IssuedKey:
        material = self.material
        key = material.derive(license_id, generation, material.current_secret_id, self.prefix)
        return IssuedKey(
            key=key,
            key_hash=license_keys.hash_key(key, material.pepper),
            key_hint=license_keys.key_hint(key),
            generation=generation,
            secret_id=material.current_secret_id,
        )

    def key_for(self, license_id: str, generation: int, secret_id: str) -> str:
        """Re-derive a license's key (for e-mails). Raises LookupError if the secret that
        made it is no longer configured."""
        return self.material.derive(license_id, generation, secret_id, self.prefix)

    def normalize(self, raw_key: str) -> str:
        return license_keys.normalize_key(raw_key, self.prefix)

    def hash_key(self, raw_key: str) -> str:
        """Normalise (raising InvalidLicenseKey on typos) and hash for lookup."""
        return license_keys.hash_key(self.normalize(raw_key), self.pepper)

    def key_matches(self, canonical_key: str, stored_hash: str) -> bool:
        return license_keys.key_matches(canonical_key, stored_hash, self.pepper)

    # -- download tokens -------------------------------------------------------------
    def token_for(self, token_id: str, secret_id: str | None = None) -> str:
        material = self.material
        secret = material.derivation_secrets[secret_id or material.current_secret_id]
        return tokens.derive_token(secret, token_id)

    def customer_id_for(self, email: str) -> str:
        """Customers are keyed by a keyed hash of the normalised address."""
        return customer_id(email, self.pepper)


def customer_id(email: str, pepper: bytes) -> str:
    """`cus_` + HMAC-SHA256(pepper, "customer:" + normalised address), shortened."""
    digest = hmac.new(pepper, b"customer:" + normalize_email(email).encode(), hashlib.sha256)
    return "cus_" + digest.hexdigest()[:32]


def normalize_email(email: str) -> str:
    return email.strip().lower()
