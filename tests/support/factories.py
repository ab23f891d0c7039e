"""Factories for realistic domain objects, shared by tests and `make seed`.

Each factory returns a valid object with sensible defaults; keyword overrides replace
any field. Ids follow the same derivations as fulfillment (order = Checkout Session
id; license, grant and e-mail job ids derived from it), and keys and tokens are
derived through `KeyService`, so seeded licenses validate and seeded links redeem
when the functions run with the same secrets.

`purchase(...)` builds a whole order in a given state with everything that state
implies; `sample_purchases(...)` is the set `make seed` loads.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from commerce.domain.models import (
    Customer,
    EmailJob,
    EmailJobKind,
    EmailJobState,
    License,
    LicenseStatus,
    Order,
    mask_email,
)
from commerce.domain.orders import OrderState
from commerce.domain.tokens import DownloadGrant
from commerce.grants import new_download_grant, new_email_job
from commerce.keys import KeyService, normalize_email
from commerce.purchase.fulfillment import (
    fulfillment_job_id,
    fulfillment_token_id,
    license_id_for,
)
from commerce.secrets import EnvSecrets

NOW = datetime(2026, 3, 1, 9, 30, tzinfo=UTC)
PRICE_EUR_CENTS = 4900


def _fixed_secret(label: str) -> str:
    """Deterministic test-only 32-byte secret, base64url (never used outside tests)."""
    return base64.urlsafe_b64encode(hashlib.sha256(label.encode()).digest()).rstrip(b"=").decode()


TEST_SECRETS: dict[str, str] = {
    "LICENSE_KEY_PEPPER": _fixed_secret("genx-tests-pepper"),
    "KEY_DERIVATION_SECRET": _fixed_secret("genx-tests-derivation"),
    "SIGNING_PRIVATE_KEY": _fixed_secret("genx-tests-ed25519-seed"),
    "PSEUDONYM_KEY": _fixed_secret("genx-tests-pseudonym-key"),
}


def key_service(secrets: Mapping[str, str] | None = None, prefix: str = "GENX") -> KeyService:
    """A KeyService over fixed test secrets (or the given ones, e.g. .local/secrets.env)."""
    return KeyService(EnvSecrets(dict(secrets if secrets is not None else TEST_SECRETS)), prefix)


def session_id(n: int) -> str:
    """A Checkout Session id of Stripe's shape (test mode)."""
    return f"cs_test_{hashlib.sha256(f'session-{n}'.encode()).hexdigest()[:24]}"


def make_customer(
    keys: KeyService, email: str = "ada@example.com", *, now: datetime = NOW, **overrides: Any
) -> Customer:
    fields: dict[str, Any] = {
        "id": keys.customer_id_for(email),
        "email": normalize_email(email),
        "created_at": now,
        "updated_at": now,
    }
    return Customer(**{**fields, **overrides})


def make_order(
    order_id: str | None = None,
    state: OrderState = OrderState.PAID,
    *,
    customer: Customer | None = None,
    now: datetime = NOW,
    **overrides: Any,
) -> Order:
    order_id = order_id or session_id(1)
    paid = state is not OrderState.PENDING and state is not OrderState.FAILED
    fields: dict[str, Any] = {
        "id": order_id,
        "state": state,
        "created_at": now,
        "updated_at": now,
        "customer_id": customer.id if customer else None,
        "email_masked": mask_email(customer.email) if customer else None,
        "amount_total": PRICE_EUR_CENTS,
        "currency": "eur",
        "payment_intent_id": f"pi_test_{order_id[-16:]}" if paid else None,
        "amount_refunded": PRICE_EUR_CENTS if state is OrderState.REFUNDED else 0,
    }
    return Order(**{**fields, **overrides})


def make_license(
    keys: KeyService,
    order: Order,
    *,
    now: datetime = NOW,
    generation: int = 1,
    **overrides: Any,
) -> tuple[License, str]:
    """The license of `order` and its plaintext key (hand to the test, never store)."""
    license_id = overrides.pop("id", license_id_for(order.id))
    issued = keys.issue_key(license_id, generation)
    fields: dict[str, Any] = {
        "id": license_id,
        "order_id": order.id,
        "customer_id": order.customer_id,
        "key_hash": issued.key_hash,
        "key_hint": issued.key_hint,
        "generation": issued.generation,
        "secret_id": issued.secret_id,
        "order_state": order.state,  # the mirror fulfillment keeps
        "created_at": now,
        "updated_at": now,
    }
    return License(**{**fields, **overrides}), issued.key


def make_grant(
    keys: KeyService,
    order: Order,
    license_: License,
    *,
    now: datetime = NOW,
    ttl: timedelta = timedelta(hours=72),
    max_redemptions: int = 5,
    token_id: str | None = None,
    **overrides: Any,
) -> tuple[DownloadGrant, str]:
    """A download grant and its plaintext token (derived, as the e-mail worker does)."""
    grant = new_download_grant(
        keys,
        order_id=order.id,
        license_id=license_.id,
        channel=license_.channel,
        now=now,
        ttl=ttl,
        max_redemptions=max_redemptions,
        token_id=token_id or fulfillment_token_id(order.id),
    )
    token = keys.token_for(grant.token_id, grant.secret_id)
    return replace(grant, **overrides), token


def make_email_job(
    customer: Customer,
    order: Order,
    *,
    license_: License | None = None,
    grants: tuple[DownloadGrant, ...] = (),
    kind: EmailJobKind = EmailJobKind.FULFILLMENT,
    now: datetime = NOW,
    **overrides: Any,
) -> EmailJob:
    job = new_email_job(
        overrides.pop("id", fulfillment_job_id(order.id)),
        kind=kind,
        customer_id=customer.id,
        now=now,
        order_ids=(order.id,),
        license_ids=(license_.id,) if license_ else (),
        download_token_ids=tuple(grant.token_id for grant in grants),
        locale=customer.locale,
    )
    return job.model_copy(update=overrides)


@dataclass(frozen=True)
class Purchase:
    """One order with everything its state implies (plaintexts for tests only)."""

    customer: Customer
    order: Order
    license: License | None = None
    key: str | None = None
    grants: tuple[DownloadGrant, ...] = ()
    tokens: tuple[str, ...] = ()
    email_jobs: tuple[EmailJob, ...] = field(default=())


_LICENSE_STATUS = {
    OrderState.FULFILLED: LicenseStatus.ACTIVE,
    OrderState.DISPUTED: LicenseStatus.SUSPENDED,
    OrderState.REFUNDED: LicenseStatus.REVOKED,
    OrderState.REVOKED: LicenseStatus.REVOKED,
}


def purchase(
    keys: KeyService,
    state: OrderState,
    *,
    email: str = "ada@example.com",
    order_id: str | None = None,
    now: datetime = NOW,
) -> Purchase:
    """An order in `state`: pending/failed/paid have no license yet; fulfilled and later
    states have a license (suspended while disputed, revoked after a refund), a grant
    and a sent fulfillment e-mail."""
    customer = make_customer(keys, email, now=now)
    order = make_order(order_id, state, customer=customer, now=now)
    if state not in _LICENSE_STATUS:
        return Purchase(customer, order)
    license_, key = make_license(keys, order, now=now, status=_LICENSE_STATUS[state])
    revoked = state in {OrderState.REFUNDED, OrderState.REVOKED}  # disputed: order gates it
    grant, token = make_grant(keys, order, license_, now=now, revoked=revoked)
    job = make_email_job(
        customer,
        order,
        license_=license_,
        grants=(grant,),
        now=now,
        state=EmailJobState.SENT,
        attempts=1,
        sent_at=now,
    )
    order = order.model_copy(
        update={"license_id": license_.id, "download_token_ids": (grant.token_id,)}
    )
    customer = customer.model_copy(update={"order_ids": (order.id,)})
    return Purchase(customer, order, license_, key, (grant,), (token,), (job,))


def sample_purchases(keys: KeyService, now: datetime) -> list[Purchase]:
    """What `make seed` loads: one order in each interesting state, distinct buyers."""
    states = [
        (OrderState.FULFILLED, "ada@example.com"),
        (OrderState.PENDING, "grace@example.com"),
        (OrderState.PAID, "linus@example.com"),
        (OrderState.FAILED, "barbara@example.com"),
        (OrderState.REFUNDED, "edsger@example.com"),
        (OrderState.DISPUTED, "margaret@example.com"),
    ]
    return [
        purchase(keys, state, email=email, order_id=session_id(n), now=now - timedelta(hours=n))
        for n, (state, email) in enumerate(states, start=1)
    ]
