"""The running stack's state: `.local/stack.json` (who runs, by PID) and the launcher lock.

The launcher writes the state file whenever its services change: its own PID and
start time, and per service the PID (= process group), start time, URL, ports, log
file and, once it has died, its exit code. `make stop` and `make status` read it, from
any terminal; it never holds a secret. `.local/stack.lock` admits one launcher. Standard
library only: `make stop` and `make status` run under the system python3.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from emulators.stack.ports import port_is_listening
from emulators.stack.processes import exit_words, group_members, is_alive

STATE_FILE = "stack.json"
LOCK_FILE = "stack.lock"


def write_state(path: Path, data: Mapping[str, Any]) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
    tmp.replace(path)


def read_state(local_dir: Path) -> dict[str, Any] | None:
    path = local_dir / STATE_FILE
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def launcher_alive(state: Mapping[str, Any]) -> bool:
    launcher = state.get("launcher") or {}
    pid = launcher.get("pid")
    return isinstance(pid, int) and is_alive(pid, launcher.get("start_ticks"))


def leftover_groups(state: Mapping[str, Any]) -> list[dict[str, Any]]:
    return [svc for svc in state.get("services", []) if group_members(int(svc["pgid"]))]


@contextlib.contextmanager
def launcher_lock(local_dir: Path) -> Iterator[bool]:
    """Yields True for the one launcher holding `.local/stack.lock`, False for others.
    The kernel drops the lock when its holder dies, so a crash leaves no stale lock."""
    local_dir.mkdir(parents=True, exist_ok=True)
    with (local_dir / LOCK_FILE).open("a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        try:
            yield True
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def service_health(record: Mapping[str, Any]) -> tuple[bool, str]:
    """(up?, words) for one service of the state file: its process (by PID and start
    time) and its ports, as `make status` shows them."""
    pid = int(record["pid"])
    if "exit_code" in record or not is_alive(pid, record.get("start_ticks")):
        return False, f"DOWN ({exit_words(record.get('exit_code'))})"
    closed = [port for port in record.get("ports", []) if not port_is_listening(int(port))]
    if closed:
        return False, "DOWN (process runs, not answering on port " + ", ".join(
            str(port) for port in closed
        ) + ")"
    return True, "up"
