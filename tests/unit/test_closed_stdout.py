"""`make status | head` and friends: a reader that goes away ends the output quietly and
the program reaches its own end (so `make dev | head` still stops what it started)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def run_into_closed_pipe(*args: str) -> subprocess.CompletedProcess[str]:
    read_end, write_end = os.pipe()
    os.close(read_end)  # the reader (`head`) has already exited
    try:
        return subprocess.run(
            [sys.executable, *args],
            cwd=ROOT,
            stdout=write_end,
            stderr=subprocess.PIPE,
            text=True,
            timeout=60,
            check=False,
        )
    finally:
        os.close(write_end)


def test_a_guarded_program_drops_its_output_and_runs_to_its_own_end() -> None:
    program = (
        "import sys\n"
        "from emulators.closed_stdout import guard_stdout\n"
        "guard_stdout()\n"
        "for i in range(10000):\n"
        "    print(i)\n"
        "print('done', file=sys.stderr)\n"
        "sys.exit(7)\n"
    )

    result = run_into_closed_pipe("-c", program)

    assert result.stderr == "done\n"  # no traceback, no 'Exception ignored'
    assert result.returncode == 7


def test_make_status_into_a_closed_pipe_keeps_its_exit_code_and_prints_no_traceback() -> None:
    normal = subprocess.run(
        [sys.executable, "-m", "emulators.stack", "status"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    closed = run_into_closed_pipe("-m", "emulators.stack", "status")

    assert closed.stderr == normal.stderr
    assert "Traceback" not in closed.stderr
    assert closed.returncode == normal.returncode
