"""`commerce.repositories.firestore_wire` without an emulator: its direct protobuf
encoding of writes and decoding of reads are the library's own, byte for byte, and no
other module of the package uses a private name of google-cloud-firestore.

Run these first after upgrading google-cloud-firestore (docs/performance.md, "Upgrading
google-cloud-firestore"). The client below never connects (anonymous credentials, no
request is sent): encoding and decoding are local.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from google.api_core.datetime_helpers import DatetimeWithNanoseconds
from google.auth.credentials import AnonymousCredentials
from google.cloud import firestore
from google.cloud.firestore_v1 import _helpers
from google.cloud.firestore_v1.types import CommitRequest, CommitResponse

from commerce.repositories import firestore_wire
from commerce.repositories.firestore_wire import ReadBegunTransaction, decode
from tests.support.firestore_samples import AT, SAMPLES

PACKAGE = Path(__file__).resolve().parents[2] / "shared" / "commerce"
WIRE = PACKAGE / "repositories" / "firestore_wire.py"
# Private names of google-cloud-firestore the package uses (all in firestore_wire.py).
PRIVATE = re.compile(
    r"\._document_path\b|\._write_pbs\b|\._add_write_pbs\b|\._document_references\b"
    r"|\._commit\(|\._begin\(|\._rollback\(|\._clean_up\(|\._firestore_api\b"
    r"|\._rpc_metadata\b|\._database_string\b|firestore_v1\._helpers|firestore_v1\.types"
    r"|\bfirestore_v1 import _helpers"
)


@pytest.fixture
def firestore_db() -> Iterator[firestore.Client]:
    client = firestore.Client(project="demo-offline", credentials=AnonymousCredentials())
    yield client
    client.close()


def library_writes(path: str, op: str, data: dict[str, Any]) -> list[Any]:
    if op == "set":
        return list(_helpers.pbs_for_set_no_merge(path, data))
    if op == "create":
        return list(_helpers.pbs_for_create(path, data))
    return list(_helpers.pbs_for_update(path, data, None))


@pytest.mark.parametrize(
    ("op", "data"),
    [
        (op, data)
        for op in ("set", "create", "update")
        for data in SAMPLES
        if data or op != "update"
    ],
)
def test_direct_write_encoding_equals_the_librarys(
    firestore_db: firestore.Client, op: str, data: dict[str, Any]
) -> None:
    built, expected = _ours_and_the_librarys(firestore_db, op, data)
    assert [type(w) for w in built] == [type(w) for w in expected]
    assert [w._pb for w in built] == [w._pb for w in expected]
    assert built[0]._pb.update.name.endswith("/things/one")


@pytest.mark.parametrize("data", SAMPLES)
def test_direct_decoding_equals_the_librarys(
    firestore_db: firestore.Client, data: dict[str, Any]
) -> None:
    fields = _helpers.encode_dict(data)
    expected = _helpers.decode_dict(fields, firestore_db)
    decoded = {key: decode(value._pb, firestore_db) for key, value in fields.items()}
    assert decoded == expected
    if data:
        assert decoded["at" if "at" in data else "expires_at"] == AT


def test_sentinel_values_still_go_through_the_library(firestore_db: firestore.Client) -> None:
    tx = ReadBegunTransaction(firestore_db, None)
    ref = firestore_db.document("things/one")
    tx.set(ref, {"n": firestore.Increment(1), "at": firestore.SERVER_TIMESTAMP})
    expected = _helpers.pbs_for_set_no_merge(ref._document_path, {"n": firestore.Increment(1),
                                              "at": firestore.SERVER_TIMESTAMP})  # fmt: skip
    assert [w._pb for w in tx._write_pbs] == [w._pb for w in expected]
    assert len(tx._write_pbs[0]._pb.update_transforms) == 2


@pytest.mark.parametrize(
    "data",
    [
        {"a": 1, "nested": {"b": "two", "at": DatetimeWithNanoseconds(2026, 5, 4, nanosecond=7)}},
        {"a": 1, "items": ["x", ("a", "tuple")]},
        {"a": 1, "where": firestore.GeoPoint(1.5, 2.5)},
    ],
)
@pytest.mark.parametrize("op", ["set", "create", "update"])
def test_a_value_found_not_plain_midway_sends_the_write_the_librarys_way(
    firestore_db: firestore.Client, op: str, data: dict[str, Any]
) -> None:
    built, expected = _ours_and_the_librarys(firestore_db, op, data)
    assert [w._pb for w in built] == [w._pb for w in expected]


def _ours_and_the_librarys(db: firestore.Client, op: str, data: dict[str, Any]) -> tuple[Any, Any]:
    """The writes `op` of `data` to things/one makes here, and the library's own."""
    tx = ReadBegunTransaction(db, None)
    ref = db.document("things/one")
    getattr(tx, op)(ref, data)
    return tx._write_pbs, library_writes(ref._document_path, op, data)


class RecordingApi:
    """Stands in for the generated Firestore API client: keeps each commit request as
    the generated client would send it (a dict becomes the request message)."""

    def __init__(self) -> None:
        self.requests: list[bytes] = []

    def commit(self, request: Any, metadata: Any) -> CommitResponse:
        message = request if isinstance(request, CommitRequest) else CommitRequest(request)
        self.requests.append(CommitRequest.pb(message).SerializeToString(deterministic=True))
        return CommitResponse()


def test_the_raw_commit_request_equals_the_librarys(firestore_db: firestore.Client) -> None:
    api = RecordingApi()
    firestore_db._firestore_api_internal = api
    ours, theirs = ReadBegunTransaction(firestore_db, None), firestore.Transaction(firestore_db)
    for tx in (ours, theirs):
        tx._id = b"transaction-1"
        for number, data in enumerate(SAMPLES):
            tx.create(firestore_db.document(f"things/{number}"), data)
        tx.set(firestore_db.document("things/sentinel"), {"at": firestore.SERVER_TIMESTAMP})
        tx.update(firestore_db.document("things/0"), {"n": 2})

    ours.commit_now()
    theirs._commit()

    assert len(api.requests) == 2
    assert api.requests[0] == api.requests[1]
    assert CommitRequest.deserialize(api.requests[0]).transaction == b"transaction-1"
    assert len(CommitRequest.deserialize(api.requests[0]).writes) == len(SAMPLES) + 2
    assert not ours.in_progress  # cleaned up like the library
    assert not ours._write_pbs


def test_only_the_wire_module_uses_private_firestore_names() -> None:
    offenders = [
        f"{path.relative_to(PACKAGE)}:{number}"
        for path in sorted(PACKAGE.rglob("*.py"))
        if path != WIRE
        for number, line in enumerate(path.read_text().splitlines(), 1)
        if PRIVATE.search(line)
    ]
    assert offenders == []
    assert PRIVATE.search(WIRE.read_text())  # the pattern does find them where they are


def test_contention_pauses_are_random_and_grow_to_the_cap() -> None:
    """Two transactions aborted together must not retry together (lock step)."""
    for attempt in range(2, 12):
        ceiling = min(firestore_wire.BACKOFF_CAP, firestore_wire.BACKOFF_BASE * 2 ** (attempt - 1))
        pauses = {firestore_wire.contention_pause(attempt) for _ in range(50)}
        assert all(0 <= pause <= ceiling for pause in pauses)
        assert len(pauses) > 40  # not one shared value
    assert firestore_wire.BACKOFF_BASE * 2**10 > firestore_wire.BACKOFF_CAP  # the cap is reached


def test_after_an_attempt_held_on_locks_the_pause_spreads_up_to_the_cap() -> None:
    """Two transactions both timed out on each other's locks restart together: their
    second attempts must start further apart than one transaction lasts."""
    held = firestore_wire.LOCK_WAIT_SECONDS
    pauses = [firestore_wire.contention_pause(2, held) for _ in range(400)]
    assert all(0 <= pause <= firestore_wire.BACKOFF_CAP for pause in pauses)
    assert max(pauses) > 0.5 > min(pauses)  # attempt 2 alone would stay under 0.04 s
    quick = [firestore_wire.contention_pause(2, held / 10) for _ in range(400)]
    assert max(quick) <= firestore_wire.BACKOFF_BASE * 2


def test_attempts_stop_when_the_next_pause_would_end_past_the_budget() -> None:
    unbounded = firestore_wire.Attempts(3)
    assert list(unbounded) == [1, 2, 3]
    spent = firestore_wire.Attempts(5, budget=0.0)  # any pause ends past it
    assert list(spent) == [1]
    assert spent.attempt == 2  # the attempt it did not make, as the 503's log reports
