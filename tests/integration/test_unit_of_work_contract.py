"""One contract for both units of work: the in-memory fake the fast service tests use,
and the Firestore adapter on Google's emulator. What the services rely on is here; if
the fake drifts from Firestore, the same test fails on one side only."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest

from commerce.domain.models import AuditEntry, Order
from commerce.domain.orders import OrderState
from commerce.domain.rate_limits import RateCounter
from commerce.errors import AlreadyExists, NotFound
from commerce.unit_of_work import ReadAfterWrite, Storage, UnitOfWork
from tests.support.threads import run_copies

NOW = datetime(2026, 3, 1, 9, 30, tzinfo=UTC)


def order(order_id: str, state: OrderState = OrderState.PENDING, **fields: Any) -> Order:
    return Order(id=order_id, state=state, created_at=NOW, updated_at=NOW, **fields)


@pytest.fixture(
    params=["memory", pytest.param("firestore", marks=pytest.mark.emulators)],
)
def storage(request: pytest.FixtureRequest) -> Iterator[Storage]:
    if request.param == "memory":
        from commerce.repositories.memory import MemoryStorage

        yield MemoryStorage()
        return
    from commerce.repositories.unit_of_work import FirestoreStorage

    yield FirestoreStorage(request.getfixturevalue("firestore_db"))


def committed(storage: Storage, item_id: str) -> Order | None:
    with storage.batch() as uow:
        return uow.orders.get(item_id)


def test_a_committed_unit_is_read_by_the_next(storage: Storage) -> None:
    storage.run(lambda uow: uow.orders.create(order("o1", currency="eur")))

    loaded = committed(storage, "o1")

    assert loaded == order("o1", currency="eur")


def test_batched_reads_come_back_by_key_with_none_for_missing(storage: Storage) -> None:
    storage.run(lambda uow: uow.orders.create(order("o1")))

    def work(uow: UnitOfWork) -> tuple[Any, Any, Any]:
        first, missing, counter = (
            uow.orders.key("o1"),
            uow.orders.key("nope"),
            uow.rate_counters.key("c1"),
        )
        found = uow.read(counter, missing, first)
        return found[first], found[missing], found[counter]

    first, missing, counter = storage.run(work)

    assert first == order("o1")
    assert missing is None
    assert counter is None


def test_a_read_outside_a_transaction_answers_every_document_asked_for(
    storage: Storage,
) -> None:
    # The Firestore adapter stops reading the stream once every document is answered.
    for order_id in ("o1", "o2", "o3"):
        storage.run(lambda uow, order_id=order_id: uow.orders.create(order(order_id)))

    asked = [("o3", "o1", "o2"), ("o3", "nope", "o1", "gone", "o2")]
    for ids in asked * 2:  # the connection stays usable after a stream left early
        with storage.batch() as uow:
            keys = [uow.orders.key(i) for i in ids]
            found = uow.read(*keys, keys[0])

        assert [found[key] for key in keys] == [
            None if i in ("nope", "gone") else order(i) for i in ids
        ]


def test_nothing_is_written_when_the_work_raises(storage: Storage) -> None:
    def work(uow: UnitOfWork) -> None:
        uow.orders.create(order("o1"))
        uow.audit.append(AuditEntry(action="test.half", at=NOW))
        raise RuntimeError("half-way")

    with pytest.raises(RuntimeError):
        storage.run(work)

    assert committed(storage, "o1") is None


def test_leaving_the_block_without_commit_rolls_back(storage: Storage) -> None:
    with storage.unit_of_work() as uow:
        uow.read(uow.orders.key("o1"))
        uow.orders.create(order("o1"))

    assert committed(storage, "o1") is None


def test_create_of_an_existing_document_fails_the_whole_commit(storage: Storage) -> None:
    storage.run(lambda uow: uow.orders.create(order("o1", currency="eur")))

    def work(uow: UnitOfWork) -> None:
        uow.orders.create(order("o2"))
        uow.orders.create(order("o1", currency="usd"))

    with pytest.raises(AlreadyExists):
        storage.run(work)

    assert committed(storage, "o2") is None
    loaded = committed(storage, "o1")
    assert loaded is not None
    assert loaded.currency == "eur"


def test_update_of_a_missing_document_fails_the_whole_commit(storage: Storage) -> None:
    def work(uow: UnitOfWork) -> None:
        uow.orders.create(order("o2"))
        uow.orders.update("missing", {"currency": "eur"})

    with pytest.raises(NotFound):
        storage.run(work)

    assert committed(storage, "o2") is None


def test_updates_change_only_the_named_fields(storage: Storage) -> None:
    storage.run(lambda uow: uow.orders.create(order("o1", currency="eur")))

    storage.run(lambda uow: uow.orders.update("o1", {"state": OrderState.PAID}))

    assert committed(storage, "o1") == order("o1", OrderState.PAID, currency="eur")


def test_reads_after_writes_are_refused(storage: Storage) -> None:
    def work(uow: UnitOfWork) -> None:
        uow.orders.put(order("o1"))
        uow.read(uow.orders.key("o2"))

    with pytest.raises(ReadAfterWrite):
        storage.run(work)

    assert committed(storage, "o1") is None


def test_queries_in_a_unit_see_committed_documents(storage: Storage) -> None:
    def seed(uow: UnitOfWork) -> None:
        uow.orders.create(order("o1", customer_id="c1"))
        uow.orders.create(order("o2", customer_id="c2"))
        uow.orders.create(order("o3", customer_id="c1"))

    storage.run(seed)

    found = storage.run(lambda uow: uow.orders.where("customer_id", "==", "c1"))

    assert sorted(o.id for o in found) == ["o1", "o3"]


def test_queries_combine_filters(storage: Storage) -> None:
    def seed(uow: UnitOfWork) -> None:
        uow.orders.create(order("o1", customer_id="c1", amount_total=100))
        uow.orders.create(order("o2", customer_id="c1", amount_total=900))
        uow.orders.create(order("o3", customer_id="c2", amount_total=100))

    storage.run(seed)

    with storage.batch() as uow:
        found = uow.orders.query(("customer_id", "==", "c1"), ("amount_total", "<", 500))

    assert [o.id for o in found] == ["o1"]


def test_deletes_and_puts_apply_at_commit(storage: Storage) -> None:
    storage.run(lambda uow: uow.orders.create(order("o1")))

    def work(uow: UnitOfWork) -> None:
        uow.orders.delete("o1")
        uow.orders.put(order("o2", OrderState.PAID))

    storage.run(work)

    assert committed(storage, "o1") is None
    assert committed(storage, "o2") == order("o2", OrderState.PAID)


def test_a_batch_unit_writes_atomically_too(storage: Storage) -> None:
    storage.run(lambda uow: uow.orders.create(order("o1")))

    uow = storage.batch()
    with uow:
        uow.orders.create(order("o2"))
        uow.orders.create(order("o1"))
        with pytest.raises(AlreadyExists):
            uow.commit()

    assert committed(storage, "o2") is None


@pytest.mark.emulators
def test_contending_units_are_re_run_and_lose_no_update(firestore_db: Any) -> None:
    from commerce.repositories.unit_of_work import FirestoreStorage

    storage = FirestoreStorage(firestore_db)
    start = threading.Barrier(4)

    def count_one(uow: UnitOfWork) -> None:
        key = uow.rate_counters.key("shared")
        current = uow.read(key)[key]
        uow.rate_counters.put(RateCounter(id="shared", count=(current.count if current else 0) + 1))

    def worker() -> None:
        start.wait()
        storage.run(count_one)

    run_copies(worker, 4)

    with storage.batch() as uow:
        final = uow.rate_counters.get("shared")
    assert final is not None
    assert final.count == 4  # every increment landed
