"""Finding a running `make dev` stack for the operator CLI when nothing else is configured.

`make dev` writes the stack's addresses into `.local/stack.env` (no secrets), keeps the
generated secrets in `.local/secrets.env` and, while it runs, its state in
`.local/stack.json` (removed when it stops). The CLI reads the same values the local
functions get, in the same order: the generated secrets, the user's `.env`, then the
stack's addresses (already merged with `.env` by the launcher). Only files are read
here; the caller decides whether to use them (never when the shell configures an
environment) and puts them into the process environment.
"""

from __future__ import annotations

import socket
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from dotenv import dotenv_values

from commerce.errors import ConfigurationError

LOCAL_DIR = ".local"
ADDRESSES_FILE = "stack.env"
SECRETS_FILE = "secrets.env"
STATE_FILE = "stack.json"
# A stack.env written before it carried these (or edited by hand) is still a local stack.
LOCAL_DEFAULTS = {"ENVIRONMENT": "local", "SECRETS_BACKEND": "env"}


class LocalStackNotRunning(ConfigurationError):
    code = "local_stack_not_running"
    default_detail = "The local stack is not running."


@dataclass(frozen=True)
class LocalStack:
    root: Path  # the checkout whose `.local/` holds the files
    values: dict[str, str]  # what to put into the environment

    @property
    def addresses_file(self) -> Path:
        return self.root / LOCAL_DIR / ADDRESSES_FILE


def candidate_roots(cwd: Path, package_file: Path) -> list[Path]:
    """The current directory and its ancestors, then the checkout the package lives in."""
    roots = [cwd, *cwd.parents]
    package_root = package_file.resolve().parents[2]  # shared/commerce/<module>.py
    if package_root not in roots:
        roots.append(package_root)
    return roots


def find_root(roots: Iterable[Path]) -> Path | None:
    for root in roots:
        if (root / LOCAL_DIR / ADDRESSES_FILE).is_file():
            return root
    return None


def _read(path: Path) -> dict[str, str]:
    if not path.is_file():
        return {}
    return {key: value or "" for key, value in dotenv_values(path).items()}


def environment_of(root: Path) -> dict[str, str]:
    """What the local functions of the stack in `root` get (its shell aside)."""
    local = root / LOCAL_DIR
    return {
        **LOCAL_DEFAULTS,
        **_read(local / SECRETS_FILE),
        **_read(root / ".env"),
        **_read(local / ADDRESSES_FILE),
    }


def load(root: Path) -> LocalStack:
    """The environment of the stack in `root`; LocalStackNotRunning when it is stopped."""
    local = root / LOCAL_DIR
    values = environment_of(root)
    host = values.get("FIRESTORE_EMULATOR_HOST", "")
    if not (local / STATE_FILE).is_file() or not _listening(host):
        raise LocalStackNotRunning(
            f"the local stack in {root} is not running (start it with `make dev`), "
            "or set ENVIRONMENT and GCP_PROJECT to talk to another environment"
        )
    return LocalStack(root, values)


def _listening(host_port: str) -> bool:
    host, _, port = host_port.rpartition(":")
    if not host or not port.isdigit():
        return False
    try:
        with socket.create_connection((host, int(port)), timeout=1.0):
            return True
    except OSError:
        return False
