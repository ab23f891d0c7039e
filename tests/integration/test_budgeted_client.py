"""The Firestore client every function uses (`commerce.deadlines.budgeted_firestore_client`)
on Google's emulator: its server-streaming reads run on the thread that reads them
(gRPC's single-threaded unary-stream option, docs/performance.md "Webhook
fulfillment"), and that holds for everything the package streams: batched reads inside
and outside a transaction, queries read to the end or left early. The tests' own
`firestore_db` is the library's plain client, so these are the tests of this one."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import pytest

from commerce.deadlines import budgeted_firestore_client
from commerce.repositories.firestore_wire import ReadBegunTransaction, read_documents
from tests.support import emulators as emu
from tests.support.threads import run_copies


@pytest.fixture
def budgeted(firestore_db: Any) -> Iterator[Any]:
    """The product's client on the emptied emulator `firestore_db` points at."""
    client = budgeted_firestore_client(emu.TEST_PROJECT)
    yield client
    client.close()


@pytest.fixture
def threads_started(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    started: list[str] = []
    original = threading.Thread.start

    def start(self: threading.Thread) -> None:
        started.append(self.name)
        original(self)

    monkeypatch.setattr(threading.Thread, "start", start)
    return started


def seed(client: Any, count: int) -> None:
    batch = client.batch()
    for n in range(count):
        batch.set(client.collection("things").document(f"t{n}"), {"n": n, "kind": "seed"})
    batch.commit()


def test_reads_and_queries_stream_on_the_reading_thread(
    budgeted: Any, threads_started: list[str]
) -> None:
    seed(budgeted, 5)
    refs = [budgeted.collection("things").document(f"t{n}") for n in (0, 3, 9)]
    read_documents(budgeted, refs)  # the channel connects (its own threads, once)
    threads_started.clear()

    found = read_documents(budgeted, refs)
    tx = ReadBegunTransaction(budgeted)
    in_tx = tx.read(refs)  # begins the transaction
    tx.abandon()
    everything = [s.to_dict()["n"] for s in budgeted.collection("things").order_by("n").stream()]
    first = next(iter(budgeted.collection("things").order_by("n").stream()))  # left early
    after = read_documents(budgeted, refs[:1])

    assert sorted(data["n"] for data in found.values()) == [0, 3]
    assert in_tx == found
    assert everything == [0, 1, 2, 3, 4]
    assert first.to_dict()["n"] == 0
    assert list(after.values()) == [{"n": 0, "kind": "seed"}]
    assert threads_started == []  # the library's default starts one thread per stream


def test_a_fresh_client_used_by_many_threads_at_once_answers_every_read(
    firestore_db: Any,
) -> None:
    """A function instance's first requests arrive together: each thread once built a
    channel of its own, all but one were dropped, and a dropped channel cancelled the
    reads still streaming on it ("Channel deallocated")."""
    seed(firestore_db, 3)
    errors: list[BaseException] = []
    answers: list[int] = []

    for _ in range(12):
        client = budgeted_firestore_client(emu.TEST_PROJECT)
        start = threading.Barrier(8)

        def read(client: Any = client, start: threading.Barrier = start) -> None:
            try:
                start.wait()
                refs = [client.collection("things").document(f"t{n}") for n in range(3)]
                answers.append(len(read_documents(client, refs)))
            except BaseException as exc:  # reported below, not lost in the thread
                errors.append(exc)

        run_copies(read, 8)
        client.close()

    assert errors == []
    assert answers == [3] * 96
