"""The launcher of `make dev` watches its services, `make status` tells what is down, and
`make dev KEEP_DATA=dir` keeps Firestore and Storage data across restarts.

The launcher runs as `make dev` runs it (emulators.stack.cli.run_dev, in its own
process, stopped like `make stop` does), on free ports with a state folder of its own
and without the functions and the storefront, so it never meets a `make dev` running on
this machine. Services are killed by the PID the state file records, never by name.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from emulators import stack
from emulators.stack import cli, state

pytestmark = pytest.mark.emulators

DRIVER = """
import sys
from pathlib import Path
from emulators.stack.cli import run_dev
from emulators.stack.ports import free_ports

keep = Path(sys.argv[2]) if sys.argv[2] else None
sys.exit(run_dev(local_dir=Path(sys.argv[1]), ports=free_ports(), keep_data=keep,
                 mode="test", functions=False, storefront=False))
"""
PROJECT = stack.LOCAL_PROJECT


@dataclass
class Launcher:
    """A running `run_dev` and everything it printed so far."""

    process: subprocess.Popen[str]
    local_dir: Path
    out: list[str] = field(default_factory=list)
    err: list[str] = field(default_factory=list)

    def wait_for(self, what: str, stream: list[str], timeout: float = 180.0) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            text = "".join(stream)
            if what in text:
                return text
            if self.process.poll() is not None:
                break
            time.sleep(0.1)
        raise AssertionError(
            f"{what!r} not printed; stdout:\n{''.join(self.out)}\nstderr:\n{''.join(self.err)}"
        )

    def state(self) -> dict[str, Any]:
        data = state.read_state(self.local_dir)
        assert data is not None
        return data

    def service(self, name: str) -> dict[str, Any]:
        return next(svc for svc in self.state()["services"] if svc["name"] == name)


def _pump(stream: Any, into: list[str]) -> None:
    for line in stream:
        into.append(line)


@pytest.fixture
def start_launcher(tmp_path: Path) -> Iterator[Any]:
    started: list[Launcher] = []

    def start(local_dir: Path, keep: Path | None = None) -> Launcher:
        process = subprocess.Popen(
            [sys.executable, "-c", DRIVER, str(local_dir), str(keep or "")],
            cwd=stack.REPO_ROOT,
            env={**os.environ, "PYTHONPATH": str(stack.REPO_ROOT)},
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )
        launcher = Launcher(process, local_dir)
        for stream, into in ((process.stdout, launcher.out), (process.stderr, launcher.err)):
            threading.Thread(target=_pump, args=(stream, into), daemon=True).start()
        started.append(launcher)
        launcher.wait_for("ready in", launcher.out)
        return launcher

    yield start
    for launcher in started:  # whatever a failed test left: by PID, as `make stop` does
        if launcher.process.poll() is None:
            cli.run_stop(local_dir=launcher.local_dir)
            launcher.process.wait(timeout=60)
        for stream in (launcher.process.stdout, launcher.process.stderr):
            if stream is not None:
                stream.close()


def _status(local_dir: Path) -> subprocess.CompletedProcess[str]:
    """`make status` for this launcher's state folder, in a process of its own."""
    program = (
        "import sys; from pathlib import Path; from emulators.stack.cli import run_status; "
        f"sys.exit(run_status(local_dir=Path({str(local_dir)!r})))"
    )
    return subprocess.run(
        [sys.executable, "-c", program],
        cwd=stack.REPO_ROOT,
        env={**os.environ, "PYTHONPATH": str(stack.REPO_ROOT)},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def _status_line(output: str, name: str) -> str:
    return next(line for line in output.splitlines() if line.split()[:1] == [name])


def test_a_killed_service_is_reported_by_the_launcher_and_shown_down_by_status(
    tmp_path: Path, start_launcher: Any
) -> None:
    launcher = start_launcher(tmp_path / "local")
    before = _status(launcher.local_dir)
    assert before.returncode == 0, before.stdout
    assert _status_line(before.stdout, "firestore").endswith("up")
    firestore = launcher.service("firestore")

    os.kill(firestore["pid"], signal.SIGKILL)

    printed = launcher.wait_for("warning: firestore", launcher.err)
    report = printed[printed.index("warning: firestore") :]
    assert f"(pid {firestore['pid']}) was killed by SIGKILL" in report
    assert str(launcher.local_dir / "logs" / "firestore.log") in report
    assert "Dev App Server is now running" in report  # the log's last lines
    deadline = time.monotonic() + 30
    while "exit_code" not in launcher.service("firestore") and time.monotonic() < deadline:
        time.sleep(0.1)
    after = _status(launcher.local_dir)
    assert after.returncode == 1
    assert _status_line(after.stdout, "firestore").endswith("DOWN (was killed by SIGKILL)")
    assert _status_line(after.stdout, "storage").endswith("up")
    assert launcher.process.poll() is None  # the others keep running

    assert cli.run_stop(local_dir=launcher.local_dir) == 0
    assert launcher.process.wait(timeout=60) == 0


def _firestore_url(launcher: Launcher, path: str) -> str:
    host = launcher.state()["env"]["FIRESTORE_EMULATOR_HOST"]
    return f"http://{host}/v1/projects/{PROJECT}/databases/(default)/documents/{path}"


def _sample_release_files(launcher: Launcher) -> list[str]:
    env = launcher.state()["env"]
    url = f"{env['STORAGE_EMULATOR_HOST']}/storage/v1/b/{env['ARTIFACTS_BUCKET']}/o"
    with urllib.request.urlopen(url, timeout=10) as answer:
        return sorted(item["name"] for item in json.load(answer).get("items", []))


def test_firestore_and_storage_data_survive_a_restart_with_keep_data(
    tmp_path: Path, start_launcher: Any
) -> None:
    keep = tmp_path / "kept"
    first = start_launcher(tmp_path / "local", keep)
    document = json.dumps({"fields": {"answer": {"integerValue": "42"}}}).encode()
    request = urllib.request.Request(
        _firestore_url(first, "probes/kept"), data=document, method="PATCH"
    )
    request.add_header("Content-Type", "application/json")
    urllib.request.urlopen(request, timeout=10).close()
    files = _sample_release_files(first)
    assert files  # the set-up step published the sample release

    assert cli.run_stop(local_dir=first.local_dir) == 0
    assert first.process.wait(timeout=60) == 0
    assert f"Firestore data of {PROJECT} saved in {keep / 'firestore'}" in "".join(first.out)

    second = start_launcher(tmp_path / "local", keep)
    assert "keeping data in" in "".join(second.out)
    with urllib.request.urlopen(_firestore_url(second, "probes/kept"), timeout=10) as answer:
        assert json.load(answer)["fields"] == {"answer": {"integerValue": "42"}}
    assert _sample_release_files(second) == files
    assert cli.run_stop(local_dir=second.local_dir) == 0
    assert second.process.wait(timeout=60) == 0
    assert len(stack.KeptData(keep).exports()) == 1  # the older save was replaced


def test_a_killed_launcher_saves_nothing_and_the_next_start_is_consistent(
    tmp_path: Path, start_launcher: Any
) -> None:
    """Killed, the launcher exports nothing; Storage (whose files the sample release
    put there) must then not be ahead of Firestore (whose release document was not
    saved), or the next start's set-up step would find the files without the document."""
    keep, local = tmp_path / "kept", tmp_path / "local"
    first = start_launcher(local, keep)
    _put(first, "probes/unsaved")
    leftover = first.state()

    os.kill(first.process.pid, signal.SIGKILL)  # no export; children told by pdeathsig
    first.process.wait(timeout=30)
    deadline = time.monotonic() + 60
    while state.leftover_groups(leftover) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert state.leftover_groups(leftover) == []

    second = start_launcher(local, keep)
    assert _get(second, "probes/unsaved") == 404
    _put(second, "probes/saved")
    assert cli.run_stop(local_dir=local) == 0
    assert second.process.wait(timeout=60) == 0

    third = start_launcher(local, keep)
    assert _get(third, "probes/saved") == 200
    assert cli.run_stop(local_dir=local) == 0
    assert third.process.wait(timeout=60) == 0


def _put(launcher: Launcher, path: str) -> None:
    document = json.dumps({"fields": {"answer": {"integerValue": "42"}}}).encode()
    request = urllib.request.Request(_firestore_url(launcher, path), data=document, method="PATCH")
    request.add_header("Content-Type", "application/json")
    urllib.request.urlopen(request, timeout=10).close()


def _get(launcher: Launcher, path: str) -> int:
    try:
        with urllib.request.urlopen(_firestore_url(launcher, path), timeout=10) as answer:
            return int(answer.status)
    except urllib.error.HTTPError as error:
        return error.code
