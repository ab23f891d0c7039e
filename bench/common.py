"""What every benchmark script shares: percentiles and writing its docs section."""

from __future__ import annotations

import statistics
from pathlib import Path


def percentile(samples: list[float], fraction: float) -> float:
    ordered = sorted(samples)
    index = min(len(ordered) - 1, max(0, round(fraction * (len(ordered) - 1))))
    return ordered[index]


def summary(samples_ms: list[float]) -> dict[str, float]:
    """p50 and p99 in ms and requests/s of sequential samples given in ms."""
    return {
        "p50_ms": statistics.median(samples_ms),
        "p99_ms": percentile(samples_ms, 0.99),
        "rps": 1000 / statistics.mean(samples_ms),
    }


def write_section(path: Path, heading: str, text: str) -> None:
    """Replace (or append) only the section under `heading` with `text`, which starts
    with that heading; the other sections of the file stay as they are."""
    existing = path.read_text() if path.exists() else "# Performance\n\n"
    lines = existing.splitlines(keepends=True)
    start = next((i for i, line in enumerate(lines) if line.rstrip() == heading), None)
    if start is None:
        new = existing.rstrip("\n") + "\n\n" + text.rstrip("\n") + "\n"
    else:
        end = next(
            (i for i in range(start + 1, len(lines)) if lines[i].startswith("## ")), len(lines)
        )
        new = "".join(lines[:start]) + text.rstrip("\n") + "\n\n" + "".join(lines[end:])
    path.write_text(new.rstrip("\n") + "\n")
