"""The redemption transaction's storage plumbing, against the Firestore emulator: the
transaction that begins with its first read, and written documents read back as
written. The byte-for-byte encoding checks run without Java: tests/unit/
test_firestore_wire.py."""

from __future__ import annotations

import threading
from datetime import UTC, datetime
from typing import Any

from commerce.bootstrap import Container
from commerce.domain.releases import Release
from commerce.domain.tokens import DownloadTokenExhausted, hash_token
from commerce.errors import TransientFailure
from commerce.repositories.firestore_wire import run_transaction
from commerce.repositories.unit_of_work import FirestoreStorage
from tests.delivery.conftest import Bought
from tests.support.firestore_samples import AT, SAMPLES
from tests.support.threads import run_together


def test_written_documents_read_back_as_written(container: Container) -> None:
    db = container.db
    ref = db.collection("things").document("roundtrip")
    data = SAMPLES[2]

    def work(tx: Any) -> None:
        tx.set(ref, data)

    run_transaction(db, work)  # the runner under every Firestore unit of work
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
    storage = container.storage
    assert isinstance(storage, FirestoreStorage)
    seen: list[Any] = []

    def work(uow: Any) -> None:
        assert not uow.reader.in_progress
        grant = uow.read(key := uow.download_tokens.key(hash_token(bought.token)))[key]
        assert uow.reader.in_progress  # begun by the read itself
        seen.append(grant)

    storage.run(work)
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

    run_together(redeem_once, [(n,) for n in range(8)])

    grant = container.download_tokens.get(hash_token(bought.token))
    assert grant is not None
    assert len(successes) + len(refusals) == 8
    assert len(successes) <= grant.max_redemptions == 5
    assert grant.redemptions == len(successes)
    audited = [e for e in container.audit_log.for_order(bought.order_id)
               if e.action == "download.redeemed"]  # fmt: skip
    assert len(audited) == len(successes)
