"""A 127.0.0.1 port that accepts every connection and never sends a byte: a dependency
that hangs (a stuck load balancer, a frozen emulator). Counts what it accepted, so a
test can tell how many attempts a client made."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field


@dataclass
class BlackHole:
    host: str
    port: int
    held: list[socket.socket] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def connections(self) -> int:
        return len(self.held)


@contextmanager
def black_hole() -> Iterator[BlackHole]:
    server = socket.create_server(("127.0.0.1", 0))
    server.settimeout(0.1)
    hole = BlackHole("127.0.0.1", server.getsockname()[1])
    stop = threading.Event()

    def accept() -> None:
        while not stop.is_set():
            try:
                hole.held.append(server.accept()[0])
            except TimeoutError:
                continue

    thread = threading.Thread(target=accept, name="black-hole", daemon=True)
    thread.start()
    try:
        yield hole
    finally:
        stop.set()
        thread.join(timeout=5)
        for conn in hole.held:
            conn.close()
        server.close()
