"""Ed25519 signatures for release manifests, license responses and certificates.

The private key is a 32-byte seed from the secrets port (SIGNING_PRIVATE_KEY,
base64url). Verification needs only the public key, so plugins and the release CLI
can check offline. Signatures travel as base64url without padding.
"""

from __future__ import annotations

import base64
import threading

from cryptography.exceptions import InvalidSignature as _CryptoInvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from commerce.errors import SecretUnavailable
from commerce.secrets import SecretName, SecretSource


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unb64url(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def public_key_from_b64(text: str) -> Ed25519PublicKey:
    return Ed25519PublicKey.from_public_bytes(unb64url(text))


def verify(public_key: Ed25519PublicKey, message: bytes, signature_b64: str) -> bool:
    """True when `signature_b64` is a valid signature of `message`; never raises on junk."""
    try:
        public_key.verify(unb64url(signature_b64), message)
    except (_CryptoInvalidSignature, ValueError, TypeError):
        return False
    return True


class Signer:
    """Signs with the shop's Ed25519 key, loaded from secrets on first use (fail closed)."""

    def __init__(self, secrets: SecretSource) -> None:
        self._secrets = secrets
        self._key: Ed25519PrivateKey | None = None
        self._lock = threading.Lock()

    @property
    def private_key(self) -> Ed25519PrivateKey:
        with self._lock:
            if self._key is None:
                raw = self._secrets.get(SecretName.SIGNING_PRIVATE_KEY)
                try:
                    seed = unb64url(raw)
                    self._key = Ed25519PrivateKey.from_private_bytes(seed)
                except ValueError:
                    raise SecretUnavailable(
                        "SIGNING_PRIVATE_KEY must be a base64url 32-byte Ed25519 seed"
                    ) from None
            return self._key

    @property
    def public_key(self) -> Ed25519PublicKey:
        return self.private_key.public_key()

    def public_key_b64(self) -> str:
        return b64url(self.public_key.public_bytes(Encoding.Raw, PublicFormat.Raw))

    def sign(self, message: bytes) -> str:
        return b64url(self.private_key.sign(message))
