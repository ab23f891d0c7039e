"""Download tokens.

A token is 256 bits, URL-safe (43 characters of base64url). Like license keys it is
*derived* (HMAC-SHA256 of its random, non-secret `token_id` under the derivation
secret) so the e-mail worker can put it in a link without it ever being stored or
enqueued. Storage keys the token document by `hash_token(token)` (SHA-256, hex): a
database reader learns nothing usable.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from commerce.errors import Gone, NotFound

TOKEN_BYTES = 32
_TOKEN_SHAPE = re.compile(r"^[A-Za-z0-9_-]{43}$")


class DownloadTokenUnknown(NotFound):
    code = "token_unknown"
    default_detail = "This download link is not valid."


class DownloadTokenExpired(Gone):
    code = "token_expired"
    default_detail = "This download link has expired. Request a new one from the shop."


class DownloadTokenExhausted(Gone):
    code = "token_exhausted"
    default_detail = "This download link has been used the maximum number of times."


class DownloadTokenRevoked(Gone):
    code = "token_revoked"
    default_detail = "This download link has been revoked."


def new_token_id() -> str:
    return secrets.token_hex(16)


def derive_token(secret: bytes, token_id: str) -> str:
    digest = hmac.new(secret, f"genx-download-token:v1:{token_id}".encode(), hashlib.sha256)
    return base64.urlsafe_b64encode(digest.digest()).rstrip(b"=").decode()


def generate_token() -> str:
    """A purely random token (when nobody needs to re-derive it)."""
    return secrets.token_urlsafe(TOKEN_BYTES)


def looks_like_token(candidate: str) -> bool:
    return bool(_TOKEN_SHAPE.match(candidate))


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass(frozen=True)
class DownloadGrant:
    """What storage keeps about a token (never the token)."""

    token_hash: str
    token_id: str
    order_id: str
    license_id: str
    channel: str
    created_at: datetime
    expires_at: datetime
    max_redemptions: int
    redemptions: int = 0
    revoked: bool = False
    secret_id: str = ""

    @classmethod
    def issue(
        cls,
        *,
        token: str,
        token_id: str,
        order_id: str,
        license_id: str,
        channel: str,
        now: datetime,
        ttl: timedelta,
        max_redemptions: int,
        secret_id: str = "",
    ) -> DownloadGrant:
        if max_redemptions < 1:
            raise ValueError("max_redemptions must be at least 1")
        return cls(
            token_hash=hash_token(token),
            token_id=token_id,
            order_id=order_id,
            license_id=license_id,
            channel=channel,
            created_at=now,
            expires_at=now + ttl,
            max_redemptions=max_redemptions,
            secret_id=secret_id,
        )

    def check_redeemable(self, now: datetime) -> None:
        """Raise the specific reason this grant cannot be redeemed now (order checked apart)."""
        if self.revoked:
            raise DownloadTokenRevoked()
        if now >= self.expires_at:
            raise DownloadTokenExpired()
        if self.redemptions >= self.max_redemptions:
            raise DownloadTokenExhausted()

    def redeemed(self, now: datetime) -> DownloadGrant:
        self.check_redeemable(now)
        return replace(self, redemptions=self.redemptions + 1)

    @property
    def remaining(self) -> int:
        return max(0, self.max_redemptions - self.redemptions)
