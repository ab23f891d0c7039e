"""Download grants for update links, made from random tokens.

The license API hands an activated plugin a short-lived link to the update it offers.
Unlike the links in e-mails, nobody ever needs to re-derive such a token: it is
answered once, in the signed response. So it is drawn at random (`secrets`), never
derived, and the license API needs no key-derivation secret to make it (it holds only
the pepper, to look keys up, and the signing key).

Storage keeps what it keeps for every grant: the document is keyed by the token's
SHA-256 and carries the expiry and the redemption cap, never the token. The download
function redeems it exactly like a derived token (it looks every token up by that
hash), so no second redemption path exists. `secret_id` is `RANDOM_TOKEN`, a name no
derivation secret ever has: code that tried to re-derive such a token (an e-mail of
the grant) fails with LookupError instead of building a link that does not work.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from commerce.domain.tokens import DownloadGrant, generate_token, new_token_id

RANDOM_TOKEN = "random"  # noqa: S105 - a marker, not a secret


def random_download_grant(
    *,
    order_id: str,
    license_id: str,
    channel: str,
    now: datetime,
    ttl: timedelta,
    max_redemptions: int,
) -> tuple[DownloadGrant, str]:
    """A new grant and its token (hand the token to the caller once; never store it)."""
    token = generate_token()
    grant = DownloadGrant.issue(
        token=token,
        token_id=new_token_id(),
        order_id=order_id,
        license_id=license_id,
        channel=channel,
        now=now,
        ttl=ttl,
        max_redemptions=max_redemptions,
        secret_id=RANDOM_TOKEN,
    )
    return grant, token
