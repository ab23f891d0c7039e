"""The pepper rotation through the composition root on the in-memory unit of work:
keys re-hashed, customers moved with their references, a second run changes nothing
(the same command against the emulator: tests/licensing/test_pepper_rotation.py)."""

from __future__ import annotations

from commerce.bootstrap import Container
from commerce.clock import FixedClock
from commerce.domain import license_keys
from commerce.domain.orders import OrderState
from commerce.keys import customer_id
from commerce.repositories.memory import MemoryStorage
from commerce.unit_of_work import UnitOfWork
from tests.support import factories

NEW_PEPPER = b"genx-tests-the-new-pepper-0123456789"


def store(storage: MemoryStorage, bought: factories.Purchase) -> None:
    def work(uow: UnitOfWork) -> None:
        uow.customers.put(bought.customer)
        uow.orders.put(bought.order)
        assert bought.license is not None
        uow.licenses.put(bought.license)
        for job in bought.email_jobs:
            uow.email_jobs.put(job)

    storage.run(work)


def test_a_rotation_rehashes_every_key_and_moves_every_customer_once(
    container: Container, storage: MemoryStorage, clock: FixedClock
) -> None:
    bought = factories.purchase(container.keys, OrderState.FULFILLED, now=clock.now())
    store(storage, bought)
    assert bought.license is not None
    assert bought.key is not None
    new_id = customer_id(bought.customer.email, NEW_PEPPER)

    report = container.pepper_rotation(NEW_PEPPER).run(actor="ops")
    again = container.pepper_rotation(NEW_PEPPER).run(actor="ops")

    assert (report.licenses_rehashed, report.customers_moved, report.problems) == (1, 1, [])
    assert report.references_rewritten == 1 + 1 + len(bought.email_jobs)
    assert (again.licenses_rehashed, again.customers_moved) == (0, 0)
    assert (again.licenses_already_done, again.customers_already_done) == (1, 1)
    license_ = storage.load("licenses", bought.license.id)
    assert license_.key_hash == license_keys.hash_key(bought.key, NEW_PEPPER)
    assert license_.customer_id == new_id
    assert storage.load("customers", bought.customer.id) is None
    assert storage.load("customers", new_id).email == bought.customer.email
    assert storage.load("orders", bought.order.id).customer_id == new_id
    for job in bought.email_jobs:
        assert storage.load("email_jobs", job.id).customer_id == new_id
