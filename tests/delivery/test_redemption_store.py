"""The redemption transaction's storage plumbing, against the Firestore emulator: the
transaction that begins with its first read, and the direct encoding of its writes."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from google.cloud import firestore
from google.cloud.firestore_v1 import _helpers

from commerce.bootstrap import Container
from commerce.delivery.releases import Release
from commerce.domain.tokens import DownloadTokenExhausted, hash_token
from commerce.errors import TransientFailure
from commerce.repositories.transactions import ReadBegunTransaction, decode
from tests.delivery.conftest import Bought

AT = datetime(2026, 5, 4, 3, 2, 1, 123456, tzinfo=UTC)
SAMPLES: list[dict[str, Any]] = [
    {},
    {"count": 3, "expires_at": AT},
    {
        "action": "download.redeemed",
        "at": AT,
        "at_cet": AT.astimezone(timezone(timedelta(hours=1))),
        "naive": datetime(2026, 1, 2, 3, 4, 5, 6),
        "actor": "system",
        "order_id": None,
        "ok": True,
        "ratio": 1.25,
        "raw": b"\x00\x01",
        "details": {"token_id": "t1", "nested": {"empty": {}, "list": []}, "n": -7},
        "items": [1, "two", None, {"three": 3.0, "flag": False}],
    },
]


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
    tx = ReadBegunTransaction(firestore_db, None)
    ref = firestore_db.document("things/one")
    getattr(tx, op)(ref, data)
    expected = library_writes(ref._document_path, op, data)
    built = tx._write_pbs
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


def test_written_documents_read_back_as_written(container: Container) -> None:
    db = container.db
    ref = db.collection("things").document("roundtrip")
    data = SAMPLES[2]

    def work(tx: Any) -> None:
        tx.set(ref, data)

    container.download_service.store.run(work)
    stored = ref.get().to_dict()
    assert stored is not None
    assert stored["details"] == data["details"]
    assert stored["at"] == AT
    assert stored["at_cet"] == AT
    assert stored["naive"] == datetime(2026, 1, 2, 3, 4, 5, 6, tzinfo=UTC)
    assert stored["items"] == data["items"]
    assert stored["raw"] == data["raw"]


def test_first_read_begins_the_transaction_and_its_reads_see_committed_state(
    container: Container, release: Release, bought: Bought
) -> None:
    store = container.download_service.store
    seen: list[Any] = []

    def work(tx: Any) -> None:
        assert not tx.in_progress
        reads = store.read_grant_and_counters(tx, hash_token(bought.token), [])
        assert tx.in_progress  # begun by the read itself
        seen.append(reads.grant)

    store.run(work)
    assert seen[0] is not None
    assert seen[0].order_id == bought.order_id


def test_concurrent_redemptions_never_exceed_the_links_limit(
    container: Container, release: Release, bought: Bought
) -> None:
    service = container.download_service
    successes: list[int] = []
    refusals: list[str] = []
    start = threading.Barrier(8)

    def redeem_once(n: int) -> None:
        start.wait()
        try:
            service.redeem(bought.token, "linux-x86_64", network=f"203.0.113.{n}/32",
                           user_agent="race")  # fmt: skip
        except (DownloadTokenExhausted, TransientFailure) as error:
            refusals.append(error.code)
        else:
            successes.append(n)

    threads = [threading.Thread(target=redeem_once, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    grant = container.download_tokens.get(hash_token(bought.token))
    assert grant is not None
    assert len(successes) + len(refusals) == 8
    assert len(successes) <= grant.max_redemptions == 5
    assert grant.redemptions == len(successes)
    audited = [e for e in container.audit_log.for_order(bought.order_id)
               if e.action == "download.redeemed"]  # fmt: skip
    assert len(audited) == len(successes)
