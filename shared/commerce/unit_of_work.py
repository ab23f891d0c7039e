"""The unit-of-work port: what services see of storage.

A service asks its `Storage` for a unit of work and does everything of one change in
it, reads first (Firestore's rule, enforced by the fake too), then writes; nothing is
written unless it commits:

    def work(uow: UnitOfWork) -> Change:
        found = uow.read(order_key := uow.orders.key(session_id), license_key := ...)
        order = found[order_key]          # named by its key, not by its position
        ...
        uow.orders.put(new_order)
        return change

    change = storage.run(work)            # commits; re-runs `work` on contention

or, for a single attempt, `with storage.unit_of_work() as uow: ...; uow.commit()`.
Leaving the `with` block without `commit()` (an exception, an early return) rolls back.

Where a transaction begins, how contention is retried and what a document looks like
on the wire live only in the adapters: `commerce.repositories.unit_of_work` (Firestore,
every read locked until commit, `run` retries on contention) and
`commerce.repositories.memory` (in memory, one unit of work at a time, for fast service
tests). tests/integration/test_unit_of_work_contract.py holds both to one contract.

`storage.batch()` is a unit of work without a transaction, for the paths that only
read (no locks) or only write (one atomic batch, one round trip): a cheap lookup
before a transaction, an audit entry of a refusal.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import TracebackType
from typing import TYPE_CHECKING, Any, Generic, TypeVar

if TYPE_CHECKING:
    from commerce.domain.models import (
        Activation,
        AuditEntry,
        Customer,
        EmailJob,
        License,
        Order,
        WebhookEventRecord,
    )
    from commerce.domain.rate_limits import RateCounter
    from commerce.domain.releases import Release
    from commerce.domain.tokens import DownloadGrant

T = TypeVar("T")
R = TypeVar("R")


class ReadAfterWrite(RuntimeError):
    """A unit of work read after it wrote (Firestore refuses that in a transaction)."""


class OutsideUnitOfWork(RuntimeError):
    """A repository of a unit of work was used outside its `with` block."""


@dataclass(frozen=True)
class Key(Generic[T]):
    """One document, named by its collection and id; its type rides along for `Found`."""

    collection: str
    doc_id: str


class Found:
    """The result of one batched read, looked up by the keys that were asked for."""

    def __init__(self, documents: Mapping[Key[Any], Any]) -> None:
        self._documents = dict(documents)

    def __getitem__(self, key: Key[T]) -> T | None:
        """The document at `key` (None when it does not exist)."""
        if key not in self._documents:
            raise KeyError(f"{key.collection}/{key.doc_id} was not part of this read")
        value: T | None = self._documents[key]
        return value


class Collection(ABC, Generic[T]):
    """One collection as a unit of work sees it: reads in the unit (locked until
    commit in a transaction), writes applied at commit."""

    name: str

    def key(self, doc_id: str) -> Key[T]:
        return Key(self.name, doc_id)

    @abstractmethod
    def get(self, doc_id: str) -> T | None: ...

    @abstractmethod
    def get_many(self, doc_ids: list[str]) -> list[T]:
        """The documents that exist, in the order asked (missing ones left out)."""

    def where(self, field: str, op: str, value: Any, *, limit: int | None = None) -> list[T]:
        """Documents whose `field` compares to `value` (`op`: "==", "<", ">")."""
        return self.query((field, op, value), limit=limit)

    @abstractmethod
    def query(self, *filters: tuple[str, str, Any], limit: int | None = None) -> list[T]:
        """Documents matching every (field, op, value) filter."""

    @abstractmethod
    def create(self, item: T) -> None:
        """Create; commit fails with AlreadyExists (nothing written) if it exists."""

    @abstractmethod
    def put(self, item: T) -> None:
        """Create or replace."""

    @abstractmethod
    def update(self, doc_id: str, fields: Mapping[str, Any]) -> None:
        """Change top-level fields; commit fails with NotFound if it does not exist."""

    @abstractmethod
    def delete(self, doc_id: str) -> None: ...


class AuditTrail(ABC):
    """Append-only audit entries, committed with the change they describe."""

    @abstractmethod
    def append(self, entry: AuditEntry) -> None: ...


class UnitOfWork(ABC):
    orders: Collection[Order]
    customers: Collection[Customer]
    licenses: Collection[License]
    download_tokens: Collection[DownloadGrant]  # grants, keyed by token hash
    email_jobs: Collection[EmailJob]
    ledger: Collection[WebhookEventRecord]  # once-per-event records
    rate_counters: Collection[RateCounter]
    activations: Collection[Activation]  # machines bound to licenses
    releases: Collection[Release]  # published versions
    audit: AuditTrail

    committed: bool = False

    def __enter__(self) -> UnitOfWork:
        self.committed = False
        self._start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if not self.committed:
            self.rollback()

    def run(self, work: Callable[[UnitOfWork], R]) -> R:
        """`work(uow)` then commit, as one unit; adapters whose store can report
        contention re-run `work` in a fresh unit (so `work` must only read and write
        through `uow`, and decide from what it read)."""
        with self:
            result = work(self)
            self.commit()
        return result

    @abstractmethod
    def read(self, *keys: Key[Any]) -> Found:
        """The documents at `keys`, together (one round trip in Firestore)."""

    @abstractmethod
    def commit(self) -> None:
        """Apply every write of the unit atomically (or none, raising)."""

    @abstractmethod
    def rollback(self) -> None:
        """Discard the unit's writes and end it."""

    @abstractmethod
    def _start(self) -> None: ...


class Storage(ABC):
    """Where units of work come from (the composition root picks the adapter)."""

    @abstractmethod
    def unit_of_work(self) -> UnitOfWork:
        """A transaction: reads locked until commit, writes atomic, contention retried
        by `run`."""

    @abstractmethod
    def batch(self) -> UnitOfWork:
        """No transaction: reads see committed state without locking; the writes
        commit atomically as one batch."""

    def run(self, work: Callable[[UnitOfWork], R]) -> R:
        """`work` in a fresh transaction, committed (re-run on contention)."""
        return self.unit_of_work().run(work)
