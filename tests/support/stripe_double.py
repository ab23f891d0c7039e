"""The project's Stripe double as a process for tests: started on a free port (it prints
the address it listens on), stopped by its PID, its log kept beside the test run."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


@contextmanager
def running_stripe_double(
    log_dir: Path, webhook_secret: str, *, async_delay: float = 0.2
) -> Iterator[str]:
    """Yields the double's base URL; its webhooks are signed with `webhook_secret` and
    retried quickly (0.05 s base, 8 attempts), async payments settle after `async_delay`."""
    log = (log_dir / "double.log").open("w")
    process = subprocess.Popen(
        [sys.executable, "-m", "emulators.stripe_double", "--port", "0",
         "--webhook-secret", webhook_secret, "--retry-base", "0.05", "--max-attempts", "8",
         "--async-delay", str(async_delay)],
        cwd=REPO, stdout=subprocess.PIPE, stderr=log, text=True,
    )  # fmt: skip
    try:
        assert process.stdout is not None
        line = process.stdout.readline().strip()
        assert line.startswith("stripe-double listening on "), line
        yield line.rsplit(" ", 1)[1]
    finally:
        process.terminate()
        process.wait(timeout=10)
        if process.stdout is not None:
            process.stdout.close()
        log.close()
