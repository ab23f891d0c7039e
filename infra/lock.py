"""Lock the Cloud Functions' dependencies: requirements.txt -> requirements-lock.txt.

requirements.txt holds the top-level packages the functions import, pinned by hand.
requirements-lock.txt holds every package they pull in (protobuf, proto-plus,
google-api-core, grpcio, ...), each pinned with the SHA-256 of every file PyPI offers
for that version. The bundle ships the lock as its requirements.txt, so Cloud Build's
pip runs in hash-checking mode and installs exactly these bytes; `make venv` installs
the same versions, so the tests run what production runs.

The lock is resolved by uv for the runtime Terraform deploys (`var.runtime` of
modules/function: python311 runs on the google-22 stack, Ubuntu 22.04, glibc 2.35).
Its first lines record a digest of requirements.txt's requirements, so an edit that
was not re-locked is caught offline (`--check`, the bundle, tests/infra/test_lock.py).

Usage (from the repository root):
    python -m infra.lock                  regenerate the lock (`make lock`; needs PyPI)
    python -m infra.lock --upgrade-package protobuf    ... moving protobuf to its newest
    python infra/lock.py --check          offline: is the lock current and complete?
    python infra/lock.py --constraints    print the lock without hashes (pip -c input)
"""

from __future__ import annotations

import argparse
import hashlib
import re
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
REQUIREMENTS = "requirements.txt"
LOCK = "requirements-lock.txt"
RUNTIME_VARIABLES = Path("infra/terraform/modules/function/variables.tf")
# The Cloud Functions stack of python3xx runtimes (google-22 = Ubuntu 22.04, glibc 2.35).
PLATFORM = "x86_64-manylinux_2_35"
DIGEST_PREFIX = "# requirements.txt sha256: "

_PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s;\\]+)")
_RUNTIME = re.compile(r'variable\s+"runtime"\s*\{[^}]*?default\s*=\s*"python(\d)(\d+)"', re.DOTALL)


class LockError(Exception):
    """The lock cannot be made or read."""


@dataclass(frozen=True)
class Pin:
    name: str  # canonical (PEP 503) name
    version: str
    hashes: tuple[str, ...]


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def requirement_lines(text: str) -> list[str]:
    """The requirement lines of a hand-written requirements file (no comments)."""
    lines = (line.split("#", 1)[0].strip() for line in text.splitlines())
    return [line for line in lines if line]


def top_level_pins(text: str) -> dict[str, str]:
    """requirements.txt -> {canonical name: version}; every line must be an exact pin."""
    pins: dict[str, str] = {}
    for line in requirement_lines(text):
        match = _PIN.match(line)
        if match is None:
            raise LockError(f"{REQUIREMENTS}: {line!r} is not pinned as name==version")
        pins[canonical(match.group(1))] = match.group(2)
    return pins


def input_digest(text: str) -> str:
    """Digest of what requirements.txt asks for (comments and order do not count)."""
    normalized = sorted(f"{name}=={version}" for name, version in top_level_pins(text).items())
    return hashlib.sha256("\n".join(normalized).encode()).hexdigest()


def parse_lock(text: str) -> dict[str, Pin]:
    """requirements-lock.txt -> {canonical name: Pin} (continuation lines joined)."""
    joined = re.sub(r"\\\n", " ", text)
    pins: dict[str, Pin] = {}
    for line in joined.splitlines():
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        match = _PIN.match(line)
        if match is None:
            raise LockError(f"{LOCK}: {line[:60]!r} is not an exact pin")
        hashes = tuple(re.findall(r"--hash=sha256:([0-9a-f]{64})", line))
        name = canonical(match.group(1))
        pins[name] = Pin(name, match.group(2), hashes)
    return pins


def runtime_python(repo_root: Path) -> str:
    """`python311` (Terraform's default runtime of every function) -> `3.11`."""
    text = (repo_root / RUNTIME_VARIABLES).read_text(encoding="utf-8")
    match = _RUNTIME.search(text)
    if match is None:
        raise LockError(f"no python runtime default in {RUNTIME_VARIABLES}")
    return f"{match.group(1)}.{match.group(2)}"


def lock_problems(repo_root: Path) -> list[str]:
    """Why the lock does not match requirements.txt and the runtime (empty: it does)."""
    lock_path = repo_root / LOCK
    if not lock_path.is_file():
        return [f"{LOCK} does not exist: run `make lock`"]
    requirements = (repo_root / REQUIREMENTS).read_text(encoding="utf-8")
    lock_text = lock_path.read_text(encoding="utf-8")
    try:
        wanted = top_level_pins(requirements)
        locked = parse_lock(lock_text)
    except LockError as error:
        return [str(error)]
    problems: list[str] = []
    if f"{DIGEST_PREFIX}{input_digest(requirements)}" not in lock_text.splitlines():
        problems.append(f"{LOCK} was made from another {REQUIREMENTS}: run `make lock`")
    python = runtime_python(repo_root)
    if f"--python-version {python}" not in lock_text:
        problems.append(f"{LOCK} was not resolved for Python {python} (the Terraform runtime)")
    for name, version in sorted(wanted.items()):
        pin = locked.get(name)
        if pin is None:
            problems.append(f"{name} is in {REQUIREMENTS} but not in {LOCK}")
        elif pin.version != version:
            problems.append(f"{name}: {REQUIREMENTS} wants {version}, {LOCK} has {pin.version}")
    problems.extend(
        f"{name}=={pin.version} has no --hash in {LOCK}"
        for name, pin in sorted(locked.items())
        if not pin.hashes
    )
    return problems


def constraints(repo_root: Path) -> str:
    """The lock's pins without hashes: pip refuses hashes in a constraints file
    without turning hash-checking on for every other requirement too."""
    locked = parse_lock((repo_root / LOCK).read_text(encoding="utf-8"))
    header = f"# generated from {LOCK} by infra/lock.py --constraints; do not edit\n"
    return header + "".join(f"{pin.name}=={pin.version}\n" for pin in locked.values())


def compile_lock(repo_root: Path, upgrade: Sequence[str] = ()) -> Path:
    """Resolve requirements.txt with uv (from PyPI) and write the lock.

    uv keeps the versions the existing lock has wherever requirements.txt allows, so
    bumping one package moves only what it needs; `upgrade` names packages to move to
    their newest allowed version anyway (":all:" for every package).
    """
    python = runtime_python(repo_root)
    requirements = (repo_root / REQUIREMENTS).read_text(encoding="utf-8")
    digest = input_digest(requirements)
    upgrades: list[str] = []
    for name in upgrade:
        upgrades += ["--upgrade"] if name == ":all:" else ["--upgrade-package", name]
    command = [
        sys.executable, "-m", "uv", "pip", "compile", REQUIREMENTS,
        "--output-file", LOCK,
        "--generate-hashes",
        "--python-version", python,
        "--python-platform", PLATFORM,
        "--no-header",
        "--quiet",
        *upgrades,
    ]  # fmt: skip
    completed = subprocess.run(  # noqa: S603 - a fixed command, no shell
        command, cwd=repo_root, capture_output=True, text=True, check=False, timeout=600
    )
    if completed.returncode != 0:
        raise LockError(f"uv pip compile failed:\n{completed.stderr}")
    output = repo_root / LOCK
    # The header goes on last: a run that stops before this leaves a lock without the
    # digest line, which every check refuses.
    header = (
        "# The Cloud Functions' dependencies, every one pinned with its hashes: the bundle\n"
        "# deploys this file as requirements.txt (pip then checks every hash) and `make\n"
        "# venv` installs it. Do not edit: change requirements.txt and run `make lock`.\n"
        f"#   uv pip compile {REQUIREMENTS} --generate-hashes"
        f" --python-version {python} --python-platform {PLATFORM}\n"
        f"{DIGEST_PREFIX}{digest}\n"
    )
    output.write_text(header + output.read_text(encoding="utf-8"), encoding="utf-8")
    return output


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--check", action="store_true", help="offline check of the lock")
    mode.add_argument("--constraints", action="store_true", help="print pins without hashes")
    parser.add_argument(
        "--upgrade-package",
        action="append",
        default=[],
        metavar="NAME",
        help="move NAME to its newest allowed version (repeatable; ':all:' for every one)",
    )
    args = parser.parse_args(argv)
    try:
        if args.constraints:
            sys.stdout.write(constraints(REPO_ROOT))
            return 0
        if not args.check:
            written = compile_lock(REPO_ROOT, args.upgrade_package)
            print(f"wrote {written.relative_to(REPO_ROOT)}")
        problems = lock_problems(REPO_ROOT)
    except LockError as error:
        print(error, file=sys.stderr)
        return 1
    for problem in problems:
        print(problem, file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    raise SystemExit(main())
