"""`commerce license ...` support commands against the Firestore emulator."""

from __future__ import annotations

from typing import Any

import pytest
from typer.testing import CliRunner

from commerce.bootstrap import Container
from commerce.cli import app
from commerce.domain.models import EmailJobKind, EmailJobState, LicenseStatus
from commerce.domain.orders import OrderState
from commerce.licensing.schemas import StatusCode
from commerce.licensing.support import reissue_job_id
from tests.licensing.conftest import Bought, Plugin, machine

pytestmark = pytest.mark.emulators
runner = CliRunner()


class RecordingQueue:
    def __init__(self) -> None:
        self.job_ids: list[str] = []

    def enqueue(self, job_id: str) -> None:
        self.job_ids.append(job_id)


@pytest.fixture
def queue(installed: Container) -> RecordingQueue:
    recording = RecordingQueue()
    installed.__dict__["email_queue"] = recording
    return recording


def run(*args: str) -> Any:
    return runner.invoke(app, ["license", *args])


def test_lookup_by_key_shows_the_hint_and_masked_address_never_the_key(
    installed: Container, bought: Bought, plugin: Plugin
) -> None:
    plugin.activate(bought.key, machine(1))

    result = run("lookup", "--key", bought.key.lower())

    assert result.exit_code == 0, result.output
    header = next(line for line in result.stdout.splitlines() if "activations" in line)
    (row,) = [line for line in result.stdout.splitlines() if bought.license_id in line]
    assert [cell.strip() for cell in header.strip("┃ ").split("┃")] == [
        "license", "key", "status", "gen", "order", "buyer", "activations", "since",
    ]  # fmt: skip
    cells = [cell.strip() for cell in row.strip("│ ").split("│")]
    assert cells[1] == "…-" + bought.key[-4:]
    assert cells[5] == "b***@example.com"
    assert cells[6] == "1/3"
    assert bought.key not in result.output
    assert bought.key[5:14] not in result.output  # no other group of the key either


def test_lookup_by_email_finds_the_buyers_licenses(installed: Container, bought: Bought) -> None:
    result = run("lookup", "--email", " Buyer1@Example.com ")

    assert result.exit_code == 0, result.output
    assert bought.license_id in result.output
    assert "buyer1@example.com" not in result.output


def test_lookup_of_an_unknown_address_says_so(installed: Container, bought: Bought) -> None:
    result = run("lookup", "--email", "nobody@example.com")

    assert result.exit_code == 1
    assert "no license found" in result.output


def test_activations_are_listed_and_can_be_reset(
    installed: Container, bought: Bought, plugin: Plugin
) -> None:
    plugin.activate(bought.key, machine(1), label="Studio PC")
    plugin.activate(bought.key, machine(2), label="Laptop")

    listed = run("activations", bought.license_id)
    reset = run("reset-activations", bought.license_id, "--yes", "--actor", "support:ann")

    assert "Studio PC" in listed.output
    assert "Laptop" in listed.output
    assert reset.exit_code == 0, reset.output
    assert "2 activation(s) removed" in reset.output
    assert plugin.validate(bought.key, machine(1)).status is StatusCode.NO_ACTIVATION
    assert plugin.activate(bought.key, machine(3)).fields["license"]["activations_used"] == 1
    entry = installed.audit_log.recent(action="license.activations_reset")[0]
    assert entry.actor == "support:ann"


def test_revoke_takes_effect_on_the_next_validate(
    installed: Container, bought: Bought, plugin: Plugin
) -> None:
    assert plugin.validate(bought.key).status is StatusCode.VALID

    result = run("revoke", bought.license_id, "--reason", "chargeback fraud", "--yes")

    assert result.exit_code == 0, result.output
    assert plugin.validate(bought.key).status is StatusCode.REVOKED
    license_ = installed.licenses.get(bought.license_id)
    assert license_ is not None
    assert license_.status is LicenseStatus.REVOKED
    order = installed.orders.get(bought.order_id)
    assert order is not None
    assert order.state is OrderState.REVOKED  # download links stop as well


def test_reissue_retires_the_old_key_and_emails_the_new_one(
    installed: Container, bought: Bought, plugin: Plugin, queue: RecordingQueue
) -> None:
    plugin.activate(bought.key, machine(1))

    result = run("reissue", bought.license_id, "--yes")

    assert result.exit_code == 0, result.output
    license_ = installed.licenses.get(bought.license_id)
    assert license_ is not None
    assert license_.generation == 2
    new_key = installed.keys.key_for(license_.id, license_.generation, license_.secret_id)
    assert plugin.validate(bought.key).status is StatusCode.NOT_FOUND
    assert plugin.validate(new_key).status is StatusCode.VALID
    assert plugin.validate(new_key, machine(1)).status is StatusCode.NO_ACTIVATION  # reset
    job = installed.email_jobs.get(reissue_job_id(bought.license_id, 2))
    assert job is not None
    assert job.kind is EmailJobKind.REISSUE
    assert job.state is EmailJobState.PENDING
    assert job.license_ids == (bought.license_id,)
    assert queue.job_ids == [job.id]
    assert "…-" + new_key[-4:] in result.output
    assert new_key not in result.output


def test_reissue_can_keep_the_activations(
    installed: Container, bought: Bought, plugin: Plugin, queue: RecordingQueue
) -> None:
    plugin.activate(bought.key, machine(1))

    run("reissue", bought.license_id, "--yes", "--keep-activations")

    license_ = installed.licenses.get(bought.license_id)
    assert license_ is not None
    new_key = installed.keys.key_for(license_.id, license_.generation, license_.secret_id)
    assert plugin.validate(new_key, machine(1)).status is StatusCode.VALID


def test_unknown_license_ids_are_an_error_not_a_traceback(installed: Container) -> None:
    result = run("revoke", "lic_missing", "--reason", "x", "--yes")

    assert result.exit_code == 1
    assert "license_unknown" in result.output


def test_beta_opt_in_is_set_by_support_audited_and_can_be_undone(
    installed: Container, bought: Bought
) -> None:
    on = run("beta", bought.license_id, "--on", "--actor", "support:ann", "--yes")
    again = run("beta", bought.license_id, "--on", "--yes")
    opted_in = installed.licenses.get(bought.license_id)
    off = run("beta", bought.license_id, "--off", "--yes")
    opted_out = installed.licenses.get(bought.license_id)
    neither = run("beta", bought.license_id, "--yes")

    assert on.exit_code == 0, on.output
    assert f"{bought.license_id}: beta on" in on.output
    assert "(already)" in again.output
    assert opted_in is not None
    assert opted_in.beta_opt_in is True
    assert off.exit_code == 0, off.output
    assert opted_out is not None
    assert opted_out.beta_opt_in is False
    assert neither.exit_code == 2
    entries = installed.audit_log.recent(action="license.beta_opt_in")
    assert sorted((e.actor, e.details["changed"]) for e in entries)[0] == ("support:ann", True)
    assert len(entries) == 2


def test_beta_opt_in_asks_first(installed: Container, bought: Bought) -> None:
    result = runner.invoke(app, ["license", "beta", bought.license_id, "--on"], input="n\n")

    assert result.exit_code == 1
    license_ = installed.licenses.get(bought.license_id)
    assert license_ is not None
    assert license_.beta_opt_in is False
