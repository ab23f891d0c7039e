"""The Cloud Scheduler jobs' exact requests (read from scheduler.tf) against the whole
local stack that `make dev` runs: every function target answers 2xx."""

from __future__ import annotations

import requests

from infra import platform_calls


def test_every_scheduled_job_is_answered_2xx_by_the_running_stack(e2e_stack):
    calls = [call for call in platform_calls.scheduled_calls() if call.target is not None]
    assert calls

    for call in calls:
        assert call.target is not None
        url = e2e_stack.env[f"{call.target.upper()}_URL"].rstrip("/") + call.path
        answer = requests.request(
            call.method, url, headers=dict(call.headers), data=call.body, timeout=120
        )
        assert 200 <= answer.status_code < 300, (call.source, answer.status_code, answer.text)
