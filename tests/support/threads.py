"""Run a test's workers at once: one thread each, all started before any is joined."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from typing import Any


def run_together(
    target: Callable[..., object],
    arguments: Iterable[tuple[Any, ...]],
    *,
    join_timeout: float | None = None,
) -> None:
    """One thread per argument tuple; returns once every thread has ended (or, with
    `join_timeout`, once each was waited for that long: a deadlock guard)."""
    threads = [threading.Thread(target=target, args=args) for args in arguments]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(join_timeout)


def run_copies(target: Callable[[], object], count: int) -> None:
    """`count` threads running `target` at once."""
    run_together(target, [()] * count)
