"""Generic Firestore plumbing shared by the repositories."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from enum import Enum
from typing import Any, ClassVar, Generic, TypeVar

from google.api_core import exceptions as gexc
from google.cloud import firestore
from pydantic import TypeAdapter

from commerce.errors import AlreadyExists
from commerce.repositories.transactions import before_query, read_documents, run_transaction

Transaction = firestore.Transaction
T = TypeVar("T")
__all__ = ["Repository", "Transaction", "get_together", "run_transaction", "to_storage"]


def new_firestore_client(project: str) -> firestore.Client:
    """Honours FIRESTORE_EMULATOR_HOST (read by the library itself) for local use."""
    return firestore.Client(project=project)


def get_together(
    reads: Sequence[tuple[Repository[Any], str]], tx: Transaction | None = None
) -> list[Any]:
    """Documents of several collections in ONE round trip (BatchGetDocuments), in the
    order asked; None for a missing document.

    Inside a transaction every document read is locked like a single `get` would lock
    it, so a transaction that reads all it needs this way conflicts exactly as before,
    with one round trip instead of one per document.
    """
    if not reads:
        return []
    db = reads[0][0].db
    refs = [repository.ref(doc_id) for repository, doc_id in reads]
    found = read_documents(db, refs, tx)
    results: list[Any] = []
    for (repository, doc_id), ref in zip(reads, refs, strict=True):
        data = found.get(ref._document_path)
        results.append(None if data is None else repository.from_document(doc_id, data))
    return results


def to_storage(value: Any) -> Any:
    """Enums to their values, tuples to lists, recursively (what Firestore stores)."""
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, Mapping):
        return {str(k): to_storage(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [to_storage(v) for v in value]
    return value


class Repository(Generic[T]):
    """One collection of documents of type T (a pydantic model or dataclass)."""

    collection: ClassVar[str]
    model: ClassVar[type[Any]]
    id_field: ClassVar[str] = "id"

    def __init__(self, db: firestore.Client) -> None:
        self.db = db
        self._adapter: TypeAdapter[T] = TypeAdapter(self.model)

    # -- mapping ---------------------------------------------------------------------
    def ref(self, doc_id: str) -> firestore.DocumentReference:
        return self.db.collection(self.collection).document(doc_id)

    def path_of(self, doc_id: str) -> str:
        """The document's full resource name (how raw reads key their results)."""
        path: str = self.ref(doc_id)._document_path
        return path

    def to_document(self, item: T) -> dict[str, Any]:
        data = self._adapter.dump_python(item, mode="python")
        data.pop(self.id_field, None)  # the document id carries it
        result: dict[str, Any] = to_storage(data)
        return result

    def from_document(self, doc_id: str, data: Mapping[str, Any]) -> T:
        return self._adapter.validate_python({**data, self.id_field: doc_id})

    def id_of(self, item: T) -> str:
        value: str = getattr(item, self.id_field)
        return value

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

    def create(self, item: T, tx: Transaction | None = None) -> None:
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

    def put(self, item: T, tx: Transaction | None = None) -> None:
        ref = self.ref(self.id_of(item))
        data = self.to_document(item)
        if tx is not None:
            tx.set(ref, data)
        else:
            ref.set(data)

    def update(self, doc_id: str, fields: Mapping[str, Any], tx: Transaction | None = None) -> None:
        data = to_storage(dict(fields))
        if tx is not None:
            tx.update(self.ref(doc_id), data)
        else:
            self.ref(doc_id).update(data)

    def delete(self, doc_id: str, tx: Transaction | None = None) -> None:
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
        query = self.db.collection(self.collection).where(
            filter=firestore.FieldFilter(field, op, to_storage(value))
        )
        if limit is not None:
            query = query.limit(limit)
        before_query(tx)
        return [
            self.from_document(snap.id, snap.to_dict() or {})
            for snap in query.stream(transaction=tx)
        ]
