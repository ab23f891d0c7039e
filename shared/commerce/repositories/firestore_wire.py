"""Every use of google-cloud-firestore's private names, in this one module.

Firestore transactions that begin with their first read, batched raw reads, the raw
protobuf encoding of plain writes, and the few private attributes the repositories
need (a reference's full path, a batch's pending writes). Nothing else in the package
touches a name of the library that starts with an underscore (tests/unit/
test_firestore_wire.py checks that, and compares this module's encoding and decoding
with the library's own, byte for byte, without an emulator). Upgrading
google-cloud-firestore: bump the pin in requirements.txt, run
`pytest tests/unit/test_firestore_wire.py`, and read the library's changes to
`Transaction`, `_helpers`, `BatchGetDocuments` and `Commit` if it fails
(docs/performance.md).

Every read-write transaction of the package runs through `run_transaction` here. Its
transaction (`ReadBegunTransaction`) does not call BeginTransaction up front: its first
batched read carries `new_transaction`, so Firestore begins the transaction with that
read and returns its id in the first response (the same pessimistic read-write
transaction as BeginTransaction followed by the read, one round trip fewer). A
transaction whose first read is a query, or which reads nothing, begins the ordinary
way first.

Reads are handled as raw protobuf messages and the writes of plain values (str, int,
float, bool, None, bytes, datetime, dict, list) are encoded straight to protobuf;
sentinels (transforms, deletes) and merges go through the library. The commit request
is built as a raw protobuf message too (the library's `_commit` marshals it through
proto-plus). This uses private parts of google-cloud-firestore (pinned in
requirements.txt).
"""

from __future__ import annotations

import contextlib
import random
import re
import time
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime
from typing import Any, TypeVar

from google.api_core import exceptions as gexc
from google.cloud import firestore
from google.cloud.firestore_v1._helpers import ReadAfterWriteError, decode_value
from google.cloud.firestore_v1.types import BatchGetDocumentsRequest, CommitRequest
from google.cloud.firestore_v1.types import Value as ValueTypes
from google.cloud.firestore_v1.types import Write as WriteTypes

from commerce.errors import AlreadyExists, NotFound, TransientFailure

R = TypeVar("R")
# path -> field data of the documents that exist (absent documents are left out)
Found = dict[str, dict[str, Any]]
_BatchGetPb = BatchGetDocumentsRequest.pb()
_WritePb = WriteTypes.pb()
_CommitPb = CommitRequest.pb()
_SIMPLE_FIELD = re.compile(r"^[A-Za-z_][A-Za-z_0-9]*$")

# The database concurrency mode this runner is written for: reads in a read-write
# transaction lock their documents until commit (what Google's emulator does, and what
# every test and benchmark measured). Terraform creates the database with this mode;
# tests/infra pin `concurrency_mode` in infra/terraform to this value.
FIRESTORE_CONCURRENCY_MODE = "PESSIMISTIC"


def run_transaction(
    db: firestore.Client, work: Callable[[firestore.Transaction], R], *, max_attempts: int = 10
) -> R:
    """Run `work(tx)` atomically in one read-write transaction, retrying on contention.

    Pessimistic, like the library's `@transactional`: every document read is locked
    until commit; on contention (Aborted, from a read or the commit) the whole of
    `work` runs again, after a pause (`Attempts`), in a transaction that keeps the first
    attempt's place in line (`retry_transaction`). Contention that outlasts the
    attempts, or a busy store, becomes TransientFailure (HTTP 503), so a webhook or task
    delivery is retried by its sender rather than half-applied. Any other error rolls
    back and propagates.
    """
    retry_id: bytes | None = None
    attempts = Attempts(max_attempts)
    for _ in attempts:
        tx = ReadBegunTransaction(db, retry_id)
        try:
            result = work(tx)
            tx.ensure_begun()
            if retry_id is None:
                retry_id = tx.id
            tx.commit_now()
        except gexc.Aborted:
            if retry_id is None and tx.in_progress:
                retry_id = tx.id
            tx.forget()
            attempts.aborted()
            continue  # contention: try again with the same place in line
        except BaseException as exc:
            tx.abandon()
            raise translated(exc) from exc
        return result
    raise TransientFailure("storage is busy; please retry")


# The jitter's own generator: the process-wide `random` state is the application's
# (and a test framework's) to seed and to watch, not ours to advance from any thread.
_JITTER = random.Random()  # noqa: S311 (jitter, not a secret)
BACKOFF_BASE = 0.02
BACKOFF_CAP = 1.0
# An aborted attempt that took this long was held on locks until the store gave up on
# it, not turned away at once.
LOCK_WAIT_SECONDS = 1.0


def contention_pause(attempt: int, held: float = 0.0) -> float:
    """Seconds to wait before attempt `attempt` (2, 3, ...) of a transaction that met
    contention and whose aborted attempt took `held` seconds: a random pause ("full
    jitter") of up to BACKOFF_BASE * 2**(attempt - 1), at most BACKOFF_CAP. Both
    runners (`run_transaction`, the unit of work) pause: two transactions aborted
    together that retried at once met again, lock step after lock step.

    After an attempt held on locks for LOCK_WAIT_SECONDS or more, up to BACKOFF_CAP at
    once. Two transactions that read a document and then both write it wait for each
    other; the emulator ends such a pair only by its 2 s lock timeout, both at once,
    and the two retries must then start further apart than one transaction lasts (10-60
    ms on the benchmark machine), which the first steps' 40-160 ms did not achieve:
    the pair met again at every attempt until the unit of work gave up (503). Spread
    over a second, they almost never meet twice, and the second costs less than the
    lock timeout already spent."""
    if held >= LOCK_WAIT_SECONDS:
        return _JITTER.uniform(0, BACKOFF_CAP)
    return _JITTER.uniform(0, min(BACKOFF_CAP, BACKOFF_BASE * 2 ** (attempt - 1)))


class Attempts:
    """The attempts of one transaction, for both runners (`run_transaction`, the unit of
    work): iterating yields 1, 2, ... up to `max_attempts`, pausing before each retry
    (`contention_pause`, given how long the attempt before took until its `aborted`),
    and stops early when the pause would end past `budget` seconds from the start."""

    def __init__(self, max_attempts: int, budget: float | None = None) -> None:
        self.max_attempts = max_attempts
        self.budget = budget
        self.started = time.monotonic()
        self.attempt = 0
        self._begun = self.started
        self._held = 0.0  # how long the last aborted attempt took

    def __iter__(self) -> Iterator[int]:
        for attempt in range(1, self.max_attempts + 1):
            self.attempt = attempt
            if attempt > 1:
                pause = contention_pause(attempt, self._held)
                if self.budget is not None and self.elapsed + pause > self.budget:
                    return
                time.sleep(pause)
            self._begun = time.monotonic()
            yield attempt

    def aborted(self) -> None:
        """The current attempt met contention."""
        self._held = time.monotonic() - self._begun

    @property
    def elapsed(self) -> float:
        return time.monotonic() - self.started


def translated(exc: BaseException) -> BaseException:
    """A storage error as the package reports it: busy -> TransientFailure (503), a
    create that collided at commit -> AlreadyExists, an update of a missing document
    -> NotFound, a read after a write ->
    ReadAfterWrite; anything else unchanged."""
    from commerce.unit_of_work import ReadAfterWrite

    if isinstance(exc, gexc.DeadlineExceeded | gexc.ServiceUnavailable | gexc.Aborted):
        return TransientFailure("storage is busy; please retry")
    if isinstance(exc, gexc.AlreadyExists):
        return AlreadyExists(str(exc.message))
    if isinstance(exc, gexc.NotFound):  # an update of a document that does not exist
        return NotFound(str(exc.message))
    if isinstance(exc, ReadAfterWriteError):
        return ReadAfterWrite(str(exc))
    return exc


class ReadBegunTransaction(firestore.Transaction):
    """A read-write transaction begun by its first batched read (see the module)."""

    def __init__(self, client: firestore.Client, retry_id: bytes | None = None) -> None:
        super().__init__(client)
        self._retry_id = retry_id

    def commit_now(self) -> None:
        """Commit (beginning first if nothing was read); Aborted on contention.

        The library's `_commit` with its request built as a raw protobuf message (the
        library marshals it through proto-plus, write by write) and without reading
        back the per-write results, which nothing here uses."""
        self.ensure_begun()
        request = _CommitPb(database=self._client._database_string, transaction=self._id)
        request.writes.extend(write._pb for write in self._write_pbs)
        self._client._firestore_api.commit(
            request=CommitRequest.wrap(request), metadata=self._client._rpc_metadata
        )
        self._clean_up()

    def forget(self) -> None:
        """Drop the state of an aborted attempt (Firestore already ended it)."""
        self._clean_up()

    def abandon(self) -> None:
        """Roll back if begun. A failed rollback expires by itself, so the error that
        led here is the one reported."""
        if self.in_progress:
            with contextlib.suppress(gexc.GoogleAPICallError):
                self._rollback()
        else:
            self._clean_up()

    @property
    def has_writes(self) -> bool:
        return bool(self._write_pbs)

    def ensure_begun(self) -> None:
        """Begin the ordinary way (before a query, or a commit without reads)."""
        if not self.in_progress:
            self._begin(retry_id=self._retry_id)

    def read(self, refs: Sequence[firestore.DocumentReference]) -> Found:
        """The documents at `refs`, in this transaction (locked until commit), in one
        round trip; the first read also begins the transaction."""
        if self._write_pbs:
            raise ReadAfterWriteError("reads must come before writes in a transaction")
        if self.in_progress:
            return _batch_read(self._client, refs, transaction=self.id)[0]
        found, began = _batch_read(self._client, refs, begin=True, retry_id=self._retry_id)
        if began is None:
            raise TransientFailure("storage did not begin the transaction; please retry")
        self._id = began  # type: ignore[assignment]  # the library annotates `_id` as None
        return found

    # -- writes ------------------------------------------------------------------------
    def set(self, reference: Any, document_data: dict[str, Any], merge: Any = False) -> None:
        write = None if merge is not False else _write_pb(reference._document_path, document_data)
        if write is None:
            super().set(reference, document_data, merge=merge)
            return
        self._add_fast(reference, write)

    def create(self, reference: Any, document_data: dict[str, Any]) -> None:
        write = _write_pb(reference._document_path, document_data)
        if write is None:
            super().create(reference, document_data)
            return
        write.current_document.exists = False
        self._add_fast(reference, write)

    def update(self, reference: Any, field_updates: dict[str, Any], option: Any = None) -> None:
        write = (
            _write_pb(reference._document_path, field_updates)
            if option is None
            and field_updates
            and all(_SIMPLE_FIELD.match(key) for key in field_updates)
            else None
        )
        if write is None:
            super().update(reference, field_updates, option=option)
            return
        write.update_mask.field_paths.extend(sorted(field_updates))
        write.current_document.exists = True
        self._add_fast(reference, write)

    def _add_fast(self, reference: Any, write: Any) -> None:
        self._document_references[reference._document_path] = reference
        self._add_write_pbs([WriteTypes.wrap(write)])


def document_path(ref: firestore.DocumentReference) -> str:
    """A reference's full resource name (how raw reads key their results)."""
    path: str = ref._document_path
    return path


def pending_writes(batch: firestore.WriteBatch) -> list[Any]:
    """The write messages a batch will commit (it forgets them on commit)."""
    return list(batch._write_pbs)


def read_documents(
    db: firestore.Client,
    refs: Sequence[firestore.DocumentReference],
    tx: firestore.Transaction | None = None,
) -> Found:
    """The documents at `refs` in one round trip (in `tx` if given): path -> data."""
    if not refs:
        return {}
    if isinstance(tx, ReadBegunTransaction):
        return tx.read(refs)
    if tx is not None:  # a library transaction (begun by the library)
        return {
            snap.reference._document_path: snap.to_dict() or {}
            for snap in db.get_all(list(refs), transaction=tx)
            if snap.exists
        }
    return _batch_read(db, refs)[0]


def before_query(tx: firestore.Transaction | None) -> None:
    """A query in a transaction needs the transaction begun first."""
    if isinstance(tx, ReadBegunTransaction):
        tx.ensure_begun()


def _batch_read(
    client: firestore.Client,
    refs: Sequence[firestore.DocumentReference],
    *,
    transaction: bytes | None = None,
    begin: bool = False,
    retry_id: bytes | None = None,
) -> tuple[Found, bytes | None]:
    """One BatchGetDocuments call, outside a transaction, in an existing one, or
    beginning one: (path -> data of the documents that exist, the id of the transaction
    the call began, if it began one). Duplicate references are asked for once."""
    paths = list(dict.fromkeys(ref._document_path for ref in refs))
    request = _BatchGetPb(database=client._database_string, documents=paths)
    if begin:
        request.new_transaction.read_write.SetInParent()
        if retry_id is not None:
            request.new_transaction.read_write.retry_transaction = retry_id
    elif transaction is not None:
        request.transaction = transaction
    responses = client._firestore_api.batch_get_documents(
        request=BatchGetDocumentsRequest.wrap(request), metadata=client._rpc_metadata
    )
    found: Found = {}
    began: bytes | None = None
    # Outside a transaction, stop once every document is answered (one response each,
    # found or missing), as the library's single-document `get` does: waiting for the
    # end of the stream only costs another wake-up. A transaction's read is read to the
    # end of its stream.
    unanswered = len(paths) if transaction is None and not begin else -1
    for response in responses:
        raw = response._pb
        if raw.transaction:
            began = raw.transaction
        result = raw.WhichOneof("result")
        if result == "found":
            found[raw.found.name] = {
                key: decode(value, client) for key, value in raw.found.fields.items()
            }
        if result is not None:
            unanswered -= 1
            if unanswered == 0:
                responses.cancel()
                break
    return found, began


def decode(value: Any, client: firestore.Client) -> Any:
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
        return {key: decode(item, client) for key, item in value.map_value.fields.items()}
    if kind == "array_value":
        return [decode(item, client) for item in value.array_value.values]
    if kind == "bytes_value":
        return value.bytes_value
    return decode_value(ValueTypes.wrap(value), client)


# -- write encoding ------------------------------------------------------------------------
# The library encodes every value through proto-plus wrappers, which was most of a
# transaction's CPU time; plain values are built as raw protobuf messages (same bytes
# on the wire; anything else goes the library's way).


# Exact types first (almost every value): one comparison instead of a chain of
# isinstance checks. Anything else (a str or int subclass) takes the general path
# below it; a value that is not plain (a sentinel, a datetime subclass, a reference,
# a tuple) stops the encoding, and the write goes the library's way, unchanged.
class _NotPlain(Exception):
    pass


def _encode(value: Any, into: Any) -> None:
    kind = type(value)
    if kind is str:
        into.string_value = value
    elif kind is int:
        into.integer_value = value
    elif kind is datetime:
        _set_timestamp(value, into.timestamp_value)
    elif kind is bool:
        into.boolean_value = value
    elif value is None:
        into.null_value = 0
    elif kind is dict:
        _encode_map(value, into)
    elif kind is list:
        _encode_array(value, into)
    elif kind is float:
        into.double_value = value
    else:
        _encode_general(value, into)


_EPOCH_NAIVE = datetime(1970, 1, 1)
_EPOCH_UTC = datetime(1970, 1, 1, tzinfo=UTC)


def _set_timestamp(value: datetime, into: Any) -> None:
    """protobuf's `Timestamp.FromDatetime` (a naive datetime is UTC) by subtraction,
    without its struct_time round trip (about fifteen timestamps per purchase)."""
    delta = value - (_EPOCH_NAIVE if value.utcoffset() is None else _EPOCH_UTC)
    into.seconds = delta.days * 86400 + delta.seconds
    into.nanos = delta.microseconds * 1000


def _encode_map(value: dict[Any, Any], into: Any) -> None:
    fields = into.map_value.fields
    fields.clear()  # an empty map is still a map value
    for key, item in value.items():
        if type(key) is not str and not isinstance(key, str):
            raise _NotPlain
        _encode(item, fields[key])


def _encode_array(value: list[Any], into: Any) -> None:
    array = into.array_value
    array.SetInParent()
    for item in value:
        _encode(item, array.values.add())


def _encode_general(value: Any, into: Any) -> None:
    if isinstance(value, bool):
        into.boolean_value = value
    elif isinstance(value, int):
        into.integer_value = value
    elif isinstance(value, float):
        into.double_value = value
    elif isinstance(value, str):
        into.string_value = value
    elif isinstance(value, bytes):
        into.bytes_value = value
    elif isinstance(value, dict):
        _encode_map(value, into)
    elif isinstance(value, list):
        _encode_array(value, into)
    else:  # a datetime subclass (the library keeps its nanoseconds), a sentinel, ...
        raise _NotPlain


def _write_pb(path: str, data: dict[str, Any]) -> Any | None:
    """The write of `data` as a raw protobuf message, or None if a value is not plain
    (one pass: checking first and then encoding walked every document twice)."""
    write = _WritePb()
    write.update.name = path
    fields = write.update.fields
    try:
        for key, value in data.items():
            if type(key) is not str and not isinstance(key, str):
                return None
            _encode(value, fields[key])
    except _NotPlain:
        return None
    return write
