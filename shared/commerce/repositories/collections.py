"""The repositories of the core collections (see docs/data-model.md)."""

from __future__ import annotations

import secrets
from datetime import datetime

from google.cloud import firestore

from commerce.domain.models import (
    Activation,
    AuditEntry,
    Customer,
    EmailJob,
    EmailJobState,
    License,
    Order,
    WebhookEventRecord,
)
from commerce.domain.tokens import DownloadGrant
from commerce.repositories.base import Repository, Transaction, Writer, to_storage


class OrderRepository(Repository[Order]):
    collection = "orders"
    model = Order

    def by_payment_intent(
        self, payment_intent_id: str, tx: Transaction | None = None
    ) -> Order | None:
        found = self.where("payment_intent_id", "==", payment_intent_id, limit=1, tx=tx)
        return found[0] if found else None

    def by_customer(self, customer_id: str, tx: Transaction | None = None) -> list[Order]:
        return self.where("customer_id", "==", customer_id, tx=tx)


class CustomerRepository(Repository[Customer]):
    collection = "customers"
    model = Customer


class LicenseRepository(Repository[License]):
    collection = "licenses"
    model = License

    def by_key_hash(self, key_hash: str, tx: Transaction | None = None) -> License | None:
        found = self.where("key_hash", "==", key_hash, limit=1, tx=tx)
        return found[0] if found else None

    def by_order(self, order_id: str) -> list[License]:
        return self.where("order_id", "==", order_id)

    def by_customer(self, customer_id: str, tx: Transaction | None = None) -> list[License]:
        return self.where("customer_id", "==", customer_id, tx=tx)


class DownloadTokenRepository(Repository[DownloadGrant]):
    """Keyed by the token's SHA-256: the token itself is never stored."""

    collection = "download_tokens"
    model = DownloadGrant
    id_field = "token_hash"

    def by_order(self, order_id: str, tx: Transaction | None = None) -> list[DownloadGrant]:
        return self.where("order_id", "==", order_id, tx=tx)

    def by_token_id(self, token_id: str) -> DownloadGrant | None:
        found = self.where("token_id", "==", token_id, limit=1)
        return found[0] if found else None


class ActivationRepository(Repository[Activation]):
    """`activations/{derived id}`: the machines bound to licenses."""

    collection = "activations"
    model = Activation


class WebhookEventRepository(Repository[WebhookEventRecord]):
    collection = "webhook_events"
    model = WebhookEventRecord


class EmailJobRepository(Repository[EmailJob]):
    collection = "email_jobs"
    model = EmailJob

    def by_customer(self, customer_id: str, tx: Transaction | None = None) -> list[EmailJob]:
        return self.where("customer_id", "==", customer_id, tx=tx)

    def in_state(self, state: EmailJobState, *, limit: int = 500) -> list[EmailJob]:
        return self.where("state", "==", state, limit=limit)

    def stale(
        self, state: EmailJobState, updated_before: datetime, *, limit: int = 500
    ) -> list[EmailJob]:
        query = (
            self.db.collection(self.collection)
            .where(filter=firestore.FieldFilter("state", "==", state.value))
            .where(filter=firestore.FieldFilter("updated_at", "<", updated_before))
            .limit(limit)
        )
        return [self.from_document(s.id, s.to_dict() or {}) for s in query.stream()]


class AuditLogRepository:
    """Append-only. Entries get generated ids; in a transaction they commit with it."""

    collection = "audit_log"

    def __init__(self, db: firestore.Client) -> None:
        self.db = db

    def append(self, entry: AuditEntry, tx: Writer | None = None) -> str:
        # A random id like the library's own (which draws 20 characters from the system
        # random source one at a time; two entries per fulfilment): 120 bits at once.
        ref = self.db.collection(self.collection).document(secrets.token_urlsafe(15))
        data = to_storage(entry.model_dump(mode="python"))
        if tx is not None:
            tx.create(ref, data)
        else:
            ref.create(data)
        return str(ref.id)

    def for_order(self, order_id: str) -> list[AuditEntry]:
        query = self.db.collection(self.collection).where(
            filter=firestore.FieldFilter("order_id", "==", order_id)
        )
        entries = [AuditEntry.model_validate(s.to_dict() or {}) for s in query.stream()]
        return sorted(entries, key=lambda entry: entry.at)

    def recent(self, *, action: str | None = None, limit: int = 100) -> list[AuditEntry]:
        query = self.db.collection(self.collection)
        if action is not None:
            query = query.where(filter=firestore.FieldFilter("action", "==", action))  # type: ignore[assignment]
        entries = [AuditEntry.model_validate(s.to_dict() or {}) for s in query.limit(1000).stream()]
        return sorted(entries, key=lambda entry: entry.at, reverse=True)[:limit]
