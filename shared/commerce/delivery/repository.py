"""Firestore access of the delivery feature: releases and the redemption transaction."""

from __future__ import annotations

import contextlib
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeVar

from google.api_core import exceptions as gexc
from google.cloud import firestore
from google.cloud.firestore_v1._helpers import decode_value
from google.cloud.firestore_v1.types import BatchGetDocumentsRequest
from google.cloud.firestore_v1.types import Document as DocumentTypes
from google.cloud.firestore_v1.types import Value as ValueTypes
from google.cloud.firestore_v1.types import Write as WriteTypes

from commerce.delivery.releases import Release
from commerce.domain.models import License, Order
from commerce.domain.tokens import DownloadGrant
from commerce.errors import TransientFailure
from commerce.repositories import (
    DownloadTokenRepository,
    LicenseRepository,
    OrderRepository,
)
from commerce.repositories.base import Repository, Transaction
from commerce.repositories.rate_limits import RateWindow

R = TypeVar("R")
_BatchGetPb = BatchGetDocumentsRequest.pb()


class ReleaseRepository(Repository[Release]):
    """`releases/{version}`; created once (versions are immutable), yanked in place."""

    collection = "releases"
    model = Release

    def all(self) -> list[Release]:
        return [
            self.from_document(snap.id, snap.to_dict() or {})
            for snap in self.db.collection(self.collection).stream()
        ]

    def in_channel(self, channel: str) -> list[Release]:
        return self.where("channel", "==", channel)


@dataclass(frozen=True)
class RedemptionReads:
    grant: DownloadGrant | None
    counts: tuple[int, ...]  # one per rate window, in the order given


class RedemptionStore:
    """Reads and writes of one download redemption, batched for one transaction.

    The grant and the rate-limit counters are fetched in one batch (their ids are known
    from the token and the client), then order and license in a second one: two reads
    per redemption however many checks run. The first read also begins the transaction
    (`new_transaction` in the read request, see `run`), so a redemption costs three
    round trips (read, read, commit) instead of four.
    """

    def __init__(
        self,
        db: firestore.Client,
        grants: DownloadTokenRepository,
        orders: OrderRepository,
        licenses: LicenseRepository,
    ) -> None:
        self.db = db
        self.grants = grants
        self.orders = orders
        self.licenses = licenses

    def run(self, work: Callable[[Transaction], R], *, max_attempts: int = 10) -> R:
        """Run `work(tx)` in one transaction that begins with its first read.

        Same guarantees as `commerce.repositories.run_transaction` (pessimistic
        transaction, retried on contention, keeping its place in line through the
        first attempt's id; contention that outlasts the attempts, or a busy store,
        becomes TransientFailure), minus the separate BeginTransaction round trip.
        """
        retry_id: bytes | None = None
        for _ in range(max_attempts):
            tx = _BeginsOnFirstRead(self.db, retry_id)
            try:
                result = work(tx)
                if not tx.in_progress:
                    tx._begin(retry_id=retry_id)
                if retry_id is None:
                    retry_id = tx.id
                tx._commit()
            except gexc.Aborted:
                if retry_id is None and tx.in_progress:
                    retry_id = tx.id
                tx._clean_up()
                continue  # contention: try again with the same place in line
            except BaseException as exc:
                if tx.in_progress:
                    # A failed rollback expires by itself; report the first error.
                    with contextlib.suppress(gexc.GoogleAPICallError):
                        tx._rollback()
                if isinstance(exc, gexc.DeadlineExceeded | gexc.ServiceUnavailable):
                    raise TransientFailure("storage is busy; please retry") from exc
                raise
            return result
        raise TransientFailure("storage is busy; please retry")

    def read_grant_and_counters(
        self, tx: Transaction, token_hash: str, windows: list[RateWindow]
    ) -> RedemptionReads:
        grant_ref = self.grants.ref(token_hash)
        refs = [grant_ref, *(window.ref for window in windows)]
        if isinstance(tx, _BeginsOnFirstRead) and not tx.in_progress:
            found = tx.begin_with_read(refs)
        else:
            found = _batch_read(self.db, refs, transaction=tx.id)[0]
        grant_data = found.get(grant_ref._document_path)
        grant = None if grant_data is None else self.grants.from_document(token_hash, grant_data)
        counts = []
        for window in windows:
            data = found.get(window.ref._document_path)
            counts.append(int((data or {}).get("count") or 0))
        return RedemptionReads(grant, tuple(counts))

    def read_order_and_license(
        self, tx: Transaction, order_id: str, license_id: str
    ) -> tuple[Order | None, License | None]:
        order_ref, license_ref = self.orders.ref(order_id), self.licenses.ref(license_id)
        found = _batch_read(self.db, [order_ref, license_ref], transaction=tx.id)[0]
        order_data = found.get(order_ref._document_path)
        license_data = found.get(license_ref._document_path)
        return (
            None if order_data is None else self.orders.from_document(order_id, order_data),
            None if license_data is None else self.licenses.from_document(license_id, license_data),
        )

    def count_hit(self, tx: Transaction, window: RateWindow, count: int) -> None:
        tx.set(window.ref, window.counted(count))

    def count_redemption(self, tx: Transaction, grant: DownloadGrant) -> None:
        tx.update(self.grants.ref(grant.token_hash), {"redemptions": grant.redemptions + 1})


class _BeginsOnFirstRead(firestore.Transaction):
    """A read-write transaction whose first batch read carries `new_transaction`:
    Firestore begins the transaction with that read and returns its id in the first
    response (the same as a BeginTransaction call followed by the read)."""

    def __init__(self, client: firestore.Client, retry_id: bytes | None) -> None:
        super().__init__(client)
        self._retry_id = retry_id

    # Writes of plain values (str, int, float, bool, None, bytes, datetime, dict, list)
    # are encoded straight to protobuf; sentinels (transforms, deletes) and merges go
    # through the library.
    def set(self, reference: Any, document_data: dict[str, Any], merge: Any = False) -> None:
        if merge is not False or not _plain(document_data):
            super().set(reference, document_data, merge=merge)
            return
        self._add_fast(reference, _write_pb(reference._document_path, document_data))

    def create(self, reference: Any, document_data: dict[str, Any]) -> None:
        if not _plain(document_data):
            super().create(reference, document_data)
            return
        write = _write_pb(reference._document_path, document_data)
        write.current_document.exists = False
        self._add_fast(reference, write)

    def update(self, reference: Any, field_updates: dict[str, Any], option: Any = None) -> None:
        if (
            option is not None
            or not field_updates
            or not all(_SIMPLE_FIELD.match(key) for key in field_updates)
            or not _plain(field_updates)
        ):
            super().update(reference, field_updates, option=option)
            return
        write = _write_pb(reference._document_path, field_updates)
        write.update_mask.field_paths.extend(sorted(field_updates))
        write.current_document.exists = True
        self._add_fast(reference, write)

    def _add_fast(self, reference: Any, write: Any) -> None:
        self._document_references[reference._document_path] = reference
        self._add_write_pbs([WriteTypes.wrap(write)])

    def begin_with_read(self, refs: list[firestore.DocumentReference]) -> dict[str, Any]:
        """Read `refs` and begin the transaction with that read: path -> data (absent
        documents left out)."""
        found, began = _batch_read(self._client, refs, begin=True, retry_id=self._retry_id)
        if began is None:
            raise TransientFailure("storage did not begin the transaction; please retry")
        self._id = began  # type: ignore[assignment]  # the library annotates `_id` as None
        return found


def _batch_read(
    client: firestore.Client,
    refs: list[firestore.DocumentReference],
    *,
    transaction: bytes | None = None,
    begin: bool = False,
    retry_id: bytes | None = None,
) -> tuple[dict[str, dict[str, Any]], bytes | None]:
    """One BatchGetDocuments call in a transaction, either an existing one or one this
    read begins: (path -> data of the documents that exist, the id of the transaction
    the call began, if it began one). Request and responses are handled as raw protobuf
    messages (see `_decode`)."""
    request = _BatchGetPb(
        database=client._database_string, documents=[ref._document_path for ref in refs]
    )
    if begin:
        request.new_transaction.read_write.SetInParent()
        if retry_id is not None:
            request.new_transaction.read_write.retry_transaction = retry_id
    elif transaction is not None:
        request.transaction = transaction
    responses = client._firestore_api.batch_get_documents(
        request=BatchGetDocumentsRequest.wrap(request), metadata=client._rpc_metadata
    )
    found: dict[str, dict[str, Any]] = {}
    began: bytes | None = None
    for response in responses:
        raw = response._pb
        if raw.transaction:
            began = raw.transaction
        if raw.WhichOneof("result") == "found":
            found[raw.found.name] = {
                key: _decode(value, client) for key, value in raw.found.fields.items()
            }
    return found, began


def _decode(value: Any, client: firestore.Client) -> Any:
    """A raw `Value` message -> Python, as the library decodes it (timestamps as aware
    UTC datetimes); rarer kinds (references, geo points, vectors) by the library."""
    kind = value.WhichOneof("value_type")
    if kind == "string_value":
        return value.string_value
    if kind == "integer_value":
        return value.integer_value
    if kind == "timestamp_value":
        return value.timestamp_value.ToDatetime(tzinfo=UTC)
    if kind == "null_value":
        return None
    if kind == "boolean_value":
        return value.boolean_value
    if kind == "double_value":
        return value.double_value
    if kind == "map_value" and "__type__" not in value.map_value.fields:
        return {key: _decode(item, client) for key, item in value.map_value.fields.items()}
    if kind == "array_value":
        return [_decode(item, client) for item in value.array_value.values]
    if kind == "bytes_value":
        return value.bytes_value
    return decode_value(ValueTypes.wrap(value), client)


# -- write encoding ------------------------------------------------------------------------
# The library encodes every value through proto-plus wrappers, which is most of a
# redemption's CPU time; these writes hold plain values only, so they are built as raw
# protobuf messages (same bytes on the wire; anything else goes the library's way).
_WritePb = WriteTypes.pb()
_DocumentPb = DocumentTypes.pb()
_SIMPLE_FIELD = re.compile(r"^[A-Za-z_][A-Za-z_0-9]*$")


def _plain(value: Any) -> bool:
    if value is None or isinstance(value, bool | int | float | str | bytes):
        return True
    if isinstance(value, datetime):
        return type(value) is datetime
    if isinstance(value, dict):
        return all(isinstance(k, str) and _plain(v) for k, v in value.items())
    if isinstance(value, list):
        return all(_plain(v) for v in value)
    return False


def _encode(value: Any, into: Any) -> None:
    if value is None:
        into.null_value = 0
    elif isinstance(value, bool):
        into.boolean_value = value
    elif isinstance(value, int):
        into.integer_value = value
    elif isinstance(value, float):
        into.double_value = value
    elif isinstance(value, str):
        into.string_value = value
    elif isinstance(value, bytes):
        into.bytes_value = value
    elif isinstance(value, datetime):
        into.timestamp_value.FromDatetime(value)
    elif isinstance(value, dict):
        fields = into.map_value.fields
        fields.clear()  # an empty map is still a map value
        for key, item in value.items():
            _encode(item, fields[key])
    else:
        array = into.array_value
        array.SetInParent()
        for item in value:
            _encode(item, array.values.add())


def _write_pb(path: str, data: dict[str, Any]) -> Any:
    write = _WritePb()
    write.update.name = path
    fields = write.update.fields
    for key, value in data.items():
        _encode(value, fields[key])
    return write
