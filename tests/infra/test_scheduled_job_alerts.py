"""Every Cloud Scheduler job is watched: its failed attempts (4xx, 5xx, unreachable) and
the 4xx/5xx answers of the function it calls raise an alert, not only 5xx rates."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from infra_helpers import TERRAFORM_ROOT, append, replace_once

from infra import platform_calls

SHOP = Path("modules/shop")


def test_every_scheduled_job_is_watched() -> None:
    assert platform_calls.scheduled_job_alert_gaps(TERRAFORM_ROOT / SHOP) == []


def _metric_limited_to_one_job(root: Path) -> None:
    replace_once(
        root / SHOP / "monitoring.tf",
        'filter      = "resource.type=\\"cloud_scheduler_job\\" AND severity>=ERROR"',
        'filter      = "resource.type=\\"cloud_scheduler_job\\" AND severity>=ERROR'
        ' AND resource.labels.job_id=\\"shop-reconcile\\""',
    )


def _no_alert_on_the_metric(root: Path) -> None:
    replace_once(
        root / SHOP / "monitoring.tf",
        "google_logging_metric.scheduler_job_failures.name",
        'google_logging_metric.event["dead_emails"].name',
    )


def _only_5xx_answers(root: Path) -> None:
    replace_once(
        root / SHOP / "monitoring.tf",
        'response_code_class=one_of(\\"4xx\\",\\"5xx\\")',
        'response_code_class=\\"5xx\\"',
    )


def _a_job_outside_the_scheduled_map(root: Path) -> None:
    append(
        root / SHOP / "scheduler.tf",
        'resource "google_cloud_scheduler_job" "nightly_sweep" {\n'
        "  project  = var.project_id\n"
        "  region   = var.region\n"
        '  name     = "nightly-sweep"\n'
        '  schedule = "0 3 * * *"\n'
        "  http_target {\n"
        '    http_method = "POST"\n'
        '    uri         = local.deployed["email_sweeper"].uri\n'
        "  }\n"
        "}\n",
    )


@pytest.mark.parametrize(
    "seed",
    [
        _metric_limited_to_one_job,
        _no_alert_on_the_metric,
        _only_5xx_answers,
        _a_job_outside_the_scheduled_map,
    ],
)
def test_the_check_catches(seed: Callable[[Path], None], terraform_copy: Path) -> None:
    seed(terraform_copy)
    assert platform_calls.scheduled_job_alert_gaps(terraform_copy / SHOP) != []
