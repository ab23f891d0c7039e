"""An in-memory adapter of the unit-of-work port, for fast service tests (no Java).

Same contract as the Firestore adapter (tests/integration/test_unit_of_work_contract.py
runs one suite against both): reads before writes, nothing written unless the unit
commits, `create` of an existing document and `update` of a missing one fail the
whole commit, a unit reads what was committed before it. Units of work run one at a
time (a re-entrant lock held from the first use to commit or rollback), so there is
no contention to retry; the emulator tests keep contention. Documents are stored in
their stored form (`Codec.to_document`), so a value that Firestore would not keep
(a tuple, an enum) comes back as Firestore would return it.
"""

from __future__ import annotations

import secrets
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

from commerce.domain.models import (
    Activation,
    AuditEntry,
    Customer,
    EmailJob,
    License,
    Order,
    WebhookEventRecord,
)
from commerce.domain.rate_limits import RateCounter, RateDecision, RateWindow, window_for
from commerce.domain.releases import Release
from commerce.domain.tokens import DownloadGrant
from commerce.errors import AlreadyExists, NotFound
from commerce.repositories.codec import Codec, to_storage
from commerce.unit_of_work import (
    AuditTrail,
    Collection,
    Found,
    Key,
    OutsideUnitOfWork,
    ReadAfterWrite,
    Storage,
    UnitOfWork,
)

T = TypeVar("T")
R = TypeVar("R")
Documents = dict[str, dict[str, dict[str, Any]]]  # collection -> id -> stored fields

COLLECTIONS: dict[str, tuple[str, type[Any], str]] = {
    # attribute: (collection, model, id field)
    "orders": ("orders", Order, "id"),
    "customers": ("customers", Customer, "id"),
    "licenses": ("licenses", License, "id"),
    "download_tokens": ("download_tokens", DownloadGrant, "token_hash"),
    "email_jobs": ("email_jobs", EmailJob, "id"),
    "ledger": ("webhook_events", WebhookEventRecord, "id"),
    "rate_counters": ("rate_limits", RateCounter, "id"),
    "activations": ("activations", Activation, "id"),
    "releases": ("releases", Release, "id"),
}
AUDIT_COLLECTION = "audit_log"


class MemoryStorage(Storage):
    """The documents, shared by every unit of work made from it."""

    def __init__(self) -> None:
        self.documents: Documents = {}
        self.lock = threading.RLock()
        self.codecs: dict[str, Codec[Any]] = {
            name: Codec(model, id_field) for name, model, id_field in COLLECTIONS.values()
        }
        self.commits = 0

    def unit_of_work(self) -> MemoryUnitOfWork:
        return MemoryUnitOfWork(self)

    def batch(self) -> MemoryUnitOfWork:
        return MemoryUnitOfWork(self)

    # -- inspection (tests) ------------------------------------------------------------
    def all(self, collection: str) -> dict[str, dict[str, Any]]:
        """Every stored document of `collection` (id -> fields), as committed."""
        with self.lock:
            return {
                doc_id: dict(data) for doc_id, data in self.documents.get(collection, {}).items()
            }

    def load(self, attribute: str, doc_id: str) -> Any:
        """The committed document `doc_id` of collection `attribute` as a value."""
        collection = COLLECTIONS[attribute][0]
        data = self.all(collection).get(doc_id)
        return None if data is None else self.codecs[collection].from_document(doc_id, data)

    def audit_actions(self) -> list[str]:
        entries = sorted(self.all(AUDIT_COLLECTION).values(), key=lambda e: e["at"])
        return [entry["action"] for entry in entries]

    def counts(self) -> dict[str, int]:
        with self.lock:
            return {name: len(docs) for name, docs in self.documents.items() if docs}


@dataclass
class _Write:
    kind: str  # create | set | update | delete
    collection: str
    doc_id: str
    data: dict[str, Any] = field(default_factory=dict)


class MemoryUnitOfWork(UnitOfWork):
    def __init__(self, storage: MemoryStorage) -> None:
        self.storage = storage
        self._writes: list[_Write] | None = None
        for attribute, (collection, _model, _id) in COLLECTIONS.items():
            setattr(
                self, attribute, _MemoryCollection(collection, storage.codecs[collection], self)
            )
        self.audit = _MemoryAudit(self)

    def _start(self) -> None:
        self.storage.lock.acquire()
        self._writes = []

    @property
    def writes(self) -> list[_Write]:
        if self._writes is None:
            raise OutsideUnitOfWork("use the unit of work inside `with` (or `run`)")
        return self._writes

    def committed_data(self, collection: str, doc_id: str) -> dict[str, Any] | None:
        if self.writes:
            raise ReadAfterWrite("reads must come before writes in a unit of work")
        return self.storage.documents.get(collection, {}).get(doc_id)

    def read(self, *keys: Key[Any]) -> Found:
        results: dict[Key[Any], Any] = {}
        for key in keys:
            data = self.committed_data(key.collection, key.doc_id)
            codec = self.storage.codecs[key.collection]
            results[key] = None if data is None else codec.from_document(key.doc_id, data)
        return Found(results)

    def add(self, write: _Write) -> None:
        self.writes.append(write)

    def commit(self) -> None:
        writes = self.writes
        try:
            staged = {name: dict(docs) for name, docs in self.storage.documents.items()}
            for write in writes:
                docs = staged.setdefault(write.collection, {})
                present = write.doc_id in docs
                if write.kind == "create" and present:
                    raise AlreadyExists(f"{write.collection}/{write.doc_id} exists")
                if write.kind == "update" and not present:
                    raise NotFound(f"no document {write.collection}/{write.doc_id} to update")
                if write.kind == "delete":
                    docs.pop(write.doc_id, None)
                elif write.kind == "update":
                    docs[write.doc_id] = {**docs[write.doc_id], **write.data}
                else:
                    docs[write.doc_id] = dict(write.data)
            self.storage.documents = staged
            self.storage.commits += 1
            self.committed = True
        finally:
            self._release()

    def rollback(self) -> None:
        if self._writes is not None:
            self._release()

    def _release(self) -> None:
        self._writes = None
        self.storage.lock.release()

    def run(self, work: Callable[[UnitOfWork], R]) -> R:
        with self:
            result = work(self)
            self.commit()
        return result


_COMPARE: dict[str, Callable[[Any, Any], bool]] = {
    "==": lambda stored, wanted: bool(stored == wanted),
    "<": lambda stored, wanted: stored is not None and bool(stored < wanted),
    ">": lambda stored, wanted: stored is not None and bool(stored > wanted),
}


class _MemoryCollection(Collection[T]):
    def __init__(self, name: str, codec: Codec[T], uow: MemoryUnitOfWork) -> None:
        self.name = name
        self.codec = codec
        self.uow = uow

    def get(self, doc_id: str) -> T | None:
        data = self.uow.committed_data(self.name, doc_id)
        return None if data is None else self.codec.from_document(doc_id, data)

    def get_many(self, doc_ids: list[str]) -> list[T]:
        return [item for doc_id in doc_ids if (item := self.get(doc_id)) is not None]

    def query(self, *filters: tuple[str, str, Any], limit: int | None = None) -> list[T]:
        if self.uow.writes:
            raise ReadAfterWrite("reads must come before writes in a unit of work")
        tests = [(field, _COMPARE[op], to_storage(value)) for field, op, value in filters]
        found = [
            self.codec.from_document(doc_id, data)
            for doc_id, data in sorted(self.uow.storage.documents.get(self.name, {}).items())
            if all(
                field in data and compare(data[field], wanted) for field, compare, wanted in tests
            )
        ]
        return found[:limit] if limit is not None else found

    def create(self, item: T) -> None:
        self.uow.add(
            _Write("create", self.name, self.codec.id_of(item), self.codec.to_document(item))
        )

    def put(self, item: T) -> None:
        self.uow.add(_Write("set", self.name, self.codec.id_of(item), self.codec.to_document(item)))

    def update(self, doc_id: str, fields: Mapping[str, Any]) -> None:
        self.uow.add(_Write("update", self.name, doc_id, to_storage(dict(fields))))

    def delete(self, doc_id: str) -> None:
        self.uow.add(_Write("delete", self.name, doc_id))


class _MemoryAudit(AuditTrail):
    def __init__(self, uow: MemoryUnitOfWork) -> None:
        self.uow = uow

    def append(self, entry: AuditEntry) -> None:
        data = to_storage(entry.model_dump(mode="python"))
        self.uow.add(_Write("create", AUDIT_COLLECTION, secrets.token_hex(10), data))


class MemoryRateLimits:
    """The counting the Firestore rate-limit repository does outside units of work
    (`CounterStore`), on a `MemoryStorage`'s `rate_limits` documents."""

    def __init__(self, storage: MemoryStorage) -> None:
        self.storage = storage

    def _add(self, window: RateWindow, n: int, counter_id: str | None = None) -> tuple[int, int]:
        with self.storage.lock:
            docs = self.storage.documents.setdefault("rate_limits", {})
            data = dict(docs.get(window.doc_id, {}))
            data["count"] = int(data.get("count", 0)) + n
            data["expires_at"] = window.expires_at
            own = 0
            if counter_id is not None:
                by_counter = dict(data.get("by_counter") or {})
                by_counter[counter_id] = own = int(by_counter.get(counter_id, 0)) + n
                data["by_counter"] = by_counter
            docs[window.doc_id] = data
            return data["count"], own

    def hit(self, bucket: str, *, limit: int, window_seconds: int, now: Any) -> RateDecision:
        window = window_for(bucket, limit=limit, window_seconds=window_seconds, now=now)
        with self.storage.lock:
            stored = self.storage.documents.get("rate_limits", {}).get(window.doc_id, {})
            count = int(stored.get("count", 0))
            if count >= limit:
                return RateDecision(False, count, window.retry_after_seconds)
            return RateDecision(True, self._add(window, 1)[0], 0)

    def increment(self, windows: Any) -> list[int]:
        return [self._add(window, 1)[0] for window in windows]

    def add_hits(self, hits: Any, *, counter_id: str) -> list[tuple[int, int]]:
        return [self._add(window, n, counter_id) for window, n in hits]
