"""Building the records that give a buyer things: download grants and e-mail jobs.

Shared by fulfillment (webhook), re-send (storefront), re-issue (support) and update
checks, so every path creates them the same way. Nothing here holds a plaintext
token or key: the token is derived from `token_id` when a link is needed.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from commerce.domain.models import EmailJob, EmailJobKind
from commerce.domain.tokens import DownloadGrant, new_token_id
from commerce.keys import KeyService


def new_download_grant(
    keys: KeyService,
    *,
    order_id: str,
    license_id: str,
    channel: str,
    now: datetime,
    ttl: timedelta,
    max_redemptions: int,
    token_id: str | None = None,
) -> DownloadGrant:
    """A grant whose token is derivable from its (stored, non-secret) token_id."""
    token_id = token_id or new_token_id()
    secret_id = keys.material.current_secret_id
    return DownloadGrant.issue(
        token=keys.token_for(token_id, secret_id),
        token_id=token_id,
        order_id=order_id,
        license_id=license_id,
        channel=channel,
        now=now,
        ttl=ttl,
        max_redemptions=max_redemptions,
        secret_id=secret_id,
    )


def download_link(public_base_url: str, token: str) -> str:
    return f"{public_base_url.rstrip('/')}/d/{token}"


def new_email_job(
    job_id: str,
    *,
    kind: EmailJobKind,
    customer_id: str,
    now: datetime,
    order_ids: tuple[str, ...] = (),
    license_ids: tuple[str, ...] = (),
    download_token_ids: tuple[str, ...] = (),
    locale: str = "en",
) -> EmailJob:
    return EmailJob(
        id=job_id,
        kind=kind,
        customer_id=customer_id,
        order_ids=order_ids,
        license_ids=license_ids,
        download_token_ids=download_token_ids,
        locale=locale,
        created_at=now,
        updated_at=now,
        next_attempt_at=now,  # due at once; the sweeper's clock starts here
    )
