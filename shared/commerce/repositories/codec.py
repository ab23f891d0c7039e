"""Documents <-> values, shared by the Firestore repositories and the in-memory store
(so both keep exactly what Firestore would keep). No storage SDK here."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from enum import Enum
from typing import Any, Generic, TypeVar

from pydantic import TypeAdapter

T = TypeVar("T")


_AS_IS = frozenset({str, int, float, bool, type(None), datetime, bytes})


def to_storage(value: Any) -> Any:
    """Enums to their values, tuples to lists, recursively (what Firestore stores)."""
    kind = type(value)
    if kind in _AS_IS:  # most values: no abstract-class checks for them
        return value
    if kind is dict:  # every document and map: no `Mapping` check (an ABC, slow)
        return {str(k): to_storage(v) for k, v in value.items()}
    if kind is list or kind is tuple:
        return [to_storage(v) for v in value]
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, Mapping):
        return {str(k): to_storage(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [to_storage(v) for v in value]
    return value


class Codec(Generic[T]):
    """One collection's mapping: the id lives in the document's name, not its fields."""

    def __init__(self, model: type[Any], id_field: str = "id") -> None:
        self.id_field = id_field
        self._adapter: TypeAdapter[T] = TypeAdapter(model)

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
