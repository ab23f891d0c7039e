"""A command's stdout is its output (a table, or JSON with `--json`) and nothing else:
the log records the services write (JSON lines on stdout, which is how a Cloud Function
reaches Cloud Logging) go to stderr when the `commerce` command runs them."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from commerce.bootstrap import Container, use_container
from commerce.cli import app
from commerce.purchase.schemas import ReconcileReport


class LoggingReconciler:
    """Logs what the real reconciler logs (and the stripe library, at INFO) and reports."""

    def run(self, days: int | None) -> ReconcileReport:
        logging.getLogger("stripe").info("message='Request to Stripe api' method=get")
        logging.getLogger("commerce.purchase.reconciliation").info(
            "reconciliation done", extra={"event": "reconcile.done"}
        )
        return ReconcileReport(days=days or 3, examined=2, paid=1, already_fulfilled=1)


@pytest.fixture
def configured_shell(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """A shell configured for an environment, so the command builds the container (and
    its logging) itself, as it does for an operator."""
    monkeypatch.chdir(tmp_path)  # no .env or .local/ from the checkout
    for name, value in {
        "ENVIRONMENT": "local",
        "GCP_PROJECT": "demo-genx",
        "STOREFRONT_URL": "https://shop.example.com",
        "PUBLIC_BASE_URL": "https://shop.example.com",
        "ARTIFACTS_BUCKET": "genx-artifacts",
        "SECRETS_BACKEND": "env",
        "LOG_LEVEL": "INFO",
    }.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setattr(Container, "reconciler", property(lambda self: LoggingReconciler()))
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    use_container(None)
    yield
    use_container(None)
    root.handlers[:] = handlers
    root.setLevel(level)


def test_json_output_is_json_only_and_the_log_records_go_to_stderr(
    configured_shell: None,
) -> None:
    result = CliRunner().invoke(app, ["reconcile", "--days", "2", "--json"], prog_name="commerce")

    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == {
        "days": 2,
        "examined": 2,
        "paid": 1,
        "already_fulfilled": 1,
        "repaired": 0,
        "blocked": 0,
        "rejected": 0,
        "failed": 0,
        "repaired_sessions": [],
        "refunds_examined": 0,
        "refunds_applied": 0,
        "disputes_examined": 0,
        "disputes_applied": 0,
        "applied": [],
    }
    logged = [json.loads(line) for line in result.stderr.splitlines() if line.startswith("{")]
    assert [entry["message"] for entry in logged] == [
        "message='Request to Stripe api' method=get",
        "reconciliation done",
    ]


def test_the_plain_report_is_the_only_thing_on_stdout(configured_shell: None) -> None:
    result = CliRunner().invoke(app, ["reconcile", "--days", "2"], prog_name="commerce")

    assert result.exit_code == 0, result.output
    assert result.stdout == (
        "last 2 day(s): 2 sessions examined, 1 paid; 0 repaired, 1 already fulfilled, "
        "0 blocked (refunded/revoked/failed), 0 rejected, 0 failed; 0 refunds and 0 disputes "
        "examined, 0 refunds and 0 dispute changes applied\n"
    )
    assert "reconciliation done" in result.stderr
