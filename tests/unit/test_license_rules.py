"""Rules on the license itself (pure): entitlement, standing changes, activation policy."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest

from commerce.domain.models import Entitlement, License, LicenseStatus, entitlement
from commerce.domain.orders import OrderState

NOW = datetime(2026, 3, 1, 9, 30, tzinfo=UTC)


def license_(**fields: object) -> License:
    values: dict[str, object] = {
        "id": "lic_1",
        "order_id": "cs_1",
        "customer_id": "cus_1",
        "key_hash": "h",
        "key_hint": "GENX-…-AAAA",
        "secret_id": "s1",
        "created_at": NOW,
        "updated_at": NOW,
        **fields,
    }
    return License.model_validate(values)


@dataclass(frozen=True)
class Machine:
    id: str
    last_seen_at: datetime


@pytest.mark.parametrize(
    ("order_state", "status", "expected"),
    [
        (OrderState.FULFILLED, LicenseStatus.ACTIVE, Entitlement.ENTITLED),
        (OrderState.REFUNDED, LicenseStatus.REVOKED, Entitlement.ORDER_REFUNDED),
        (OrderState.DISPUTED, LicenseStatus.SUSPENDED, Entitlement.ORDER_DISPUTED),
        (OrderState.REVOKED, LicenseStatus.REVOKED, Entitlement.ORDER_REVOKED),
        (OrderState.PAID, LicenseStatus.ACTIVE, Entitlement.ORDER_NOT_ENTITLED),
        (OrderState.FULFILLED, LicenseStatus.SUSPENDED, Entitlement.LICENSE_SUSPENDED),
        (OrderState.FULFILLED, LicenseStatus.REVOKED, Entitlement.LICENSE_REVOKED),
        (None, LicenseStatus.ACTIVE, Entitlement.ORDER_NOT_ENTITLED),
        (OrderState.FULFILLED, None, Entitlement.LICENSE_REVOKED),
    ],
)
def test_the_order_speaks_before_the_license(
    order_state: OrderState | None, status: LicenseStatus | None, expected: Entitlement
) -> None:
    assert entitlement(order_state, status) is expected


def test_a_license_answers_from_its_mirror_unless_the_order_was_read() -> None:
    mirrored = license_(order_state=OrderState.REFUNDED)

    assert mirrored.entitlement() is Entitlement.ORDER_REFUNDED
    assert not mirrored.is_entitled
    assert license_().entitlement(OrderState.DISPUTED) is Entitlement.ORDER_DISPUTED


def test_revocation_is_final_and_a_revoked_license_only_mirrors_its_order() -> None:
    first = license_().revoke("refund", order_state=OrderState.REFUNDED, now=NOW)
    again = license_(status=LicenseStatus.REVOKED, status_reason="refund").revoke(
        "dispute_lost", order_state=OrderState.REVOKED, now=NOW
    )

    assert first == {
        "status": LicenseStatus.REVOKED,
        "status_reason": "refund",
        "order_state": OrderState.REFUNDED,
        "updated_at": NOW,
    }
    assert again == {"order_state": OrderState.REVOKED, "updated_at": NOW}


def test_a_dispute_suspends_an_active_license_and_winning_restores_it() -> None:
    suspended = license_().suspend(order_state=OrderState.DISPUTED, now=NOW)
    restored = license_(status=LicenseStatus.SUSPENDED, order_state=OrderState.DISPUTED).restore(
        order_state=OrderState.FULFILLED, now=NOW
    )

    assert suspended is not None
    assert (suspended["status"], suspended["status_reason"]) == (LicenseStatus.SUSPENDED, "dispute")
    assert restored is not None
    assert (restored["status"], restored["status_reason"]) == (LicenseStatus.ACTIVE, None)
    # A revoked license stays revoked through a dispute; only the order's state moves.
    assert license_(status=LicenseStatus.REVOKED).suspend(
        order_state=OrderState.DISPUTED, now=NOW
    ) == {"order_state": OrderState.DISPUTED, "updated_at": NOW}


def test_nothing_to_write_when_nothing_changes() -> None:
    assert license_().mirror(OrderState.FULFILLED, NOW) is None
    assert license_().mirror(None, NOW) is None


def test_the_longest_unseen_stale_machines_give_up_their_slots_first() -> None:
    cutoff = NOW - timedelta(days=180)
    holders = [
        Machine("a", cutoff - timedelta(days=1)),
        Machine("b", cutoff - timedelta(days=9)),
        Machine("c", NOW),
    ]

    slots, released, fits = license_(activation_limit=3).make_room(holders, stale_before=cutoff)

    assert fits
    assert [m.id for m in released] == ["b"]
    assert slots == ["a", "c"]


def test_no_room_when_every_machine_was_seen_recently() -> None:
    holders = [Machine(str(n), NOW) for n in range(3)]

    slots, released, fits = license_(activation_limit=3).make_room(
        holders, stale_before=NOW - timedelta(days=180)
    )

    assert not fits
    assert (slots, released) == (["0", "1", "2"], [])
