"""`make smoke` against the whole local stack: passes when it is up, fails when a
function is down."""

from __future__ import annotations

import dataclasses

from emulators import stack as local_stack
from infra.smoke import Endpoints, main, run_smoke


def endpoints_of(e2e_stack) -> Endpoints:
    return dataclasses.replace(
        Endpoints.from_stack_env(e2e_stack.env), storefront=e2e_stack.storefront
    )


def test_smoke_passes_against_the_running_local_stack(e2e_stack):
    results = run_smoke(endpoints_of(e2e_stack))
    assert [r.name for r in results if not r.ok] == [], results
    assert len(results) == 5


def test_smoke_fails_when_a_function_is_down(e2e_stack):
    dead = f"http://127.0.0.1:{local_stack.free_port()}"  # nothing listens there
    endpoints = dataclasses.replace(endpoints_of(e2e_stack), download=dead)
    results = {r.name: r for r in run_smoke(endpoints)}
    assert not results["bogus download token"].ok
    assert "refused" in results["bogus download token"].detail.lower()
    assert all(r.ok for name, r in results.items() if name != "bogus download token")


def test_smoke_command_exits_non_zero_without_a_running_stack(tmp_path, capsys):
    try:
        code = main(["--local", "--local-dir", str(tmp_path)])
    except SystemExit as exit_:
        code = exit_.code
    assert code not in (0, None)
