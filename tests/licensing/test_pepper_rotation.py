"""Rotating the license-key pepper (`commerce keys rotate-pepper`) against Google's
Firestore emulator: every key validates under the new pepper, every customer moves to
its new id with its references, a second run changes nothing, nothing secret is shown."""

from __future__ import annotations

import base64
from typing import Any

import pytest
from typer.testing import CliRunner

from commerce.bootstrap import Container
from commerce.cli import app
from commerce.clock import FixedClock
from commerce.licensing.schemas import StatusCode
from tests.licensing.conftest import (
    Bought,
    Plugin,
    build_container,
    buy,
    make_settings,
)

pytestmark = pytest.mark.emulators
NEW_PEPPER = b"genx-tests-the-new-pepper-0123456789"


def with_pepper(pepper: bytes, clock: FixedClock, db: Any) -> Container:
    """A fresh instance (no remembered key hashes) whose secret holds `pepper`."""
    encoded = base64.urlsafe_b64encode(pepper).decode().rstrip("=")
    return build_container(make_settings(), clock, db, LICENSE_KEY_PEPPER=encoded)


def two_buyers(container: Container) -> list[Bought]:
    bought = [buy(container, n=1), buy(container, n=2)]
    for purchase in bought:
        for job in purchase.purchase.email_jobs:
            container.email_jobs.put(job)
    return bought


def test_after_the_rotation_every_key_validates_under_the_new_pepper_only(
    container: Container, clock: FixedClock, firestore_db: Any
) -> None:
    bought = two_buyers(container)
    old_customer_ids = [b.purchase.customer.id for b in bought]

    report = container.pepper_rotation(NEW_PEPPER).run(actor="ops")

    assert (report.licenses_rehashed, report.customers_moved, report.problems) == (2, 2, [])
    rotated = with_pepper(NEW_PEPPER, clock, firestore_db)
    stale = build_container(make_settings(), clock, firestore_db)  # still the old pepper
    for purchase in bought:
        # Customers keep their keys: derived, not stored.
        assert Plugin(rotated.license_service).validate(purchase.key).status is StatusCode.VALID
        assert Plugin(stale.license_service).validate(purchase.key).status is (StatusCode.NOT_FOUND)
    for n, purchase in enumerate(bought, start=1):
        new_id = rotated.keys.customer_id_for(f"buyer{n}@example.com")
        assert new_id != old_customer_ids[n - 1]
        assert container.customers.get(old_customer_ids[n - 1]) is None
        moved = container.customers.get(new_id)
        assert moved is not None
        assert moved.email == purchase.purchase.customer.email
        assert [o.id for o in container.orders.by_customer(new_id)] == [purchase.order_id]
        assert [lic.id for lic in container.licenses.by_customer(new_id)] == [purchase.license_id]
        assert len(container.email_jobs.by_customer(new_id)) == len(purchase.purchase.email_jobs)
        found = rotated.license_support.by_email(f"buyer{n}@example.com")
        assert [summary.license_id for summary in found] == [purchase.license_id]

    actions = [entry.action for entry in container.audit_log.recent(limit=1000)]
    assert actions.count("license.key_rehashed") == 2
    assert actions.count("customer.rekeyed") == 2
    assert actions.count("keys.pepper_rotated") == 1


def test_a_second_run_finds_everything_done_and_changes_nothing(container: Container) -> None:
    two_buyers(container)
    rotation = container.pepper_rotation(NEW_PEPPER)
    rotation.run(actor="ops")
    hashes = {lic.id: lic.key_hash for lic in container.licenses.all()}

    again = rotation.run(actor="ops")

    assert (again.licenses_rehashed, again.customers_moved) == (0, 0)
    assert (again.licenses_already_done, again.customers_already_done) == (2, 2)
    assert {lic.id: lic.key_hash for lic in container.licenses.all()} == hashes


def test_a_dry_run_counts_and_changes_nothing(container: Container) -> None:
    bought = two_buyers(container)

    report = container.pepper_rotation(NEW_PEPPER).run(actor="ops", dry_run=True)

    assert (report.licenses_rehashed, report.customers_moved) == (2, 2)
    assert Plugin(container.license_service).validate(bought[0].key).status is StatusCode.VALID
    assert container.customers.get(bought[0].purchase.customer.id) is not None
    assert container.audit_log.recent(action="keys.pepper_rotated") == []


def test_the_pepper_in_use_is_refused(container: Container) -> None:
    with pytest.raises(ValueError, match="in use"):
        container.pepper_rotation(container.keys.material.pepper)


def test_the_command_reads_the_new_pepper_from_the_environment_and_prints_no_secret(
    installed: Container, monkeypatch: pytest.MonkeyPatch
) -> None:
    two_buyers(installed)
    runner = CliRunner()

    missing = runner.invoke(app, ["keys", "rotate-pepper", "--new-pepper-env", "NOT_SET_HERE"])
    assert missing.exit_code == 3  # a missing secret is configuration (README's exit codes)
    assert "NOT_SET_HERE" in missing.output

    encoded = base64.urlsafe_b64encode(NEW_PEPPER).decode()
    monkeypatch.setenv("NEW_LICENSE_KEY_PEPPER", encoded)
    done = runner.invoke(app, ["keys", "rotate-pepper", "--actor", "ops"])

    assert done.exit_code == 0, done.output
    assert "licenses: 2 changed" in done.output
    assert "customers: 2 changed" in done.output
    assert encoded not in done.output
    again = runner.invoke(app, ["keys", "rotate-pepper", "--actor", "ops"])
    assert "licenses: 0 changed, 2 already done" in again.output
