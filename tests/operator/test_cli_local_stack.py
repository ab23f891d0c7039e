"""The installed `commerce` command against a `make dev`-shaped checkout, with nothing
configured in the shell: it finds `.local/`, says where it talks to, and fails in one
line (no traceback) when the stack is stopped or the reader of its output goes away.

The checkout is a temporary directory laid out as `make dev` leaves it; its Firestore
is the test emulator, its secrets are generated here."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from commerce.repositories.collections import CustomerRepository, LicenseRepository, OrderRepository
from emulators import local_secrets
from tests.support import emulators as emu
from tests.support import factories

COMMERCE = Path(sys.executable).parent / "commerce"
CONFIGURING = ("ENVIRONMENT", "GCP_PROJECT", "GOOGLE_CLOUD_PROJECT", "SECRETS_BACKEND")


@pytest.fixture
def checkout(tmp_path: Path, firestore_emulator: str) -> Path:
    local = tmp_path / ".local"
    local.mkdir()
    (local / "stack.env").write_text(
        f"GCP_PROJECT={emu.TEST_PROJECT}\n"
        f"FIRESTORE_EMULATOR_HOST={firestore_emulator}\n"
        "STORAGE_EMULATOR_HOST=http://127.0.0.1:9\n"
        f"ARTIFACTS_BUCKET={emu.TEST_BUCKET}\n"
        "STOREFRONT_URL=http://127.0.0.1:9310\n"
        "PUBLIC_BASE_URL=http://127.0.0.1:9322\n",
        encoding="utf-8",
    )
    (local / "secrets.env").write_text(
        "".join(f"{k}={v}\n" for k, v in local_secrets.new_secrets().items()), encoding="utf-8"
    )
    (local / "stack.json").write_text("{}\n", encoding="utf-8")  # present while it runs
    return tmp_path


def commerce(checkout: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in CONFIGURING and "EMULATOR" not in k}
    return subprocess.run(
        [str(COMMERCE), *args],
        cwd=checkout / "sub" if (checkout / "sub").is_dir() else checkout,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def seed_one_license(checkout: Path, firestore_db: Any) -> factories.Purchase:
    secrets = dict(
        line.split("=", 1)
        for line in (checkout / ".local" / "secrets.env").read_text().splitlines()
    )
    keys = factories.key_service(secrets)
    fulfilled = next(
        p
        for p in factories.sample_purchases(keys, datetime.now(UTC))
        if p.license is not None and p.key
    )
    CustomerRepository(firestore_db).put(fulfilled.customer)
    OrderRepository(firestore_db).put(fulfilled.order)
    assert fulfilled.license is not None
    LicenseRepository(firestore_db).put(fulfilled.license)
    return fulfilled


def test_with_nothing_configured_the_commands_use_the_running_local_stack(
    checkout: Path, firestore_db: Any
) -> None:
    bought = seed_one_license(checkout, firestore_db)
    (checkout / "sub").mkdir()  # found from a sub-directory too

    lookup = commerce(checkout, "license", "lookup", "--key", bought.key or "")
    releases = commerce(checkout, "release", "list")
    failed = commerce(checkout, "emails", "failed", "--json")

    for result in (lookup, releases, failed):
        assert result.returncode == 0, result.stderr
        assert result.stderr.splitlines()[0] == (
            f"commerce: environment local, project {emu.TEST_PROJECT} "
            f"(local stack {checkout / '.local' / 'stack.env'})"
        )
    assert bought.license is not None
    assert bought.license.id in lookup.stdout
    assert (bought.key or "") not in lookup.stdout + lookup.stderr
    assert releases.stdout == "no releases\n"
    assert json.loads(failed.stdout) == []


def test_a_stopped_stack_is_one_line_and_exit_code_3(checkout: Path) -> None:
    (checkout / ".local" / "stack.json").unlink()  # what `make stop` leaves

    result = commerce(checkout, "release", "list")

    assert result.returncode == 3
    assert result.stdout == ""
    assert result.stderr.count("\n") == 1
    assert "local stack in" in result.stderr
    assert "is not running" in result.stderr
    assert "Traceback" not in result.stderr


def test_an_invalid_setting_in_the_shell_is_one_line_naming_it(checkout: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k not in CONFIGURING}
    result = subprocess.run(
        [str(COMMERCE), "emails", "failed"],
        cwd=checkout,
        env={**env, "ENVIRONMENT": "production"},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )

    assert result.returncode == 3
    assert result.stderr.count("\n") == 1
    assert result.stderr.startswith("error: configuration: invalid configuration: GCP_PROJECT")
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize(
    "args",
    [
        ("release", "list"),  # plain lines (typer.echo)
        ("license", "--help"),  # Rich output
    ],
)
def test_a_reader_that_goes_away_ends_the_output_without_a_traceback(
    checkout: Path, firestore_db: Any, args: tuple[str, ...]
) -> None:
    env = {k: v for k, v in os.environ.items() if k not in CONFIGURING and "EMULATOR" not in k}
    read_end, write_end = os.pipe()
    os.close(read_end)  # `| head` that has already exited
    try:
        result = subprocess.run(
            [str(COMMERCE), *args],
            cwd=checkout,
            env=env,
            stdout=write_end,
            stderr=subprocess.PIPE,
            text=True,
            timeout=120,
            check=False,
        )
    finally:
        os.close(write_end)

    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert "BrokenPipeError" not in result.stderr
