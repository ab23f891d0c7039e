"""Service specs: how to start each server of the local stack and how to tell it is ready.

Every server binds 127.0.0.1 (the Cloud Tasks emulator cannot: it has no host option;
emulators/tasks_loopback.py makes it). Tools come from the project's virtualenvs and
node_modules (`make venv`); a missing one is a `StackError` naming the fix.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

from emulators.stack.ports import HOST, REPO_ROOT, port_is_listening
from emulators.stack.processes import ServiceSpec, StackError, http_probe, tcp_probe

TASKS_LOCATION = "europe-west1"
TASKS_QUEUE = "email"
# The tasks emulator retries a failing task about every 0.1 s, without backoff; a small
# bound keeps a broken worker from spinning forever.
TASKS_MAX_RETRIES = 5

FIRESTORE_JAR_ENV = "FIRESTORE_EMULATOR_JAR"
_SDK_JAR = Path("platform/cloud-firestore-emulator/cloud-firestore-emulator.jar")
_DEBIAN_SDK = Path("/usr/lib/google-cloud-sdk")
_FIRESTORE_MAIN = "com.google.cloud.datastore.emulator.firestore.CloudFirestore"


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


def _venv_tool(root: Path, venv: str, tool: str, hint: str) -> str:
    path = root / venv / "bin" / tool
    if not path.exists():
        raise StackError(f"{path} is missing: run `{hint}` first")
    return str(path)


def firestore_spec(
    port: int, root: Path = REPO_ROOT, *, import_data: Path | None = None
) -> ServiceSpec:
    """`import_data`: an export's `.overall_export_metadata` file to start from
    (emulators/stack/persistence.py writes them)."""
    url = f"http://{HOST}:{port}"
    seed = ["--import-data", str(import_data)] if import_data is not None else []
    return ServiceSpec(
        name="firestore",
        argv=[
            _java(),
            "-Duser.language=en",
            # Start-up time matters more than peak speed for a local emulator: the C1
            # compiler only and one GC thread halve the time to "Ok" on small machines.
            "-XX:TieredStopAtLevel=1",
            "-XX:+UseSerialGC",
            # A small young generation: the serial collector's young pauses then last
            # a few ms instead of 27-40 ms every second or so under a purchase load
            # (they stopped every request in flight; docs/performance.md, "Webhook
            # fulfillment"). Start-up time is unchanged (0.93-1.04 s to "Ok" either way).
            "-Xmn24m",
            "-cp",
            str(find_firestore_jar()),
            _FIRESTORE_MAIN,
            "--host",
            HOST,
            "--port",
            str(port),
            *seed,
        ],
        url=url,
        probe=http_probe(url + "/", body="Ok"),
        cwd=root,
        ports=(port,),
    )


def storage_spec(
    port: int, bucket: str, root: Path = REPO_ROOT, *, data_dir: Path | None = None
) -> ServiceSpec:
    """In memory, or kept on disk under `data_dir` (the emulator's STORAGE_BASE)."""
    url = f"http://{HOST}:{port}"
    tool = _venv_tool(root, ".venv", "gcp-storage-emulator", "make venv")
    where = ["--in-memory"] if data_dir is None else []
    env = None if data_dir is None else {**os.environ, "STORAGE_BASE": str(data_dir.resolve())}
    return ServiceSpec(
        name="storage",
        argv=[
            *(tool, "start", "--host", HOST, "--port", str(port)),
            *where,
            *("--default-bucket", bucket),
        ],
        url=url,
        probe=http_probe(f"{url}/storage/v1/b"),
        env=env,
        cwd=root,
        ports=(port,),
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
        ports=(port,),
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
        ports=(web_port, smtp_port),
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
        ports=(port,),
    )


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
        ports=(port,),
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
        ports=(port,),
    )
