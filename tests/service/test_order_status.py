"""The success page's look-up through the composition root, on the in-memory store."""

from __future__ import annotations

from typing import Any

import pytest

from commerce.bootstrap import Container
from commerce.clock import FixedClock
from commerce.domain.orders import OrderState
from commerce.repositories.memory import MemoryStorage
from commerce.storefront.order_status import InvalidSessionId
from commerce.unit_of_work import UnitOfWork
from tests.support import factories


def test_a_recorded_order_shows_its_state_and_masked_address_only(
    container: Container, storage: MemoryStorage, clock: FixedClock
) -> None:
    bought = factories.purchase(container.keys, OrderState.FULFILLED, now=clock.now())

    def store(uow: UnitOfWork) -> None:
        uow.orders.put(bought.order)

    storage.run(store)

    status = container.order_status_service.status(bought.order.id)

    assert status.as_dict() == {"state": "fulfilled", "email_masked": bought.order.email_masked}
    assert status.email_masked
    assert "ada@example.com" not in status.email_masked


def test_an_order_the_webhook_has_not_recorded_yet_reads_as_pending(
    container: Container,
) -> None:
    status = container.order_status_service.status(factories.session_id(42))

    assert status.as_dict() == {"state": "pending", "email_masked": None}


def test_a_malformed_session_id_is_refused_without_opening_a_unit(
    container: Container, storage: MemoryStorage, monkeypatch: pytest.MonkeyPatch
) -> None:
    opened: list[Any] = []
    monkeypatch.setattr(storage, "batch", lambda: opened.append(1))

    with pytest.raises(InvalidSessionId):
        container.order_status_service.status("cs_../../orders")

    assert opened == []
