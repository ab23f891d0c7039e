"""Build the Cloud Functions source bundle reproducibly.

The zip holds exactly what the functions need at runtime:

    main.py            <- functions/main.py (the thin entry points)
    commerce/...       <- shared/commerce (the package, without caches and without the
                          operator CLI modules, whose typer/rich are not deployed)
    requirements.txt   <- requirements-lock.txt (every package pinned with its hashes, so
                          Cloud Build's pip installs in hash-checking mode; infra/lock.py)

The lock must be current for requirements.txt (infra/lock.py --check), or nothing is
built.

Entries are sorted and every entry gets the same timestamp and permissions, so two
builds from the same tree are byte-identical (same SHA-256). Terraform names the
uploaded object after that hash: an unchanged tree never redeploys, a changed one
always does.

Usage (from the repository root):  python -m infra.bundle [--output build/functions-source.zip]
"""

from __future__ import annotations

import argparse
import hashlib
import os
import re
import sys
import zipfile
from collections.abc import Iterator
from pathlib import Path

try:  # python -m infra.bundle, and the tests (the repository root is on sys.path)
    from infra.lock import LOCK, lock_problems
except ModuleNotFoundError:  # python infra/bundle.py (infra/ is on sys.path)
    from lock import LOCK, lock_problems  # type: ignore[no-redef]

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_OUTPUT = REPO_ROOT / "build" / "functions-source.zip"

# The entry points Terraform deploys (one Cloud Function each); the bundle test checks
# that main.py defines every one of them.
ENTRY_POINTS = (
    "checkout",
    "stripe_webhook",
    "download",
    "send_email",
    "order_status",
    "resend_links",
    "license_api",
    "reconcile",
    "email_sweeper",
)

# 1980-01-01 is the earliest timestamp a zip entry can hold.
FIXED_DATE_TIME = (1980, 1, 1, 0, 0, 0)
FILE_MODE = 0o100644  # regular file, rw-r--r--
UNIX_SYSTEM = 3
EXCLUDED_DIRS = frozenset({"__pycache__", ".mypy_cache", ".pytest_cache", ".ruff_cache"})
EXCLUDED_SUFFIXES = (".pyc", ".pyo")
# The operator CLI (`commerce ...`, typer and rich) runs on operators' machines, never in
# a function: its modules stay out of the bundle, and typer/rich out of the lock.
CLI_MODULES = re.compile(r"(^|/)(cli|[a-z_]+_cli|cli_[a-z_]+)\.py$|(^|/)cli/")


class BundleError(Exception):
    """The tree cannot be bundled (a required file is missing)."""


def bundle_entries(repo_root: Path) -> list[tuple[str, Path]]:
    """(name in the zip, file on disk) for every file of the bundle, sorted by name."""
    main = repo_root / "functions" / "main.py"
    package = repo_root / "shared" / "commerce"
    lock = repo_root / LOCK
    for required in (main, package / "__init__.py", repo_root / "requirements.txt", lock):
        if not required.is_file():
            raise BundleError(f"cannot build the bundle: {required} does not exist")
    problems = lock_problems(repo_root)
    if problems:
        raise BundleError("cannot build the bundle: " + "; ".join(problems))

    entries = [("main.py", main), ("requirements.txt", lock)]
    for path in _package_files(package):
        name = path.relative_to(package).as_posix()
        if not CLI_MODULES.search(name):
            entries.append((f"commerce/{name}", path))
    return sorted(entries)


def _package_files(package: Path) -> Iterator[Path]:
    for directory, subdirectories, files in os.walk(package):
        subdirectories[:] = [name for name in subdirectories if name not in EXCLUDED_DIRS]
        for name in files:
            if not name.endswith(EXCLUDED_SUFFIXES):
                yield Path(directory) / name


def build_bundle(repo_root: Path = REPO_ROOT, output: Path = DEFAULT_OUTPUT) -> str:
    """Write the bundle to `output` and return its SHA-256 (hex)."""
    entries = bundle_entries(repo_root)
    output.parent.mkdir(parents=True, exist_ok=True)
    partial = output.with_name(output.name + ".partial")
    with zipfile.ZipFile(partial, "w") as archive:
        for name, path in entries:
            info = zipfile.ZipInfo(name, date_time=FIXED_DATE_TIME)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.create_system = UNIX_SYSTEM
            info.external_attr = FILE_MODE << 16
            archive.writestr(info, path.read_bytes(), compresslevel=9)
    partial.replace(output)  # atomic: Terraform never sees a half-written zip
    return hashlib.sha256(output.read_bytes()).hexdigest()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT, help="zip to write")
    args = parser.parse_args(argv)
    try:
        digest = build_bundle(REPO_ROOT, args.output)
    except BundleError as exc:
        print(exc, file=sys.stderr)
        return 1
    print(f"{args.output} sha256={digest}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
