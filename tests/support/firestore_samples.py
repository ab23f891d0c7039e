"""Documents of every plain value kind Firestore stores (encoding and round-trip tests)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Any

AT = datetime(2026, 5, 4, 3, 2, 1, 123456, tzinfo=UTC)
SAMPLES: list[dict[str, Any]] = [
    {},
    {"count": 3, "expires_at": AT},
    {
        "action": "download.redeemed",
        "at": AT,
        "at_cet": AT.astimezone(timezone(timedelta(hours=1))),
        "naive": datetime(2026, 1, 2, 3, 4, 5, 6),
        "epoch": datetime(1970, 1, 1, tzinfo=UTC),
        "before_epoch": datetime(1969, 12, 31, 23, 59, 59, 500000, tzinfo=UTC),
        "west_naive_epoch": [datetime(1970, 1, 1), AT.astimezone(timezone(-timedelta(hours=5)))],
        "actor": "system",
        "order_id": None,
        "ok": True,
        "ratio": 1.25,
        "raw": b"\x00\x01",
        "details": {"token_id": "t1", "nested": {"empty": {}, "list": []}, "n": -7},
        "items": [1, "two", None, {"three": 3.0, "flag": False}],
    },
]
