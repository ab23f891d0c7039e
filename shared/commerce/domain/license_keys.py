"""License keys: `GENX-XXXX-XXXX-XXXX`.

Alphabet: Crockford's base 32 (digits and letters without I, L, O, U), so nothing
looks like anything else. The twelve characters are eleven data characters and one
check character chosen so that sum(alpha^i * c_i) == 0 in GF(32), alpha primitive.
Because every position has a distinct non-zero weight, every single-character typo
and every swap of two different adjacent characters changes the sum: typos are
caught before any lookup.

Keys are never stored. A key is *derived* from a secret and the license's id and
generation (HMAC-SHA256), so the e-mail worker and "re-send my license" can
recompute it; storage holds only `hash_key` (HMAC-SHA256 under a separate pepper)
and a short hint. See docs/security.md for the rotation story.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass

from commerce.errors import InvalidLicenseKey

ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
_INDEX = {char: i for i, char in enumerate(ALPHABET)}
DATA_LENGTH = 11
BODY_LENGTH = DATA_LENGTH + 1
GROUP = 4
DEFAULT_PREFIX = "GENX"

# What people paste: look-alikes mapped onto the alphabet.
_CONFUSABLE = str.maketrans({"O": "0", "I": "1", "L": "1"})
_SEPARATORS = re.compile(r"[\s\-_.\u2010-\u2015]+")

# GF(2^5) with the primitive polynomial x^5 + x^2 + 1.
_POLY = 0b100101


def _gf_mul(a: int, b: int) -> int:
    product = 0
    while b:
        if b & 1:
            product ^= a
        b >>= 1
        a <<= 1
        if a & 0b100000:
            a ^= _POLY
    return product


_WEIGHTS: list[int] = []
_w = 1
for _ in range(BODY_LENGTH):
    _WEIGHTS.append(_w)
    _w = _gf_mul(_w, 2)  # alpha = x has order 31: all weights distinct
_INVERSE = {
    value: inv for value in range(1, 32) for inv in range(1, 32) if _gf_mul(value, inv) == 1
}


# weight * value for every weight and every 5-bit value: every key the license API
# sees is checked, and 15 table lookups cost a tenth of 15 multiplications.
_WEIGHTED = [[_gf_mul(weight, value) for value in range(32)] for weight in _WEIGHTS]


def _syndrome(values: list[int]) -> int:
    total = 0
    for products, value in zip(_WEIGHTED, values, strict=False):
        total ^= products[value]
    return total


def check_character(data: str) -> str:
    """The check character for eleven data characters."""
    if len(data) != DATA_LENGTH or any(char not in _INDEX for char in data):
        raise ValueError("need eleven characters of the key alphabet")
    partial = _syndrome([_INDEX[char] for char in data])
    # weight_last * c == partial (addition is XOR) => c = partial / weight_last
    value = 0 if partial == 0 else _gf_mul(partial, _INVERSE[_WEIGHTS[DATA_LENGTH]])
    return ALPHABET[value]


def is_valid_body(body: str) -> bool:
    if len(body) != BODY_LENGTH or any(char not in _INDEX for char in body):
        return False
    return _syndrome([_INDEX[char] for char in body]) == 0


def format_key(body: str, prefix: str = DEFAULT_PREFIX) -> str:
    groups = [body[i : i + GROUP] for i in range(0, BODY_LENGTH, GROUP)]
    return "-".join([prefix, *groups])


def _body_from_data(data: str, prefix: str) -> str:
    return format_key(data + check_character(data), prefix)


def generate_key(prefix: str = DEFAULT_PREFIX) -> str:
    """A random key from the OS's secure source (tests and tools; shops derive keys)."""
    data = "".join(secrets.choice(ALPHABET) for _ in range(DATA_LENGTH))
    return _body_from_data(data, prefix)


def derive_key(
    secret: bytes, license_id: str, generation: int, prefix: str = DEFAULT_PREFIX
) -> str:
    """The key of a license: a keyed PRF of (license id, generation), 55 bits of output."""
    message = f"genx-license-key:v1:{license_id}:{generation}".encode()
    digest = hmac.new(secret, message, hashlib.sha256).digest()
    number = int.from_bytes(digest[:8], "big")
    data = "".join(ALPHABET[(number >> (5 * i)) & 31] for i in range(DATA_LENGTH))
    return _body_from_data(data, prefix)


def normalize_key(raw: str, prefix: str = DEFAULT_PREFIX) -> str:
    """Canonical `PREFIX-XXXX-XXXX-XXXX` from whatever a person pasted.

    Accepts lower case, spaces, missing or extra dashes, O/0 and I/1/L confusion, and
    a missing prefix. Raises InvalidLicenseKey when the result is not a valid key.
    """
    if not isinstance(raw, str) or len(raw) > 100:
        raise InvalidLicenseKey()
    compact = _SEPARATORS.sub("", raw).upper()
    if len(compact) == len(prefix) + BODY_LENGTH and compact.startswith(prefix):
        compact = compact[len(prefix) :]
    body = compact.translate(_CONFUSABLE)
    if not is_valid_body(body):
        raise InvalidLicenseKey()
    return format_key(body, prefix)


def hash_key(canonical_key: str, pepper: bytes) -> str:
    """Keyed hash stored instead of the key (hex). Input must be normalized."""
    return hmac.new(pepper, canonical_key.encode(), hashlib.sha256).hexdigest()


def key_matches(canonical_key: str, stored_hash: str, pepper: bytes) -> bool:
    return hmac.compare_digest(hash_key(canonical_key, pepper), stored_hash)


def key_hint(canonical_key: str) -> str:
    """The last group, safe to show to support and in e-mails' subjects."""
    return canonical_key.rsplit("-", 1)[-1]


@dataclass(frozen=True)
class KeyMaterial:
    """Secrets needed to derive and hash keys. `secret_id` names the derivation secret
    so licenses remember which one made their key (rotation)."""

    pepper: bytes
    derivation_secrets: dict[str, bytes]  # secret id -> secret; first is current
    current_secret_id: str

    @staticmethod
    def secret_id(secret: bytes) -> str:
        return hashlib.sha256(b"genx-secret-id:" + secret).hexdigest()[:12]

    @classmethod
    def build(
        cls, pepper: bytes, current: bytes, previous: list[bytes] | None = None
    ) -> KeyMaterial:
        if len(pepper) < 16 or len(current) < 16:
            raise ValueError("pepper and derivation secret need at least 16 bytes")
        secrets_by_id = {cls.secret_id(current): current}
        for old in previous or []:
            secrets_by_id.setdefault(cls.secret_id(old), old)
        return cls(pepper, secrets_by_id, cls.secret_id(current))

    def derive(self, license_id: str, generation: int, secret_id: str, prefix: str) -> str:
        try:
            secret = self.derivation_secrets[secret_id]
        except KeyError:
            raise LookupError(f"derivation secret {secret_id} is not available") from None
        return derive_key(secret, license_id, generation, prefix)
