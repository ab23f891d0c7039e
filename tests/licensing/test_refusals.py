"""Refused license calls are audited once per subject and window and counted otherwise:
pure tests of `RefusalAudit` with a recording auditor, and the service on Google's
Firestore emulator (a key scan from one network, a refunded key from many)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from commerce.bootstrap import Container
from commerce.clock import FixedClock
from commerce.licensing.refusals import RefusalAudit
from commerce.licensing.schemas import StatusCode
from tests.licensing.conftest import Bought, Plugin, machine, refund

START = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)  # on a window boundary


class RecordingAuditor:
    def __init__(self) -> None:
        self.entries: list[tuple[str, dict[str, Any]]] = []

    def record(self, action: str, **fields: Any) -> None:
        self.entries.append((action, fields))

    def actions(self) -> list[str]:
        return [action for action, _ in self.entries]


def audit(max_audits: int = 1000) -> tuple[RefusalAudit, RecordingAuditor, FixedClock]:
    auditor, clock = RecordingAuditor(), FixedClock(START)
    return RefusalAudit(auditor, clock, max_audits=max_audits), auditor, clock  # type: ignore[arg-type]


def refuse(refusals: RefusalAudit, subject: str = "net:abc", status: str = "NOT_FOUND") -> bool:
    return refusals.record(subject=subject, operation="validate", status=status, network="abc")


def test_a_repeated_refusal_is_audited_once_and_counted_after() -> None:
    refusals, auditor, _ = audit()

    outcomes = [refuse(refusals) for _ in range(5)]

    assert outcomes == [True, False, False, False, False]
    assert auditor.actions() == ["license.refused"]
    assert auditor.entries[0][1]["window_start"] == int(START.timestamp())


def test_the_next_window_writes_the_count_and_audits_afresh() -> None:
    refusals, auditor, clock = audit()
    for _ in range(4):
        refuse(refusals)

    clock.advance(hours=1)
    refuse(refusals)

    assert auditor.actions() == ["license.refused", "license.refusals_counted", "license.refused"]
    summary = auditor.entries[1][1]
    assert summary["counted"] == 3
    assert summary["audited"] == 1
    assert summary["window_start"] == int(START.timestamp())


def test_other_subjects_statuses_and_operations_are_audited_each() -> None:
    refusals, auditor, _ = audit()

    refuse(refusals, "net:abc", "NOT_FOUND")
    refuse(refusals, "net:abc", "INVALID_KEY")
    refuse(refusals, "net:def", "NOT_FOUND")
    refusals.record(subject="net:abc", operation="activate", status="NOT_FOUND")

    assert auditor.actions() == ["license.refused"] * 4


def test_rotating_networks_cannot_write_more_than_the_cap() -> None:
    refusals, auditor, _ = audit(max_audits=3)

    for n in range(10):
        refuse(refusals, f"net:{n}")
    refusals.flush()

    assert auditor.actions() == ["license.refused"] * 3 + ["license.refusals_counted"]
    assert auditor.entries[-1][1]["over_cap"] == 7
    assert auditor.entries[-1][1]["counted"] == 7


def test_a_window_with_nothing_counted_writes_no_summary() -> None:
    refusals, auditor, clock = audit()
    refuse(refusals)
    clock.advance(hours=1)
    refuse(refusals, "net:other")
    refusals.flush()

    assert auditor.actions() == ["license.refused", "license.refused"]


# -- through the service, on the emulator -----------------------------------------------


def refused_entries(container: Container) -> list[Any]:
    return container.audit_log.recent(action="license.refused")


@pytest.mark.emulators
def test_a_key_scan_from_one_network_is_one_audit_entry(
    container: Container, plugin: Plugin
) -> None:
    strangers = [container.keys.issue_key(f"lic_nobody_{n}").key for n in range(6)]

    answers = [plugin.validate(key).status for key in strangers]

    assert answers == [StatusCode.NOT_FOUND] * 6
    (entry,) = refused_entries(container)
    assert entry.details["status"] == "NOT_FOUND"
    assert entry.details["key_hash_prefix"]


@pytest.mark.emulators
def test_a_refunded_key_used_from_many_networks_is_one_audit_entry_per_window(
    container: Container, bought: Bought, clock: FixedClock
) -> None:
    refund(container, bought)
    service = container.license_service
    networks = [f"198.51.100.{n}/32" for n in range(5)]

    answers = [Plugin(service, network).validate(bought.key).status for network in networks]
    clock.advance(hours=1)
    later = Plugin(service, networks[0]).activate(bought.key, machine(1)).status
    Plugin(service, networks[1]).activate(bought.key, machine(1))
    service.refusals.flush()

    assert answers == [StatusCode.REFUNDED] * 5
    assert later is StatusCode.REFUNDED
    audited = refused_entries(container)
    assert sorted((e.details["operation"], e.license_id) for e in audited) == [
        ("activate", bought.license_id),
        ("validate", bought.license_id),
    ]
    counted = container.audit_log.recent(action="license.refusals_counted")
    assert sorted(e.details["counted"] for e in counted) == [1, 4]
