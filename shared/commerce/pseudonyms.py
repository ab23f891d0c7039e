"""Keyed hashes of what points at a person but is never needed in clear.

- **Client networks** in audit entries (`network`): HMAC-SHA256 with `PSEUDONYM_KEY`,
  16 hex digits. The same network gives the same value (so support can see that
  refusals came from one place) without the audit log holding an address, and nobody
  without the key can test a guessed address against it.
- **Rate-limit buckets** (`rate_limits/{id}`): every bucket name (an e-mail address, a
  network, a key hash, a token hash) is keyed the same way before it is hashed into the
  counter's document id, so the ids cannot be reversed by hashing a dictionary of
  addresses or networks.

A dedicated secret rather than the license-key pepper: the public functions that only
count requests (download, order_status, checkout) must not hold the pepper. Rotating
the key restarts every rate-limit window and makes network hashes from before and
after incomparable; nothing else depends on it (docs/security.md). Missing, the
functions that need it refuse with 503 (fail closed).
"""

from __future__ import annotations

import hashlib
import hmac
import threading

from commerce.secrets import SecretName, SecretSource, decode_secret

NETWORK_HASH_HEX = 16


class Pseudonyms:
    def __init__(self, secrets: SecretSource) -> None:
        self._secrets = secrets
        self._key: bytes | None = None
        self._lock = threading.Lock()

    @property
    def key(self) -> bytes:
        with self._lock:
            if self._key is None:
                self._key = decode_secret(
                    self._secrets.get(SecretName.PSEUDONYM_KEY), SecretName.PSEUDONYM_KEY.value
                )
            return self._key

    def network(self, network: str) -> str:
        """The audit trail's name for a client network (never the address)."""
        digest = hmac.new(self.key, b"network:" + network.encode(), hashlib.sha256)
        return digest.hexdigest()[:NETWORK_HASH_HEX]

    def bucket(self, bucket: str) -> str:
        """A rate-limit bucket's keyed name (hashed again into the counter's id)."""
        return "k:" + hmac.new(self.key, b"bucket:" + bucket.encode(), hashlib.sha256).hexdigest()
