"""`make status | head`, `make seed | head`: when the reader of stdout goes away, the rest
of the output is dropped and the program carries on to its normal end and exit code.

Carrying on matters: `make dev | head` must still stop every process it started, and a
seed that has written its documents still finishes. Without this, the first print after
`head` exits raises BrokenPipeError (Python ignores SIGPIPE), the traceback lands on the
terminal, and make adds an error line. Standard library only: `make status` and
`make stop` run under the system python3.
"""

from __future__ import annotations

import os
import sys
from typing import Any, TextIO


class DropWhenClosed:
    """A stdout that turns into /dev/null once writing to it fails with EPIPE."""

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream

    def write(self, text: str) -> int:
        try:
            return self._stream.write(text)
        except BrokenPipeError:
            self._to_devnull()
            return len(text)

    def flush(self) -> None:
        try:
            self._stream.flush()
        except BrokenPipeError:
            self._to_devnull()

    def _to_devnull(self) -> None:
        # Point the descriptor at /dev/null: what is still buffered (and the flush at
        # interpreter exit) then goes nowhere instead of failing again.
        devnull = os.open(os.devnull, os.O_WRONLY)
        try:
            os.dup2(devnull, self._stream.fileno())
        finally:
            os.close(devnull)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)


def guard_stdout() -> None:
    if not isinstance(sys.stdout, DropWhenClosed):
        sys.stdout = DropWhenClosed(sys.stdout)  # type: ignore[assignment]
