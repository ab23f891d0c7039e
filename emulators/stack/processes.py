"""Process groups and readiness: start a server in its own process group, tell when it
answers, notice when it dies, stop it by its group.

Rules: every child runs in its own process group (its PID is the group id), recorded by
PID, and is stopped by signalling that group, then waited for. Nothing is ever stopped
by name. A PID is told from its reuse by the process's start time (/proc). Standard
library only: `make stop` and `make status` run under the system python3.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from emulators.stack.ports import HOST, REPO_ROOT, port_is_listening


class StackError(RuntimeError):
    """Something a person must fix (missing tool, busy port, crashed service)."""


class StackInterrupted(Exception):
    """Ctrl-C / SIGTERM / `make stop` arrived while starting."""


Probe = Callable[[], bool]


def http_probe(url: str, *, body: str | None = None, timeout: float = 0.5) -> Probe:
    """Ready when `url` answers 2xx (and, if given, the body starts with `body`)."""

    def probe() -> bool:
        try:
            with urllib.request.urlopen(url, timeout=timeout) as response:
                if body is None:
                    return True
                text: str = response.read(256).decode("utf-8", "replace")
                return text.strip().startswith(body)
        except (OSError, urllib.error.URLError, ValueError):
            return False

    return probe


def tcp_probe(port: int, host: str = HOST) -> Probe:
    return lambda: port_is_listening(port, host)


# --------------------------------------------------------------- process control


@dataclass
class ServiceSpec:
    """How to start one server and how to tell it is ready."""

    name: str
    argv: list[str]
    url: str
    probe: Probe
    env: Mapping[str, str] | None = None  # complete environment; None = inherit
    cwd: Path = REPO_ROOT
    timeout: float = 60.0
    note: str = ""
    ports: tuple[int, ...] = ()  # where it listens on HOST (busy before start? answering?)

    def port_busy(self) -> bool:
        return any(port_is_listening(port) for port in self.ports)

    def answering(self) -> bool:
        """Every port accepts a connection (cheap; not the readiness probe)."""
        return all(port_is_listening(port) for port in self.ports)


@dataclass
class RunningService:
    spec: ServiceSpec
    process: subprocess.Popen[bytes]
    start_ticks: int | None
    log_path: Path | None
    _log: IO[bytes] | None = field(default=None, repr=False)

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def pid(self) -> int:
        return self.process.pid

    def record(self) -> dict[str, Any]:
        """What the state file says about it (`exit_code` once it has exited)."""
        record: dict[str, Any] = {
            "name": self.name,
            "pid": self.pid,
            "pgid": self.pid,
            "start_ticks": self.start_ticks,
            "url": self.spec.url,
            "ports": list(self.spec.ports),
            "log": str(self.log_path) if self.log_path is not None else None,
        }
        code = self.process.poll()
        if code is not None:
            record["exit_code"] = code
        return record


def process_start_ticks(pid: int) -> int | None:
    """Start time of `pid` (Linux clock ticks since boot): tells a PID from its reuse."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat.rsplit(")", 1)[1].split()
    return int(fields[19])  # field 22 of stat; fields[0] is field 3


def _proc_state(pid: int) -> str | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat.rsplit(")", 1)[1].split()[0]


def is_alive(pid: int, start_ticks: int | None = None) -> bool:
    """True if `pid` runs (not a zombie) and, when known, is the process we started."""
    if Path("/proc/self/stat").exists():
        state = _proc_state(pid)
        if state is None or state in {"Z", "X"}:
            return False
        return start_ticks is None or process_start_ticks(pid) == start_ticks
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def group_members(pgid: int) -> list[int]:
    """Live (non-zombie) processes of process group `pgid`."""
    proc = Path("/proc")
    if not (proc / "self" / "stat").exists():
        try:
            os.killpg(pgid, 0)
        except (ProcessLookupError, PermissionError):
            return []
        return [pgid]
    members = []
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == pgid and fields[0] not in {"Z", "X"}:
            members.append(int(entry.name))
    return members


def _signal_group(pgid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


def stop_groups(pgids: Iterable[int], *, grace: float = 10.0) -> None:
    """SIGTERM every group at once, wait, SIGKILL what is left, wait again."""
    pending = [pgid for pgid in pgids if group_members(pgid)]
    for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 5.0)):
        for pgid in pending:
            _signal_group(pgid, sig)
        deadline = time.monotonic() + wait
        while pending and time.monotonic() < deadline:
            time.sleep(0.05)
            pending = [pgid for pgid in pending if group_members(pgid)]
        if not pending:
            return


def stop_group(pgid: int, *, grace: float = 10.0) -> None:
    stop_groups([pgid], grace=grace)


def _death_signal_prefix() -> list[str]:
    """`setpriv --pdeathsig TERM` (util-linux, Linux): the child is told to stop if the
    launcher dies without cleaning up (e.g. SIGKILL). setpriv execs in place, so the
    PID we record is the server's."""
    setpriv = shutil.which("setpriv")
    if setpriv and sys.platform.startswith("linux"):
        return [setpriv, "--pdeathsig", "TERM", "--"]
    return []


_DEATH_PREFIX = _death_signal_prefix()


def start_service(spec: ServiceSpec, log_dir: Path | None = None) -> RunningService:
    """Start `spec` in its own process group (its PID is the group id). Not yet ready."""
    log: IO[bytes] | None = None
    log_path = None
    if log_dir is not None:
        log_dir.mkdir(parents=True, exist_ok=True)
        log_path = log_dir / f"{spec.name}.log"
        log = log_path.open("wb")
    try:
        process = subprocess.Popen(
            [*_DEATH_PREFIX, *spec.argv],
            cwd=spec.cwd,
            env=dict(spec.env) if spec.env is not None else None,
            stdin=subprocess.DEVNULL,
            stdout=log if log is not None else subprocess.DEVNULL,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    except OSError as exc:
        if log is not None:
            log.close()
        raise StackError(f"{spec.name}: cannot start {spec.argv[0]}: {exc}") from exc
    return RunningService(spec, process, process_start_ticks(process.pid), log_path, log)


def stop_services(services: Sequence[RunningService], *, grace: float = 10.0) -> None:
    """Stop each service's whole process group (its PID) together, and reap them."""
    stop_groups([service.pid for service in services], grace=grace)
    for service in services:
        with contextlib.suppress(subprocess.TimeoutExpired):
            service.process.wait(timeout=5)
        if service.process.poll() is None:  # pragma: no cover - only if SIGKILL failed
            service.process.kill()
            service.process.wait()
        if service._log is not None:
            service._log.close()
            service._log = None


def stop_service(service: RunningService, *, grace: float = 10.0) -> None:
    stop_services([service], grace=grace)


def exit_words(code: int | None) -> str:
    """`exited with code 1`, `was killed by SIGKILL` (Popen's negative codes)."""
    if code is None:
        return "exited"
    if code < 0:
        try:
            return f"was killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"was killed by signal {-code}"
    return f"exited with code {code}"


def log_tail(service: RunningService, lines: int = 15) -> str:
    return file_tail(service.log_path, lines)


def file_tail(path: Path | None, lines: int = 15) -> str:
    """The last `lines` lines of a log, indented for printing under a message."""
    if path is None or not path.exists():
        return "(no log)"
    text = path.read_text(encoding="utf-8", errors="replace").splitlines()
    return "\n".join("    " + line for line in text[-lines:]) or "    (empty log)"


def wait_ready(
    services: Sequence[RunningService],
    *,
    stop_requested: threading.Event | None = None,
) -> None:
    """Poll every service until it answers; a child that exits or times out is an error."""
    pending = list(services)
    started = time.monotonic()
    while pending:
        if stop_requested is not None and stop_requested.is_set():
            raise StackInterrupted()
        for service in list(pending):
            code = service.process.poll()
            if code is not None:
                raise StackError(
                    f"{service.name} exited with code {code} while starting "
                    f"(log: {service.log_path}):\n{log_tail(service)}"
                )
            if service.spec.probe():
                pending.remove(service)
            elif time.monotonic() - started > service.spec.timeout:
                raise StackError(
                    f"{service.name} did not answer at {service.spec.url} within "
                    f"{service.spec.timeout:.0f} s (log: {service.log_path}):\n{log_tail(service)}"
                )
        if pending:
            time.sleep(0.05)


def start_and_wait(
    specs: Sequence[ServiceSpec],
    log_dir: Path | None = None,
    *,
    stop_requested: threading.Event | None = None,
) -> list[RunningService]:
    """Start all `specs` at once and wait for all; on any failure stop those started."""
    running: list[RunningService] = []
    try:
        for spec in specs:
            running.append(start_service(spec, log_dir))
        wait_ready(running, stop_requested=stop_requested)
    except BaseException:
        stop_services(running)
        raise
    return running
