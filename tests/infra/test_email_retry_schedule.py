"""The e-mail queue's retry config and the sweeper's cron in Terraform are the schedule
the app computes with (`commerce.domain.email_retry`): one design, written twice, held
together here."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import hcl2
from hcl2.utils import SerializationOptions
from infra_helpers import TERRAFORM_ROOT

from commerce.domain import email_retry
from commerce.settings import Settings

VARIABLES = TERRAFORM_ROOT / "modules" / "shop" / "variables.tf"


def defaults() -> dict[str, Any]:
    options = SerializationOptions(strip_string_quotes=True, with_comments=False)
    parsed = hcl2.loads(VARIABLES.read_text(encoding="utf-8"), serialization_options=options)
    return {
        name: body.get("default") for block in parsed["variable"] for name, body in block.items()
    }


def seconds(duration: str) -> timedelta:
    assert duration.endswith("s"), duration
    return timedelta(seconds=float(duration[:-1]))


def test_the_queue_retries_unanswered_tasks_on_the_apps_schedule() -> None:
    queue = defaults()["email_queue"]

    assert seconds(queue["min_backoff"]) == email_retry.MIN_BACKOFF
    assert seconds(queue["max_backoff"]) == email_retry.MAX_BACKOFF
    assert queue["max_doublings"] == email_retry.MAX_DOUBLINGS


def test_the_queue_gives_a_task_up_before_the_sweeper_would_double_it() -> None:
    """A task Cloud Tasks still retries must not also be re-queued by the sweeper for
    long: its retries end within a few sweeps (10 minutes)."""
    queue = defaults()["email_queue"]
    tries = sum((email_retry.delay(n) for n in range(1, int(queue["max_attempts"]))), timedelta())
    assert tries <= seconds(queue["max_retry_duration"]) <= timedelta(minutes=10)


def test_the_sweeper_runs_every_minute() -> None:
    assert defaults()["email_sweeper_schedule"] == "* * * * *"
    assert timedelta(minutes=1) == email_retry.SWEEP_EVERY


def test_the_apps_attempt_limit_covers_two_hours_of_provider_outage() -> None:
    limit = Settings.model_fields["email_max_attempts"].default
    waited = sum((email_retry.delay(n) for n in range(1, limit)), timedelta())
    assert timedelta(hours=2) <= waited <= timedelta(hours=3)
