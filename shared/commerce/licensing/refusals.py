"""Refused license calls: audited once per subject and window, the rest counted.

Every refused call used to write an audit document, so a key scan or a flood from
rotating IPv6 networks turned the audit log into a write amplifier. Now one instance
audits the first refusal of each (subject, operation, status) in a window and counts
the others: each counted refusal is still a log line (nothing is silent), and when the
window has ended the instance writes one `license.refusals_counted` entry with how many
it counted. The subject is the license when the key named one (a shared or refunded key
hammered from many networks is one entry) and otherwise the client network's keyed
hash (a scan of made-up keys from one network is one entry, not one per key). At most
`max_audits` subjects are audited per window and instance; beyond that refusals are
only counted, so rotating networks cannot raise the write rate either.

Counts are per instance (each instance audits its own first refusal): the number of
audit documents per window is bounded by instances x `max_audits`, not by traffic.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from commerce.logs import get_logger

if TYPE_CHECKING:
    from commerce.audit import Auditor
    from commerce.clock import Clock

WINDOW_SECONDS = 3600
MAX_AUDITS_PER_WINDOW = 1000
_log = get_logger("commerce.licensing.refusals")


@dataclass
class _Window:
    index: int
    seen: dict[tuple[str, str, str], int] = field(default_factory=dict)
    counted: int = 0  # refusals not audited (repeats and those over the cap)
    over_cap: int = 0  # of which: subjects beyond max_audits

    def summary(self, seconds: int) -> dict[str, Any]:
        return {
            "window_start": self.index * seconds,
            "window_seconds": seconds,
            "audited": len(self.seen),
            "counted": self.counted,
            "over_cap": self.over_cap,
        }


class RefusalAudit:
    def __init__(
        self,
        auditor: Auditor,
        clock: Clock,
        *,
        window_seconds: int = WINDOW_SECONDS,
        max_audits: int = MAX_AUDITS_PER_WINDOW,
    ) -> None:
        self.auditor = auditor
        self.clock = clock
        self.window_seconds = window_seconds
        self.max_audits = max_audits
        self._window: _Window | None = None
        self._lock = threading.Lock()

    def record(self, *, subject: str, operation: str, status: str, **fields: Any) -> bool:
        """Audit this refusal if it is the first of its kind in the window (True), else
        count it (False). `fields` go into the audit entry (ids and hashes only)."""
        index = int(self.clock.now().timestamp()) // self.window_seconds
        ended: _Window | None = None
        with self._lock:
            window = self._window
            if window is None or window.index != index:
                ended, window = window, _Window(index)
                self._window = window
            kind = (subject, operation, status)
            seen = window.seen.get(kind)
            first = seen is None and len(window.seen) < self.max_audits
            if first:
                window.seen[kind] = 1
            else:
                window.counted += 1
                if seen is None:
                    window.over_cap += 1
                else:
                    window.seen[kind] = seen + 1
        if ended is not None and ended.counted:
            self.auditor.record("license.refusals_counted", **ended.summary(self.window_seconds))
        if first:
            self.auditor.record(
                "license.refused",
                operation=operation,
                status=status,
                window_start=index * self.window_seconds,
                **fields,
            )
        else:
            _log.info(
                "license refusal counted",
                extra={
                    "event": "license.refusal_counted",
                    "operation": operation,
                    "status": status,
                    "license_id": fields.get("license_id"),
                },
            )
        return first

    def flush(self) -> None:
        """Write the current window's count now (on shutdown; tests)."""
        with self._lock:
            window, self._window = self._window, None
        if window is not None and window.counted:
            self.auditor.record("license.refusals_counted", **window.summary(self.window_seconds))
