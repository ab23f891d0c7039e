"""Every document id derived from the outside world's ids, in one place.

Idempotency by construction: a repeat of the same outside event (a Stripe event or
session, a machine activating twice, a retried re-issue) computes the same id and
collides instead of creating a second document. Changing a formula here orphans the
documents written with the old one: do not, without a migration.
"""

from __future__ import annotations

import hashlib


def derived_id(kind: str, *parts: str) -> str:
    """A stable document id derived from outside ids, so a repeat is a no-op."""
    digest = hashlib.sha256(":".join((kind, *parts)).encode()).hexdigest()[:24]
    return f"{kind}_{digest}"


def license_id_for(session_id: str) -> str:
    """The license of a Checkout Session (= order id)."""
    return derived_id("lic", session_id)


def fulfillment_job_id(session_id: str) -> str:
    """The fulfillment e-mail of a Checkout Session."""
    return derived_id("email", "fulfillment", session_id)


def fulfillment_token_id(session_id: str) -> str:
    """The fulfillment download link's token id. Not secret: the token is
    HMAC(derivation secret, token id). Derived so that a second fulfillment attempt
    would collide instead of minting another link."""
    return derived_id("tok", "fulfillment", session_id)


def reconcile_ledger_id(session_id: str) -> str:
    """The ledger entry of a session repaired by reconciliation (not a Stripe event)."""
    return f"reconcile:{session_id}"


def reconcile_refund_ledger_id(charge_id: str, amount_refunded: int) -> str:
    """The ledger entry of a charge's refund state applied by reconciliation: one per
    refunded amount, so a later further refund is a new entry."""
    return f"reconcile:refund:{charge_id}:{amount_refunded}"


def reconcile_dispute_ledger_id(dispute_id: str, status: str) -> str:
    """The ledger entry of a dispute's status applied by reconciliation."""
    return f"reconcile:dispute:{dispute_id}:{status}"


def reissue_job_id(license_id: str, generation: int) -> str:
    """One re-issue e-mail per new generation, however often the command is retried."""
    return derived_id("email", "reissue", license_id, str(generation))


def activation_id(license_id: str, fingerprint_hash: str) -> str:
    """Derived from license and machine, so activating a machine twice is one document."""
    return derived_id("act", license_id, fingerprint_hash)
