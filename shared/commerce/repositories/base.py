"""Generic Firestore plumbing shared by the repositories."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, ClassVar, Generic, TypeVar

from google.api_core import exceptions as gexc
from google.cloud import firestore

from commerce.errors import AlreadyExists
from commerce.repositories.codec import Codec, to_storage
from commerce.repositories.firestore_wire import (
    before_query,
    document_path,
    read_documents,
    run_transaction,
)

Transaction = firestore.Transaction
# Where writes go: a transaction, or a batch (a Transaction is a WriteBatch).
Writer = firestore.WriteBatch
T = TypeVar("T")
__all__ = ["Repository", "Transaction", "Writer", "run_transaction", "to_storage"]


def new_firestore_client(project: str) -> firestore.Client:
    """Honours FIRESTORE_EMULATOR_HOST (read by the library itself) for local use; every
    call within a request is bounded by the request's budget (commerce.deadlines)."""
    from commerce.deadlines import budgeted_firestore_client

    return budgeted_firestore_client(project)


class Repository(Generic[T]):
    """One collection of documents of type T (a pydantic model or dataclass)."""

    collection: ClassVar[str]
    model: ClassVar[type[Any]]
    id_field: ClassVar[str] = "id"

    def __init__(self, db: firestore.Client) -> None:
        self.db = db
        self.codec: Codec[T] = Codec(self.model, self.id_field)
        self._collection: tuple[firestore.Client, firestore.CollectionReference] | None = None

    # -- mapping ---------------------------------------------------------------------
    def ref(self, doc_id: str) -> firestore.DocumentReference:
        # The collection's reference is built once per client (its path checks were a
        # tenth of a purchase's reference building: about ten references per purchase).
        built = self._collection
        if built is None or built[0] is not self.db:
            built = self._collection = (self.db, self.db.collection(self.collection))
        return built[1].document(doc_id)

    def path_of(self, doc_id: str) -> str:
        """The document's full resource name (how raw reads key their results)."""
        path: str = document_path(self.ref(doc_id))
        return path

    def to_document(self, item: T) -> dict[str, Any]:
        return self.codec.to_document(item)

    def from_document(self, doc_id: str, data: Mapping[str, Any]) -> T:
        return self.codec.from_document(doc_id, data)

    def id_of(self, item: T) -> str:
        return self.codec.id_of(item)

    # -- operations -------------------------------------------------------------------
    def get(self, doc_id: str, tx: Transaction | None = None) -> T | None:
        data = read_documents(self.db, [self.ref(doc_id)], tx).get(self.path_of(doc_id))
        return None if data is None else self.from_document(doc_id, data)

    def get_many(self, doc_ids: list[str], tx: Transaction | None = None) -> list[T]:
        if not doc_ids:
            return []
        found = read_documents(self.db, [self.ref(doc_id) for doc_id in doc_ids], tx)
        return [
            self.from_document(doc_id, found[path])
            for doc_id in doc_ids
            if (path := self.path_of(doc_id)) in found
        ]

    def create(self, item: T, tx: Writer | None = None) -> None:
        """Create; an existing document with the same id raises AlreadyExists.

        In a transaction the conflict surfaces at commit: callers read first and
        decide, which is how every service uses it.
        """
        ref = self.ref(self.id_of(item))
        data = self.to_document(item)
        if tx is not None:
            tx.create(ref, data)
            return
        try:
            ref.create(data)
        except gexc.Conflict as exc:
            raise AlreadyExists(f"{self.collection}/{self.id_of(item)} exists") from exc

    def put(self, item: T, tx: Writer | None = None) -> None:
        ref = self.ref(self.id_of(item))
        data = self.to_document(item)
        if tx is not None:
            tx.set(ref, data)
        else:
            ref.set(data)

    def update(self, doc_id: str, fields: Mapping[str, Any], tx: Writer | None = None) -> None:
        data = to_storage(dict(fields))
        if tx is not None:
            tx.update(self.ref(doc_id), data)
        else:
            self.ref(doc_id).update(data)

    def delete(self, doc_id: str, tx: Writer | None = None) -> None:
        if tx is not None:
            tx.delete(self.ref(doc_id))
        else:
            self.ref(doc_id).delete()

    def all(self) -> list[T]:
        """Every document of the collection (operator tools and migrations only)."""
        return [
            self.from_document(snap.id, snap.to_dict() or {})
            for snap in self.db.collection(self.collection).stream()
        ]

    def where(
        self,
        field: str,
        op: str,
        value: Any,
        *,
        limit: int | None = None,
        tx: Transaction | None = None,
    ) -> list[T]:
        return self.query([(field, op, value)], limit=limit, tx=tx)

    def query(
        self,
        filters: Sequence[tuple[str, str, Any]],
        *,
        limit: int | None = None,
        tx: Transaction | None = None,
    ) -> list[T]:
        """Documents matching every (field, op, value) filter."""
        query: Any = self.db.collection(self.collection)
        for field, op, value in filters:
            query = query.where(filter=firestore.FieldFilter(field, op, to_storage(value)))
        if limit is not None:
            query = query.limit(limit)
        before_query(tx)
        return [
            self.from_document(snap.id, snap.to_dict() or {})
            for snap in query.stream(transaction=tx)
        ]
