"""The Firestore adapter of the unit-of-work port (`commerce.unit_of_work`).

A unit of work is one `ReadBegunTransaction` (`commerce.repositories.firestore_wire`):
its first batched read begins the transaction, so a change that reads what it needs
in one `uow.read(...)` costs two round trips (read, commit). Every read is locked
until commit; on contention `run` re-runs the work in a new transaction that keeps
the first attempt's place in line, and contention that outlasts the attempts (or a
busy store) becomes TransientFailure (503), so the sender retries. `batch()` units
read without a transaction and commit their writes as one atomic batch.

The collections delegate to the Firestore repositories (`commerce.repositories`), so
the documents are encoded exactly as everywhere else.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from google.api_core import exceptions as gexc
from google.cloud import firestore

from commerce.domain.models import AuditEntry
from commerce.domain.rate_limits import RateCounter
from commerce.errors import TransientFailure
from commerce.logs import get_logger
from commerce.repositories.base import Repository
from commerce.repositories.collections import (
    ActivationRepository,
    AuditLogRepository,
    CustomerRepository,
    DownloadTokenRepository,
    EmailJobRepository,
    LicenseRepository,
    OrderRepository,
    WebhookEventRepository,
)
from commerce.repositories.firestore_wire import (
    Attempts,
    ReadBegunTransaction,
    document_path,
    read_documents,
    translated,
)
from commerce.repositories.releases import ReleaseRepository
from commerce.unit_of_work import (
    AuditTrail,
    Collection,
    Found,
    Key,
    OutsideUnitOfWork,
    Storage,
    UnitOfWork,
)

T = TypeVar("T")
R = TypeVar("R")
_log = get_logger("commerce.repositories.unit_of_work")

# Contention retries (`firestore_wire.Attempts`): up to MAX_ATTEMPTS transactions within
# RETRY_BUDGET seconds, each retry after a jittered, growing pause, so many requests
# for one document (16 activations of one license at once) spread out instead of
# aborting each other in lock step. The budget keeps a busy store's 503 well inside the
# functions' timeouts.
MAX_ATTEMPTS = 25
RETRY_BUDGET = 8.0


class RateCounterRepository(Repository[RateCounter]):
    collection = "rate_limits"
    model = RateCounter


class FirestoreStorage(Storage):
    """Units of work on one Firestore client, over the given repositories (the
    composition root's, so tests that wrap a repository see the unit's calls)."""

    def __init__(
        self,
        db: firestore.Client,
        *,
        orders: OrderRepository | None = None,
        customers: CustomerRepository | None = None,
        licenses: LicenseRepository | None = None,
        download_tokens: DownloadTokenRepository | None = None,
        email_jobs: EmailJobRepository | None = None,
        ledger: WebhookEventRepository | None = None,
        audit: AuditLogRepository | None = None,
        activations: ActivationRepository | None = None,
        releases: ReleaseRepository | None = None,
    ) -> None:
        self.db = db
        self.orders = orders or OrderRepository(db)
        self.customers = customers or CustomerRepository(db)
        self.licenses = licenses or LicenseRepository(db)
        self.download_tokens = download_tokens or DownloadTokenRepository(db)
        self.email_jobs = email_jobs or EmailJobRepository(db)
        self.ledger = ledger or WebhookEventRepository(db)
        self.rate_counters = RateCounterRepository(db)
        self.activations = activations or ActivationRepository(db)
        self.releases = releases or ReleaseRepository(db)
        self.audit = audit or AuditLogRepository(db)

    def unit_of_work(self) -> FirestoreUnitOfWork:
        return FirestoreUnitOfWork(self, transactional=True)

    def batch(self) -> FirestoreUnitOfWork:
        return FirestoreUnitOfWork(self, transactional=False)


class FirestoreUnitOfWork(UnitOfWork):
    def __init__(self, storage: FirestoreStorage, *, transactional: bool) -> None:
        self.storage = storage
        self.transactional = transactional
        self._tx: ReadBegunTransaction | None = None
        self._batch: firestore.WriteBatch | None = None
        self._retry_id: bytes | None = None
        self._read_collections: set[str] = set()
        self._by_name: dict[str, Repository[Any]] = {}
        for attribute in (
            "orders",
            "customers",
            "licenses",
            "download_tokens",
            "email_jobs",
            "ledger",
            "rate_counters",
            "activations",
            "releases",
        ):
            repository: Repository[Any] = getattr(storage, attribute)
            setattr(self, attribute, _FirestoreCollection(repository, self))
            self._by_name[repository.collection] = repository
        self.audit = _FirestoreAudit(storage.audit, self)

    # -- the transaction -------------------------------------------------------------
    def _start(self) -> None:
        db = self.storage.db
        if self.transactional:
            self._tx = ReadBegunTransaction(db, self._retry_id)
        else:
            self._batch = db.batch()

    @property
    def reader(self) -> firestore.Transaction | None:
        """What reads go through: the transaction (None in a batch unit)."""
        if self._tx is None and self._batch is None:
            raise OutsideUnitOfWork("use the unit of work inside `with` (or `run`)")
        return self._tx

    @property
    def writer(self) -> firestore.WriteBatch:
        writer = self._tx if self._tx is not None else self._batch
        if writer is None:
            raise OutsideUnitOfWork("use the unit of work inside `with` (or `run`)")
        return writer

    def read(self, *keys: Key[Any]) -> Found:
        if not keys:
            return Found({})
        refs = [self._by_name[key.collection].ref(key.doc_id) for key in keys]
        if self.transactional:
            self._read_collections.update(key.collection for key in keys)
        try:
            found = read_documents(self.storage.db, refs, self.reader)
        except Exception as exc:
            raise translated(exc) from exc
        results: dict[Key[Any], Any] = {}
        for key, ref in zip(keys, refs, strict=True):
            data = found.get(document_path(ref))
            repository = self._by_name[key.collection]
            results[key] = None if data is None else repository.from_document(key.doc_id, data)
        return Found(results)

    def commit(self) -> None:
        try:
            if self._tx is not None:
                self._tx.commit_now()
            elif self._batch is not None and len(self._batch):
                self._batch.commit()
        except Exception as exc:
            if self._tx is not None:
                self._tx.abandon()
            self._end()
            raise translated(exc) from exc
        self.committed = True
        self._end()

    def rollback(self) -> None:
        if self._tx is not None:
            self._tx.abandon()
        self._end()

    def _end(self) -> None:
        self._tx = None
        self._batch = None

    def run(self, work: Callable[[UnitOfWork], R]) -> R:
        """Like `run_transaction`: contention (Aborted, from a read or the commit)
        re-runs `work` in a new transaction keeping the first attempt's place, after a
        jittered pause (see MAX_ATTEMPTS). Contention that outlasts the attempts or the
        budget is logged (`storage.contention`, with the collections read, the attempts
        and the seconds spent) and becomes TransientFailure (503)."""
        if not self.transactional:
            return super().run(work)
        self._retry_id = None
        self._read_collections = set()
        last_error = ""
        attempts = Attempts(MAX_ATTEMPTS, RETRY_BUDGET)
        for attempt in attempts:
            self.committed = False
            self._start()
            tx = self._tx
            assert tx is not None
            try:
                result = work(self)
                tx.ensure_begun()
                if self._retry_id is None:
                    self._retry_id = tx.id
                tx.commit_now()
            except gexc.Aborted as exc:
                if self._retry_id is None and tx.in_progress:
                    self._retry_id = tx.id
                tx.forget()
                self._end()
                last_error = str(exc.message)[:200]
                attempts.aborted()
                continue
            except BaseException as exc:
                tx.abandon()
                self._end()
                error = translated(exc)
                if error is exc:
                    raise
                raise error from exc
            self.committed = True
            self._end()
            if attempt > 2:
                _log.info(
                    "transaction committed after contention",
                    extra={
                        "event": "storage.contention_resolved",
                        "attempts": attempt,
                        "collections": sorted(self._read_collections),
                    },
                )
            return result
        _log.error(
            "transaction gave up under contention; answering 503",
            extra={
                "event": "storage.contention",
                "attempts": attempts.attempt,
                "seconds": round(attempts.elapsed, 2),
                "collections": sorted(self._read_collections),
                "error": last_error,
            },
        )
        raise TransientFailure("storage is busy; please retry")


class _FirestoreCollection(Collection[T]):
    def __init__(self, repository: Repository[T], uow: FirestoreUnitOfWork) -> None:
        self.repository = repository
        self.uow = uow
        self.name = repository.collection

    def get(self, doc_id: str) -> T | None:
        return self.repository.get(doc_id, self.uow.reader)

    def get_many(self, doc_ids: list[str]) -> list[T]:
        return self.repository.get_many(doc_ids, self.uow.reader)

    def query(self, *filters: tuple[str, str, Any], limit: int | None = None) -> list[T]:
        return self.repository.query(filters, limit=limit, tx=self.uow.reader)

    def create(self, item: T) -> None:
        self.repository.create(item, self.uow.writer)

    def put(self, item: T) -> None:
        self.repository.put(item, self.uow.writer)

    def update(self, doc_id: str, fields: Mapping[str, Any]) -> None:
        self.repository.update(doc_id, fields, self.uow.writer)

    def delete(self, doc_id: str) -> None:
        self.repository.delete(doc_id, self.uow.writer)


class _FirestoreAudit(AuditTrail):
    def __init__(self, repository: AuditLogRepository, uow: FirestoreUnitOfWork) -> None:
        self.repository = repository
        self.uow = uow

    def append(self, entry: AuditEntry) -> None:
        self.repository.append(entry, self.uow.writer)
