"""The local stack: every emulator, the Stripe double, the functions and the storefront.

Importable (tests start single services through `start_service`/`stop_service`, or a
whole `LocalStack` on free ports) and a CLI:

    python -m emulators.stack dev            # `make dev`: start all, wait, Ctrl-C stops all
    python -m emulators.stack stop           # `make stop`: stop a stack started elsewhere
    python -m emulators.stack status         # what is running, and does it answer
    python -m emulators.stack test-services  # Firestore/Storage/Tasks on free ports, for
                                             # running pytest repeatedly against them

Rules kept here: every server binds 127.0.0.1 (the Cloud Tasks emulator cannot: it has
no host option); every child runs in its own process group, recorded by PID in
`.local/stack.json`, and is stopped by signalling that group, then waited for. Nothing
is ever stopped by name. Ports come from `firebase.json` (firestore, storage, hosting)
and `emulators/ports.json` (the rest); tests pick free ports instead.

Start order: emulators + Stripe double + maildev -> set-up steps (emulators/setup_steps.py,
which may add environment variables) -> functions -> storefront.
"""

from __future__ import annotations

import argparse
import ast
import contextlib
import fcntl
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from emulators.local_secrets import ensure_local_secrets, read_env_file

REPO_ROOT = Path(__file__).resolve().parent.parent
HOST = "127.0.0.1"
LOCAL_PROJECT = "demo-genx"
LOCAL_BUCKET = "genx-artifacts-local"
TASKS_LOCATION = "europe-west1"
TASKS_QUEUE = "email"
# The tasks emulator retries a failing task about every 0.1 s, without backoff; a small
# bound keeps a broken worker from spinning forever.
TASKS_MAX_RETRIES = 5

PORTS_FILE = Path("emulators") / "ports.json"
# Secrets never written to the state file or printed.
SECRET_NAMES = frozenset(
    {
        "STRIPE_SECRET_KEY",
        "STRIPE_WEBHOOK_SECRET",
        "LICENSE_KEY_PEPPER",
        "KEY_DERIVATION_SECRET",
        "KEY_DERIVATION_SECRETS_PREVIOUS",
        "SIGNING_PRIVATE_KEY",
        "SENDGRID_API_KEY",
    }
)

FIRESTORE_JAR_ENV = "FIRESTORE_EMULATOR_JAR"
_SDK_JAR = Path("platform/cloud-firestore-emulator/cloud-firestore-emulator.jar")
_DEBIAN_SDK = Path("/usr/lib/google-cloud-sdk")
_FIRESTORE_MAIN = "com.google.cloud.datastore.emulator.firestore.CloudFirestore"


class StackError(RuntimeError):
    """Something a person must fix (missing tool, busy port, crashed service)."""


class StackInterrupted(Exception):
    """Ctrl-C / SIGTERM / `make stop` arrived while starting."""


# --------------------------------------------------------------------------- ports


@dataclass(frozen=True)
class Ports:
    firestore: int
    storage: int
    storefront: int
    tasks: int
    stripe_double: int
    maildev_smtp: int
    maildev_web: int
    functions: Mapping[str, int]


def _read_json(path: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return data


def configured_ports(root: Path = REPO_ROOT) -> Ports:
    """The fixed ports of `make dev`: firebase.json first, emulators/ports.json for the rest."""
    emulators = _read_json(root / "firebase.json")["emulators"]
    extra = _read_json(root / PORTS_FILE)
    services = extra["services"]
    return Ports(
        firestore=int(emulators["firestore"]["port"]),
        storage=int(emulators["storage"]["port"]),
        storefront=int(emulators["hosting"]["port"]),
        tasks=int(services["tasks"]),
        stripe_double=int(services["stripe_double"]),
        maildev_smtp=int(services["maildev_smtp"]),
        maildev_web=int(services["maildev_web"]),
        functions={str(name): int(port) for name, port in extra["functions"].items()},
    )


def free_port() -> int:
    """A port nobody listens on right now (the OS picks; tiny race accepted in tests)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        port: int = sock.getsockname()[1]
        return port


def function_names(root: Path = REPO_ROOT) -> list[str]:
    """Every Cloud Function the project deploys, in start order (emulators/ports.json)."""
    return list(configured_ports(root).functions)


def free_ports(names: Iterable[str] | None = None) -> Ports:
    """Like `configured_ports`, but every port picked free (tests)."""
    names = function_names() if names is None else names
    return Ports(
        firestore=free_port(),
        storage=free_port(),
        storefront=free_port(),
        tasks=free_port(),
        stripe_double=free_port(),
        maildev_smtp=free_port(),
        maildev_web=free_port(),
        functions={name: free_port() for name in names},
    )


def port_is_listening(port: int, host: str = HOST) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.2)
        return sock.connect_ex((host, port)) == 0


# ------------------------------------------------------------------ probes (ready?)

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
        return {
            "name": self.name,
            "pid": self.pid,
            "pgid": self.pid,
            "start_ticks": self.start_ticks,
            "url": self.spec.url,
        }


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


def log_tail(service: RunningService, lines: int = 15) -> str:
    if service.log_path is None or not service.log_path.exists():
        return "(no log)"
    text = service.log_path.read_text(encoding="utf-8", errors="replace").splitlines()
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


# ------------------------------------------------------------------ Firestore jar


def find_firestore_jar() -> Path:
    """Google's Firestore emulator jar, from wherever this machine has it."""
    candidates: list[Path] = []
    override = os.environ.get(FIRESTORE_JAR_ENV)
    if override:
        candidates.append(Path(override))
    candidates.append(_DEBIAN_SDK / _SDK_JAR)
    for jar in candidates:
        if jar.is_file():
            return jar
    gcloud = shutil.which("gcloud")
    if gcloud:
        with contextlib.suppress(OSError, subprocess.SubprocessError):
            root = subprocess.run(
                [gcloud, "info", "--format=value(installation.sdk_root)"],
                capture_output=True,
                text=True,
                timeout=30,
                check=False,
            ).stdout.strip()
            if root and (Path(root) / _SDK_JAR).is_file():
                return Path(root) / _SDK_JAR
    cache = Path.home() / ".cache" / "firebase" / "emulators"
    jars = sorted(cache.glob("cloud-firestore-emulator-v*.jar"), key=_version_key)
    if jars:
        return jars[-1]
    raise StackError(
        "Google's Firestore emulator was not found. Install one of:\n"
        "  - the gcloud CLI, then `gcloud components install cloud-firestore-emulator`\n"
        "    (Debian/Ubuntu: `apt-get install google-cloud-cli-firestore-emulator`)\n"
        "  - firebase-tools, then `npx firebase-tools setup:emulators:firestore`\n"
        f"or point {FIRESTORE_JAR_ENV} at cloud-firestore-emulator.jar. Java 17+ is needed."
    )


def _version_key(path: Path) -> tuple[int, ...]:
    version = path.stem.rsplit("-v", 1)[-1]
    return tuple(int(part) if part.isdigit() else 0 for part in version.split("."))


def _java() -> str:
    java = shutil.which("java")
    if java is None:
        raise StackError("java was not found: the Firestore emulator needs Java 17 or newer")
    return java


# ------------------------------------------------------------------ service specs


def _venv_tool(root: Path, venv: str, tool: str, hint: str) -> str:
    path = root / venv / "bin" / tool
    if not path.exists():
        raise StackError(f"{path} is missing: run `{hint}` first")
    return str(path)


def firestore_spec(port: int, root: Path = REPO_ROOT) -> ServiceSpec:
    url = f"http://{HOST}:{port}"
    return ServiceSpec(
        name="firestore",
        argv=[
            _java(),
            "-Duser.language=en",
            # Start-up time matters more than peak speed for a local emulator: the C1
            # compiler only and one GC thread halve the time to "Ok" on small machines.
            "-XX:TieredStopAtLevel=1",
            "-XX:+UseSerialGC",
            "-cp",
            str(find_firestore_jar()),
            _FIRESTORE_MAIN,
            "--host",
            HOST,
            "--port",
            str(port),
        ],
        url=url,
        probe=http_probe(url + "/", body="Ok"),
        cwd=root,
    )


def storage_spec(port: int, bucket: str, root: Path = REPO_ROOT) -> ServiceSpec:
    url = f"http://{HOST}:{port}"
    tool = _venv_tool(root, ".venv", "gcp-storage-emulator", "make venv")
    return ServiceSpec(
        name="storage",
        argv=[
            *(tool, "start", "--host", HOST, "--port", str(port)),
            *("--in-memory", "--default-bucket", bucket),
        ],
        url=url,
        probe=http_probe(f"{url}/storage/v1/b"),
        cwd=root,
    )


def tasks_queue_path(project: str, location: str = TASKS_LOCATION, queue: str = TASKS_QUEUE) -> str:
    return f"projects/{project}/locations/{location}/queues/{queue}"


def tasks_spec(
    port: int,
    project: str,
    *,
    location: str = TASKS_LOCATION,
    queue: str = TASKS_QUEUE,
    max_retries: int = TASKS_MAX_RETRIES,
    root: Path = REPO_ROOT,
) -> ServiceSpec:
    _venv_tool(root, ".venv-tasks", "gcloud-tasks-emulator", "make venv")  # installed?
    python = str(root / ".venv-tasks" / "bin" / "python")
    launcher = str(root / "emulators" / "tasks_loopback.py")  # binds 127.0.0.1 only
    queue_path = tasks_queue_path(project, location, queue)
    return ServiceSpec(
        name="tasks",
        argv=[python, launcher, "start", "-p", str(port), "-r", str(max_retries), "-d", queue_path],
        url=f"{HOST}:{port} (gRPC)",
        probe=tcp_probe(port),
        env={**os.environ, "PYTHONWARNINGS": "ignore::FutureWarning"},
        cwd=root,
    )


def maildev_spec(smtp_port: int, web_port: int, root: Path = REPO_ROOT) -> ServiceSpec:
    tool = root / "node_modules" / ".bin" / "maildev"
    if not tool.exists():
        raise StackError(f"{tool} is missing: run `make venv` (npm ci) first")
    url = f"http://{HOST}:{web_port}"
    return ServiceSpec(
        name="maildev",
        argv=[str(tool), "--ip", HOST, "--web-ip", HOST, "-s", str(smtp_port), "-w", str(web_port)],
        url=url,
        probe=lambda: http_probe(url + "/email")() and port_is_listening(smtp_port),
        cwd=root,
        note=f"SMTP {HOST}:{smtp_port}",
    )


def stripe_double_available(root: Path = REPO_ROOT) -> bool:
    return (root / "emulators" / "stripe_double" / "__main__.py").is_file()


def stripe_double_spec(
    port: int, env: Mapping[str, str], webhook_url: str, root: Path = REPO_ROOT
) -> ServiceSpec:
    url = f"http://{HOST}:{port}"
    return ServiceSpec(
        name="stripe_double",
        argv=[
            sys.executable,
            "-m",
            "emulators.stripe_double",
            "--port",
            str(port),
            "--webhook-url",
            webhook_url,
            # The signing secret travels in the environment (STRIPE_WEBHOOK_SECRET), not
            # on the command line where `ps` would show it.
            "--public-url",
            url,
        ],
        url=url,
        probe=http_probe(url + "/_double/health"),
        env=env,
        cwd=root,
    )


def defined_functions(candidates: Iterable[str], root: Path = REPO_ROOT) -> list[str]:
    """The `candidates` that functions/main.py defines at top level (it is parsed, not
    imported: the file changes while people work and may not import yet)."""
    main = root / "functions" / "main.py"
    if not main.is_file():
        return []
    tree = ast.parse(main.read_text(encoding="utf-8"), filename=str(main))
    defined = {
        node.name for node in tree.body if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
    }
    return [name for name in candidates if name in defined]


def function_spec(
    name: str, port: int, env: Mapping[str, str], root: Path = REPO_ROOT
) -> ServiceSpec:
    python = _venv_tool(root, ".venv", "python", "make venv")
    return ServiceSpec(
        name=name,
        argv=[
            # functions-framework with gunicorn's shared control socket off (see the module)
            *(python, "-m", "emulators.function_server"),
            *("--source", "functions/main.py", "--target", name),
            *("--host", HOST, "--port", str(port)),
        ],
        url=f"http://{HOST}:{port}",
        # Any path runs the function, so a GET could act: readiness is "port open"
        # (functions-framework imports main.py before it binds).
        probe=tcp_probe(port),
        env=env,
        cwd=root,
    )


def storefront_spec(port: int, directory: Path, root: Path = REPO_ROOT) -> ServiceSpec:
    url = f"http://{HOST}:{port}"
    return ServiceSpec(
        name="storefront",
        argv=[
            *(sys.executable, "-m", "http.server", str(port)),
            *("--bind", HOST, "--directory", str(directory)),
        ],
        url=url + "/",
        probe=http_probe(url + "/"),
        cwd=root,
    )


# -------------------------------------------------------------------- environment


def function_url(ports: Ports, name: str) -> str:
    return f"http://{HOST}:{ports.functions[name]}"


def local_defaults(ports: Ports, local_dir: Path, project: str = LOCAL_PROJECT) -> dict[str, str]:
    """Computed settings for functions and the double (lowest priority)."""
    storefront = f"http://{HOST}:{ports.storefront}"
    env = {
        "ENVIRONMENT": "local",
        "GCP_PROJECT": project,
        "GOOGLE_CLOUD_PROJECT": project,
        "SECRETS_BACKEND": "env",
        "STOREFRONT_URL": storefront,
        "STOREFRONT_ORIGINS": f"{storefront},http://localhost:{ports.storefront}",
        # Links are `{PUBLIC_BASE_URL}/d/<token>`, served by the download function; locally
        # that is the download function's own URL (functions-framework serves any path).
        "PUBLIC_BASE_URL": function_url(ports, "download"),
        "ARTIFACTS_BUCKET": LOCAL_BUCKET,
        "FIRESTORE_EMULATOR_HOST": f"{HOST}:{ports.firestore}",
        "STORAGE_EMULATOR_HOST": f"http://{HOST}:{ports.storage}",
        "TASKS_EMULATOR_HOST": f"{HOST}:{ports.tasks}",
        "TASKS_LOCATION": TASKS_LOCATION,
        "TASKS_QUEUE": TASKS_QUEUE,
        "EMAIL_WORKER_URL": function_url(ports, "send_email"),
        "MAIL_BACKEND": "smtp",
        "SMTP_HOST": HOST,
        "SMTP_PORT": str(ports.maildev_smtp),
        "MAILDEV_URL": f"http://{HOST}:{ports.maildev_web}",
        "STRIPE_API_BASE": f"http://{HOST}:{ports.stripe_double}",
        "STRIPE_PRICE_ID": "",  # filled in by a set-up step (emulators/setup_steps.py)
        "URL_SIGNING_KEY_FILE": str(local_dir / "url-signer.json"),
        "PYTHONUNBUFFERED": "1",
    }
    for name in ports.functions:
        env[f"{name.upper()}_URL"] = function_url(ports, name)
    if "resend_links" in ports.functions:
        env["RESEND_URL"] = function_url(ports, "resend_links")  # Settings.resend_url
    return env


def merged_environment(
    ports: Ports,
    local_dir: Path,
    *,
    dotenv: Path | None,
    base: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """process env < computed defaults < .local/secrets.env < the user's .env (if any)."""
    ensure_local_secrets(local_dir)
    env = dict(os.environ if base is None else base)
    env.update(local_defaults(ports, local_dir))
    env.update(read_env_file(local_dir / "secrets.env"))
    if dotenv is not None:
        env.update(read_env_file(dotenv))
    return env


def public_env(env: Mapping[str, str], keys: Iterable[str]) -> dict[str, str]:
    """The named variables, without secrets (safe for the state file and printing)."""
    return {key: env[key] for key in keys if key in env and key not in SECRET_NAMES}


# -------------------------------------------------------------------- the stack


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

    @property
    def urls(self) -> dict[str, str]:
        return {service.name: service.spec.url for service in self.services}

    def _changed(self) -> None:
        if self._on_change is not None:
            self._on_change(self)

    def _launch(self, specs: Sequence[ServiceSpec]) -> None:
        """Start `specs` together (recorded at once, so `make stop` finds them) and wait."""
        busy = [spec.name for spec in specs if spec_port_busy(spec)]
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

        first = [
            firestore_spec(ports.firestore, root),
            storage_spec(ports.storage, self.env["ARTIFACTS_BUCKET"], root),
            tasks_spec(
                ports.tasks,
                project,
                location=self.env["TASKS_LOCATION"],
                queue=self.env["TASKS_QUEUE"],
                root=root,
            ),
            maildev_spec(ports.maildev_smtp, ports.maildev_web, root),
        ]
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
            names = defined_functions(ports.functions, root)
            missing = [name for name in ports.functions if name not in names]
            if missing:
                self.notes.append("not in functions/main.py yet: " + ", ".join(missing))
            if names:
                self._launch(
                    [function_spec(name, ports.functions[name], self.env, root) for name in names]
                )

        if storefront:
            site = root / "build" / "site"
            if site.is_dir():
                self._launch([storefront_spec(ports.storefront, site, root)])
            else:
                self.notes.append("storefront: build/site/ missing (run `make site`); not served")

    def dead_services(self) -> list[RunningService]:
        return [service for service in self.services if service.process.poll() is not None]

    def stop(self) -> None:
        """Stop every service by its process group (all signalled at once, then reaped)."""
        services, self.services = self.services, []
        stop_services(services)
        self._changed()


def spec_port_busy(spec: ServiceSpec) -> bool:
    if "--port" in spec.argv:
        return port_is_listening(int(spec.argv[spec.argv.index("--port") + 1]))
    if spec.name == "tasks":
        return port_is_listening(int(spec.argv[spec.argv.index("-p") + 1]))
    if spec.name == "maildev":
        return port_is_listening(int(spec.argv[spec.argv.index("-w") + 1])) or port_is_listening(
            int(spec.argv[spec.argv.index("-s") + 1])
        )
    if spec.name == "storefront":
        return port_is_listening(int(spec.argv[spec.argv.index("http.server") + 1]))
    return False


# ------------------------------------------------------------ dev: state and lock

STATE_FILE = "stack.json"
LOCK_FILE = "stack.lock"
_PRINTED_ENV = (
    # What `commerce` (the operator CLI) needs besides the secrets to use this stack.
    "ENVIRONMENT",
    "SECRETS_BACKEND",
    "GCP_PROJECT",
    "FIRESTORE_EMULATOR_HOST",
    "STORAGE_EMULATOR_HOST",
    "TASKS_EMULATOR_HOST",
    "ARTIFACTS_BUCKET",
    "STOREFRONT_URL",
    "PUBLIC_BASE_URL",
    "STRIPE_API_BASE",
    "STRIPE_PRICE_ID",
    "SMTP_HOST",
    "SMTP_PORT",
    "MAILDEV_URL",
    "EMAIL_WORKER_URL",
    "TASKS_LOCATION",
    "TASKS_QUEUE",
    "MAIL_BACKEND",
    "URL_SIGNING_KEY_FILE",
)


def printable_env(env: Mapping[str, str]) -> dict[str, str]:
    """The stack's addresses (and every *_URL), never a secret."""
    keys = [*_PRINTED_ENV, *sorted(k for k in env if k.endswith("_URL") and k not in _PRINTED_ENV)]
    return public_env(env, keys)


def _write_state(path: Path, data: Mapping[str, Any]) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
    tmp.replace(path)


def read_state(local_dir: Path) -> dict[str, Any] | None:
    path = local_dir / STATE_FILE
    try:
        return _read_json(path)
    except (OSError, ValueError):
        return None


def _launcher_alive(state: Mapping[str, Any]) -> bool:
    launcher = state.get("launcher") or {}
    pid = launcher.get("pid")
    return isinstance(pid, int) and is_alive(pid, launcher.get("start_ticks"))


def _leftover_groups(state: Mapping[str, Any]) -> list[dict[str, Any]]:
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


def run_dev(root: Path = REPO_ROOT) -> int:
    started = time.monotonic()
    local_dir = root / ".local"
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
        if state and _leftover_groups(state):
            names = ", ".join(svc["name"] for svc in _leftover_groups(state))
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
            _write_state(
                state_path,
                {
                    "launcher": launcher,
                    "services": [service.record() for service in stack.services],
                    "env": printable_env(stack.env),
                },
            )

        stack = LocalStack(
            configured_ports(root),
            root=root,
            dotenv=root / ".env",
            on_change=save,
            stop_requested=stop,
        )
        code = 0
        try:
            print("starting the local stack ...", flush=True)
            stack.start()
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
            reported: set[str] = set()
            while not stop.wait(0.25):
                for service in stack.dead_services():
                    if service.name not in reported:
                        reported.add(service.name)
                        print(
                            f"warning: {service.name} exited with code "
                            f"{service.process.returncode}; log {service.log_path}:\n"
                            f"{log_tail(service)}",
                            file=sys.stderr,
                            flush=True,
                        )
        except StackInterrupted:
            pass
        except StackError as exc:
            print(f"error: {exc}", file=sys.stderr)
            code = 1
        finally:
            count = len(stack.services)
            print(f"\nstopping {count} processes ...", flush=True)
            stack.stop()
            state_path.unlink(missing_ok=True)
            print("stopped.", flush=True)
        return code


def run_stop(root: Path = REPO_ROOT, *, timeout: float = 30.0) -> int:
    local_dir = root / ".local"
    state = read_state(local_dir)
    if state is None:
        print("no local stack is running.")
        return 0
    if _launcher_alive(state):
        pid = int(state["launcher"]["pid"])
        print(f"asking the stack (launcher pid {pid}) to stop ...")
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while _launcher_alive(state) and time.monotonic() < deadline:
            time.sleep(0.1)
    # Whatever the launcher left (it was killed, or timed out): stop by recorded group.
    leftovers = _leftover_groups(state)
    for service in leftovers:
        print(f"stopping leftover {service['name']} (pid {service['pgid']}) ...")
    stop_groups([int(service["pgid"]) for service in leftovers])
    if _launcher_alive(state):
        print("the launcher did not stop; its children are stopped.", file=sys.stderr)
        return 1
    (local_dir / STATE_FILE).unlink(missing_ok=True)
    print("stopped.")
    return 0


def run_status(root: Path = REPO_ROOT) -> int:
    state = read_state(root / ".local")
    if state is None:
        print("no local stack is running.")
        return 1
    alive = _launcher_alive(state)
    print(f"launcher pid {state['launcher']['pid']}: {'running' if alive else 'gone'}")
    for service in state.get("services", []):
        running = bool(group_members(int(service["pgid"])))
        print(f"  {service['name']:<16} {service['url']:<32} {'up' if running else 'DOWN'}")
    return 0 if alive else 1


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
        stop.wait()
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
    parser = argparse.ArgumentParser(prog="python -m emulators.stack", description=__doc__)
    parser.add_argument("command", choices=["dev", "stop", "status", "test-services"])
    args = parser.parse_args(argv)
    commands: dict[str, Callable[[], int]] = {
        "dev": run_dev,
        "stop": run_stop,
        "status": run_status,
        "test-services": run_test_services,
    }
    try:
        return commands[args.command]()
    except StackError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
