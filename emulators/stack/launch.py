"""The whole local stack on given ports: emulators, Stripe double, maildev, set-up
steps, functions, storefront, started in that order.

Start order: emulators + Stripe double + maildev -> set-up steps
(emulators/setup_steps.py, which may add environment variables) -> functions (every
function of functions/main.py that has a port) -> storefront. `make dev` (cli.py) and
the end-to-end tests (on free ports) both use `LocalStack`.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from emulators.local_secrets import read_env_file
from emulators.stack.environment import function_environment, merged_environment
from emulators.stack.functions import function_names
from emulators.stack.persistence import KeptData
from emulators.stack.ports import REPO_ROOT, Ports
from emulators.stack.processes import (
    RunningService,
    ServiceSpec,
    StackError,
    start_service,
    stop_services,
    wait_ready,
)
from emulators.stack.specs import (
    firestore_spec,
    function_spec,
    maildev_spec,
    storage_spec,
    storefront_spec,
    stripe_double_available,
    stripe_double_spec,
    tasks_spec,
)


@dataclass(frozen=True)
class StackInfo:
    """What set-up steps get: where things are and the environment the functions get."""

    root: Path
    project: str
    urls: Mapping[str, str]
    env: Mapping[str, str]
    mode: str  # "dev" or "test"


def run_setup_steps(info: StackInfo) -> dict[str, str]:
    from emulators.setup_steps import STEPS

    additions: dict[str, str] = {}
    for step in STEPS:
        step_info = StackInfo(
            info.root, info.project, info.urls, {**info.env, **additions}, info.mode
        )
        try:
            additions.update(step(step_info))
        except StackError:
            raise
        except Exception as exc:
            name = f"{step.__module__}.{getattr(step, '__qualname__', step)}"
            raise StackError(f"set-up step {name} failed: {exc!r}") from exc
    return additions


class LocalStack:
    """The whole stack on given ports. `start()` returns when everything answers; on
    failure or interruption it stops what it started and raises. Always `stop()`."""

    def __init__(
        self,
        ports: Ports,
        *,
        root: Path = REPO_ROOT,
        local_dir: Path | None = None,
        mode: str = "dev",
        dotenv: Path | None = None,
        env_overrides: Mapping[str, str] | None = None,
        on_change: Callable[[LocalStack], None] | None = None,
        stop_requested: threading.Event | None = None,
        keep_data: KeptData | None = None,
    ) -> None:
        self.ports = ports
        self.root = root
        self.local_dir = local_dir or root / ".local"
        self.log_dir = self.local_dir / "logs"
        self.mode = mode
        self.dotenv = dotenv
        self.services: list[RunningService] = []
        self.notes: list[str] = []
        self.env: dict[str, str] = {}
        self._env_overrides = dict(env_overrides or {})
        self._on_change = on_change
        self._stop_requested = stop_requested or threading.Event()
        self.keep_data = keep_data
        self.last_save: str | None = None  # what the last stop() saved, in words

    @property
    def urls(self) -> dict[str, str]:
        return {service.name: service.spec.url for service in self.services}

    def _changed(self) -> None:
        if self._on_change is not None:
            self._on_change(self)

    def _launch(self, specs: Sequence[ServiceSpec]) -> None:
        """Start `specs` together (recorded at once, so `make stop` finds them) and wait."""
        busy = [spec.name for spec in specs if spec.port_busy()]
        if busy:
            raise StackError(
                f"port already in use for: {', '.join(busy)}. Another program (or a stack "
                "started outside `make dev`) holds it; free it or change firebase.json / "
                "emulators/ports.json."
            )
        batch = []
        for spec in specs:
            batch.append(start_service(spec, self.log_dir))
            self.services.append(batch[-1])
        self._changed()
        wait_ready(batch, stop_requested=self._stop_requested)

    def start(self, *, functions: bool = True, storefront: bool = True) -> None:
        try:
            self._start(functions=functions, storefront=storefront)
        except BaseException:
            self.stop()
            raise

    def _start(self, *, functions: bool, storefront: bool) -> None:
        ports, root = self.ports, self.root
        self.env = merged_environment(ports, self.local_dir, dotenv=self.dotenv)
        self.env.update(self._env_overrides)
        keep = set(self._env_overrides) | set(read_env_file(self.dotenv) if self.dotenv else {})
        project = self.env["GCP_PROJECT"]

        kept = self.keep_data
        if kept is not None:
            kept.prepare_storage()
        first = [
            firestore_spec(
                ports.firestore, root, import_data=kept.firestore_import() if kept else None
            ),
            storage_spec(
                ports.storage,
                self.env["ARTIFACTS_BUCKET"],
                root,
                data_dir=kept.storage_dir if kept else None,
            ),
            tasks_spec(
                ports.tasks,
                project,
                location=self.env["TASKS_LOCATION"],
                queue=self.env["TASKS_QUEUE"],
                root=root,
            ),
            maildev_spec(ports.maildev_smtp, ports.maildev_web, root),
        ]
        if kept is not None:
            for spec in first[:2]:  # firestore, storage
                spec.note = "data kept"
        if stripe_double_available(root):
            webhook = self.env.get("STRIPE_WEBHOOK_URL", "")
            first.append(stripe_double_spec(ports.stripe_double, self.env, webhook, root))
        else:
            self.notes.append("stripe double: emulators/stripe_double/__main__.py missing; skipped")
        self._launch(first)

        # Set-up steps may add variables (e.g. STRIPE_PRICE_ID); the user's .env wins.
        info = StackInfo(root, project, self.urls, dict(self.env), self.mode)
        for key, value in run_setup_steps(info).items():
            if key not in keep:
                self.env[key] = value

        if functions:
            defined = function_names(root)
            names = [name for name in defined if name in ports.functions]
            unported = [name for name in defined if name not in ports.functions]
            unknown = [name for name in ports.functions if name not in defined]
            if unported:
                self.notes.append(
                    "no port in emulators/ports.json, not started: " + ", ".join(unported)
                )
            if unknown:
                self.notes.append(
                    "in emulators/ports.json but not a function of functions/main.py: "
                    + ", ".join(unknown)
                )
            if names:
                self._launch(
                    [
                        function_spec(
                            name, ports.functions[name], function_environment(name, self.env), root
                        )
                        for name in names
                    ]
                )

        if storefront:
            site = root / "build" / "site"
            if site.is_dir():
                self._launch([storefront_spec(ports.storefront, site, root)])
            else:
                self.notes.append("storefront: build/site/ missing (run `make site`); not served")

    def dead_services(self) -> list[RunningService]:
        return [service for service in self.services if service.process.poll() is not None]

    def stop(self) -> str | None:
        """Stop every service by its process group (all signalled at once, then reaped).

        With `keep_data`, Firestore is exported first and, if that worked, the storage
        emulator's files are saved once it has stopped. Returns a line saying what was
        saved (None when nothing is kept)."""
        saved = self._export_firestore() if self.keep_data is not None else None
        services, self.services = self.services, []
        stop_services(services)
        self._changed()
        if self.keep_data is None or saved is None:
            return None
        if isinstance(saved, Path):
            self.keep_data.save_storage()
            saved = f"Firestore data of {self.env.get('GCP_PROJECT', '')} saved in {saved}"
        self.last_save = saved  # also when a failed start stopped the stack
        return saved

    def _export_firestore(self) -> Path | str | None:
        """The export's folder; a line saying why nothing was saved; None if nothing ran."""
        assert self.keep_data is not None
        if not self.services:
            return None
        firestore = next((s for s in self.services if s.name == "firestore"), None)
        if firestore is None or firestore.process.poll() is not None:
            return "firestore is not running: its data was NOT saved (the last save is kept)"
        try:
            return self.keep_data.export_firestore(
                self.ports.firestore, self.env.get("GCP_PROJECT", "")
            )
        except OSError as exc:
            return f"saving Firestore data failed: {exc} (the last save is kept)"
