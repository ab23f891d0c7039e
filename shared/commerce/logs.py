"""Structured JSON logging that Cloud Logging understands, with secrets redacted.

Each record is one JSON line with `severity`, `message`, the `event` name and extra
fields; the Cloud Trace id is attached when a request carries one. A redaction pass
removes anything shaped like a license key, download token, Stripe secret or bearer
credential from the message and from every field, whoever logged it.
"""

from __future__ import annotations

import contextvars
import json
import logging
import re
import sys
from datetime import UTC, datetime
from typing import Any

_trace: contextvars.ContextVar[str | None] = contextvars.ContextVar("trace", default=None)

_SENSITIVE_FIELDS = re.compile(
    r"(key|token|secret|password|pepper|authorization|signature|cookie)", re.IGNORECASE
)
_SAFE_FIELDS = {"key_hint", "token_id", "key_hash_prefix", "idempotency_key_hash"}
_PATTERNS = [
    re.compile(r"\b[A-Z]{2,8}-[0-9A-Z]{4}-[0-9A-Z]{4}-[0-9A-Z]{4}\b"),  # license keys
    re.compile(r"\b(sk|rk|pk)_(test|live)_[A-Za-z0-9_]+"),  # Stripe keys
    re.compile(r"\bwhsec_[A-Za-z0-9_]+"),
    re.compile(r"\bSG\.[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}"),  # SendGrid
    re.compile(r"(?i)bearer\s+[A-Za-z0-9._~+/=-]+"),
    re.compile(r"/d/[A-Za-z0-9_-]{43}\b"),  # download links
    re.compile(r"\b[A-Za-z0-9_-]{43}\b"),  # bare 256-bit base64url tokens
]
REDACTED = "[redacted]"


def redact_text(text: str) -> str:
    for pattern in _PATTERNS:
        text = pattern.sub(REDACTED, text)
    return text


def redact(value: Any, field: str | None = None) -> Any:
    if field is not None and field not in _SAFE_FIELDS and _SENSITIVE_FIELDS.search(field):
        return REDACTED
    if isinstance(value, str):
        return redact_text(value)
    if isinstance(value, dict):
        return {k: redact(v, str(k)) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [redact(v) for v in value]
    return value


_STANDARD_ATTRS = set(vars(logging.makeLogRecord({}))) | {"message", "asctime"}
_SEVERITY = {
    "WARNING": "WARNING",
    "CRITICAL": "CRITICAL",
    "ERROR": "ERROR",
    "INFO": "INFO",
    "DEBUG": "DEBUG",
}


class JsonFormatter(logging.Formatter):
    def __init__(self, project: str | None = None) -> None:
        super().__init__()
        self.project = project

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "severity": _SEVERITY.get(record.levelname, "DEFAULT"),
            "message": redact_text(record.getMessage()),
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(),
            "logger": record.name,
        }
        for name, value in vars(record).items():
            if name not in _STANDARD_ATTRS and not name.startswith("_"):
                entry[name] = redact(value, name)
        if record.exc_info:
            # Exception text can quote request data; keep the type and redacted text.
            exc_type, exc, _ = record.exc_info
            entry["exception"] = redact_text(f"{exc_type.__name__ if exc_type else ''}: {exc}")
        trace = _trace.get()
        if trace and self.project:
            entry["logging.googleapis.com/trace"] = f"projects/{self.project}/traces/{trace}"
        return json.dumps(entry, default=str)


def set_trace_from_header(header: str | None) -> None:
    """`X-Cloud-Trace-Context: TRACE_ID/SPAN_ID;o=1` -> remember TRACE_ID for this request."""
    _trace.set(header.split("/", 1)[0] if header else None)


def configure_logging(level: str = "INFO", project: str | None = None) -> None:
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(JsonFormatter(project))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())


def get_logger(name: str) -> logging.Logger:
    return logging.getLogger(name)
