"""The local stack's command line: `make dev`, `make stop`, `make status`.

    python -m emulators.stack dev            # `make dev`: start all, wait, Ctrl-C stops all
    python -m emulators.stack dev --keep-data DIR
                                             # `make dev KEEP_DATA=DIR`: Firestore and
                                             # Storage data kept across restarts in DIR
    python -m emulators.stack stop           # `make stop`: stop a stack started elsewhere
    python -m emulators.stack status         # per service: process alive? port answering?
    python -m emulators.stack test-services  # Firestore/Storage/Tasks on free ports, for
                                             # running pytest repeatedly against them

While the stack runs, the launcher watches its services: when one exits it prints which,
its exit code and the last lines of `.local/logs/<service>.log`, records it in
`.local/stack.json` (so `make status` shows it DOWN) and keeps the others running.
Ports come from `firebase.json` and `emulators/ports.json`; tests pick free ports.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from emulators.stack.environment import printable_env
from emulators.stack.launch import LocalStack
from emulators.stack.persistence import KeptData
from emulators.stack.ports import HOST, REPO_ROOT, Ports, configured_ports, free_ports
from emulators.stack.processes import (
    RunningService,
    StackError,
    StackInterrupted,
    exit_words,
    file_tail,
    process_start_ticks,
    start_and_wait,
    stop_groups,
    stop_services,
)
from emulators.stack.specs import firestore_spec, storage_spec, tasks_spec
from emulators.stack.state import (
    STATE_FILE,
    launcher_alive,
    launcher_lock,
    leftover_groups,
    read_state,
    service_health,
    write_state,
)

LOG_LINES = 15  # of a dead service's log, printed by the launcher


def _interrupt_watcher(stop: threading.Event) -> None:
    """Turn SIGINT/SIGTERM/SIGHUP, and an interrupted or vanished parent, into `stop`.

    GNU make does not pass SIGINT on to the recipe (a terminal's Ctrl-C reaches us
    directly, through the process group; `kill -INT <make pid>` does not): make then
    waits for us. Its SIGINT handler resets itself to the default, which /proc shows,
    so a changed disposition of the enclosing make means "make was interrupted".
    """

    def handler(signum: int, _frame: object) -> None:
        stop.set()

    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, handler)

    parent = os.getppid()
    make_pid = _enclosing_make()
    watch_make = make_pid is not None and _catches_sigint(make_pid) is True

    def watch() -> None:
        while not stop.wait(0.2):
            orphaned = os.getppid() != parent
            make_interrupted = watch_make and _catches_sigint(make_pid or 0) is False
            if orphaned or make_interrupted:
                stop.set()

    threading.Thread(target=watch, name="parent-watch", daemon=True).start()


def _enclosing_make() -> int | None:
    pid = os.getppid()
    for _ in range(3):
        try:
            comm = Path(f"/proc/{pid}/comm").read_text().strip()
            stat = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            return None
        if comm in {"make", "gmake"}:
            return pid
        pid = int(stat.rsplit(")", 1)[1].split()[1])
        if pid <= 1:
            return None
    return None


def _catches_sigint(pid: int) -> bool | None:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    for line in status.splitlines():
        if line.startswith("SigCgt:"):
            return bool(int(line.split()[1], 16) & (1 << (signal.SIGINT - 1)))
    return None


def _print_table(stack: LocalStack) -> None:
    rows = [(s.name, s.spec.url, str(s.pid), s.spec.note) for s in stack.services]
    width = max(len(row[0]) for row in rows) if rows else 10
    url_width = max(len(row[1]) for row in rows) if rows else 10
    print(f"\n  {'service':<{width}}  {'url':<{url_width}}  {'pid':>7}")
    for name, url, pid, note in rows:
        suffix = f"  ({note})" if note else ""
        print(f"  {name:<{width}}  {url:<{url_width}}  {pid:>7}{suffix}")
    for note in stack.notes:
        print(f"  note: {note}")
    print(f"  logs: {stack.log_dir}/<service>.log   environment: {stack.local_dir / 'stack.env'}")


def report_death(service: RunningService, again: str = "`make dev`") -> str:
    """What the launcher prints when `service` has exited."""
    return (
        f"warning: {service.name} (pid {service.pid}) {exit_words(service.process.returncode)}; "
        "the other services keep running "
        f"(Ctrl-C, then {again}, restarts all). Last lines of {service.log_path}:\n"
        f"{file_tail(service.log_path, LOG_LINES)}"
    )


def run_dev(
    root: Path = REPO_ROOT,
    *,
    local_dir: Path | None = None,
    ports: Ports | None = None,
    keep_data: Path | None = None,
    mode: str = "dev",
    functions: bool = True,
    storefront: bool = True,
) -> int:
    """`make dev`. The keyword arguments let tests run the same launcher on free ports
    with a state folder of their own (and fewer services)."""
    started = time.monotonic()
    local_dir = local_dir or root / ".local"
    state_path = local_dir / STATE_FILE
    with launcher_lock(local_dir) as locked:
        state = read_state(local_dir)
        if not locked:
            pid = (state or {}).get("launcher", {}).get("pid", "?")
            print(
                f"The local stack is already running (launcher pid {pid}). "
                "Use it, or stop it with `make stop` (or Ctrl-C in its terminal).",
                file=sys.stderr,
            )
            return 3
        if state and leftover_groups(state):
            names = ", ".join(svc["name"] for svc in leftover_groups(state))
            print(
                f"Processes of a previous stack are still running ({names}); "
                "run `make stop` first.",
                file=sys.stderr,
            )
            return 3

        stop = threading.Event()
        _interrupt_watcher(stop)
        launcher = {"pid": os.getpid(), "start_ticks": process_start_ticks(os.getpid())}

        def save(stack: LocalStack) -> None:
            write_state(
                state_path,
                {
                    "launcher": launcher,
                    "services": [service.record() for service in stack.services],
                    "env": printable_env(stack.env),
                },
            )

        kept = KeptData(keep_data.resolve()) if keep_data is not None else None
        stack = LocalStack(
            ports or configured_ports(root),
            root=root,
            local_dir=local_dir,
            mode=mode,
            dotenv=root / ".env",
            on_change=save,
            stop_requested=stop,
            keep_data=kept,
        )
        code = 0
        try:
            print("starting the local stack ...", flush=True)
            if kept is not None:
                source = kept.firestore_import()
                print(
                    f"keeping data in {kept.directory}: "
                    + (f"Firestore from {source.parent.name}" if source else "nothing saved yet"),
                    flush=True,
                )
            stack.start(functions=functions, storefront=storefront)
            env_file = local_dir / "stack.env"
            env_file.write_text(
                "".join(f"{k}={v}\n" for k, v in printable_env(stack.env).items()),
                encoding="utf-8",
            )
            _print_table(stack)
            print(
                f"\nready in {time.monotonic() - started:.1f} s. Ctrl-C (or `make stop`) stops it."
            )
            sys.stdout.flush()
            reported: set[int] = set()
            while not stop.wait(0.25):
                dead = [s for s in stack.dead_services() if s.pid not in reported]
                for service in dead:
                    reported.add(service.pid)
                    print(report_death(service), file=sys.stderr, flush=True)
                if dead:
                    save(stack)  # `make status` shows them DOWN, with their exit code
        except StackInterrupted:
            pass
        except StackError as exc:
            print(f"error: {exc}", file=sys.stderr)
            code = 1
        finally:
            count = len(stack.services)
            print(f"\nstopping {count} processes ...", flush=True)
            stack.stop()
            if stack.last_save:
                print(stack.last_save, flush=True)
            state_path.unlink(missing_ok=True)
            print("stopped.", flush=True)
        return code


def run_stop(
    root: Path = REPO_ROOT, *, local_dir: Path | None = None, timeout: float = 30.0
) -> int:
    local_dir = local_dir or root / ".local"
    state = read_state(local_dir)
    if state is None:
        print("no local stack is running.")
        return 0
    if launcher_alive(state):
        pid = int(state["launcher"]["pid"])
        print(f"asking the stack (launcher pid {pid}) to stop ...")
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while launcher_alive(state) and time.monotonic() < deadline:
            time.sleep(0.1)
    # Whatever the launcher left (it was killed, or timed out): stop by recorded group.
    leftovers = leftover_groups(state)
    for service in leftovers:
        print(f"stopping leftover {service['name']} (pid {service['pgid']}) ...")
    stop_groups([int(service["pgid"]) for service in leftovers])
    if launcher_alive(state):
        print("the launcher did not stop; its children are stopped.", file=sys.stderr)
        return 1
    (local_dir / STATE_FILE).unlink(missing_ok=True)
    print("stopped.")
    return 0


def run_status(root: Path = REPO_ROOT, *, local_dir: Path | None = None) -> int:
    """0 when the launcher and every service are up; 1 when anything is down."""
    state = read_state(local_dir or root / ".local")
    if state is None:
        print("no local stack is running.")
        return 1
    alive = launcher_alive(state)
    print(f"launcher pid {state['launcher']['pid']}: {'running' if alive else 'gone'}")
    all_up = alive
    for service in state.get("services", []):
        up, words = service_health(service)
        all_up = all_up and up
        print(f"  {service['name']:<16} {service['url']:<32} pid {service['pid']:>7}  {words}")
        if not up and service.get("log"):
            print(f"  {'':<16} log: {service['log']}")
    return 0 if all_up else 1


def run_test_services(root: Path = REPO_ROOT) -> int:
    """Firestore, Storage and Tasks on free ports until Ctrl-C; prints the exports."""
    stop = threading.Event()
    _interrupt_watcher(stop)
    ports = free_ports(())
    project = "demo-genx-test"
    specs = [
        firestore_spec(ports.firestore, root),
        storage_spec(ports.storage, "genx-artifacts-test", root),
        tasks_spec(ports.tasks, project, root=root),
    ]
    services: list[RunningService] = []
    try:
        services = start_and_wait(specs, root / ".local" / "logs-test", stop_requested=stop)
        print(f"export FIRESTORE_EMULATOR_HOST={HOST}:{ports.firestore}")
        print(f"export STORAGE_EMULATOR_HOST=http://{HOST}:{ports.storage}")
        print(f"export TASKS_EMULATOR_HOST={HOST}:{ports.tasks}")
        print("# paste the lines above into another shell, then run pytest; Ctrl-C here stops.")
        sys.stdout.flush()
        reported: set[int] = set()
        while not stop.wait(0.25):
            for service in services:
                if service.process.poll() is not None and service.pid not in reported:
                    reported.add(service.pid)
                    again = "`python -m emulators.stack test-services`"
                    print(report_death(service, again), file=sys.stderr, flush=True)
    except StackInterrupted:
        pass
    except StackError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    finally:
        stop_services(services)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    from emulators.closed_stdout import guard_stdout

    guard_stdout()  # `make status | head`: no traceback; `make dev | head` still stops
    parser = argparse.ArgumentParser(
        prog="python -m emulators.stack",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("command", choices=["dev", "stop", "status", "test-services"])
    parser.add_argument(
        "--keep-data",
        type=Path,
        metavar="DIR",
        help="dev only: keep Firestore and Storage data in DIR across restarts",
    )
    args = parser.parse_args(argv)
    if args.keep_data is not None and args.command != "dev":
        parser.error("--keep-data goes with `dev` only")
    commands: dict[str, Callable[[], int]] = {
        "dev": lambda: run_dev(keep_data=args.keep_data),
        "stop": run_stop,
        "status": run_status,
        "test-services": run_test_services,
    }
    try:
        return commands[args.command]()
    except StackError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
