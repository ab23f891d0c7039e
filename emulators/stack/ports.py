"""Where the local stack listens: fixed ports for `make dev`, free ones for tests.

`make dev` takes Firestore, Storage and the storefront (hosting) from firebase.json,
the rest from emulators/ports.json (one port per Cloud Function of functions/main.py;
tests/infra/test_function_list.py checks that the two lists agree). Every server binds
127.0.0.1, away from 8080. Standard library only: `make status` runs under the
system python3.
"""

from __future__ import annotations

import json
import socket
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[2]
HOST = "127.0.0.1"
PORTS_FILE = Path("emulators") / "ports.json"


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


def free_ports(names: Iterable[str] | None = None) -> Ports:
    """Like `configured_ports`, but every port picked free (tests); `names`: the
    functions to give a port (default: every function of functions/main.py)."""
    if names is None:
        from emulators.stack.functions import function_names

        names = function_names()
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
