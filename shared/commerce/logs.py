"""Structured JSON logging that Cloud Logging and Error Reporting understand, redacted.

Each record is one JSON line with `severity`, `message`, the `event` name and extra
fields. Cloud Logging lifts the special `logging.googleapis.com/...` fields into the
LogEntry: `sourceLocation` (file, line, function of the logging call), `trace` and
`spanId` (from the request's `traceparent` or `X-Cloud-Trace-Context` header, so every
line of one request sits under its trace). A record logged with an exception carries
the Python traceback in `stack_trace` and at the end of `message`, the form Error
Reporting parses and groups; an ERROR without exception is marked as a
`ReportedErrorEvent` with its report location, so it is grouped too.

A redaction pass removes anything shaped like a license key, download token, Stripe
secret, bearer credential or e-mail address from the message, the traceback and every
field, whoever logged it.
"""

from __future__ import annotations

import contextvars
import json
import logging
import re
import sys
import traceback
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol


class Headers(Protocol):
    """What a request's headers offer (werkzeug's Headers, a dict)."""

    def get(self, key: str, /) -> str | None: ...


@dataclass(frozen=True)
class TraceContext:
    """The Cloud Trace ids of the request being served (ids in lowercase hex)."""

    trace_id: str  # 32 hex digits
    span_id: str | None = None  # 16 hex digits
    sampled: bool | None = None


_trace: contextvars.ContextVar[TraceContext | None] = contextvars.ContextVar("trace", default=None)

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
    # A 256-bit base64url token may begin or end with "-" or "_", where `\b` finds no
    # boundary; its edges are "no other base64url character" instead.
    re.compile(r"/d/[A-Za-z0-9_-]{43}(?![A-Za-z0-9_-])"),  # download links
    re.compile(r"(?<![A-Za-z0-9_-])[A-Za-z0-9_-]{43}(?![A-Za-z0-9_-])"),  # bare tokens
]
REDACTED = "[redacted]"

# Special fields Cloud Logging moves from the JSON line into the LogEntry
# (cloud.google.com/logging/docs/structured-logging).
TRACE_FIELD = "logging.googleapis.com/trace"
SPAN_FIELD = "logging.googleapis.com/spanId"
SAMPLED_FIELD = "logging.googleapis.com/trace_sampled"
SOURCE_FIELD = "logging.googleapis.com/sourceLocation"
# An error entry without a stack trace is still captured by Error Reporting when it says
# it is a ReportedErrorEvent and names where it was reported
# (cloud.google.com/error-reporting/docs/formatting-error-messages).
REPORTED_ERROR_EVENT = (
    "type.googleapis.com/google.devtools.clouderrorreporting.v1beta1.ReportedErrorEvent"
)


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


# Log lines also lose e-mail addresses (a provider's bounce text or an exception may
# quote one); Firestore and audit entries keep their own rules (masked addresses).
_EMAIL = re.compile(r"[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)+")


def redact_log_text(text: str) -> str:
    return _EMAIL.sub(REDACTED, redact_text(text))


def _redact_log_value(value: Any, field: str | None = None) -> Any:
    cleaned = redact(value, field)
    if isinstance(cleaned, str):
        return _EMAIL.sub(REDACTED, cleaned)
    if isinstance(cleaned, dict):
        return {k: _redact_log_value(v) for k, v in cleaned.items()}
    if isinstance(cleaned, list):
        return [_redact_log_value(v) for v in cleaned]
    return cleaned


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
        message = redact_log_text(record.getMessage())
        entry: dict[str, Any] = {
            "severity": _SEVERITY.get(record.levelname, "DEFAULT"),
            "message": message,
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(),
            "logger": record.name,
            SOURCE_FIELD: {
                "file": record.pathname,
                "line": record.lineno,
                "function": record.funcName,
            },
        }
        for name, value in vars(record).items():
            if name not in _STANDARD_ATTRS and not name.startswith("_"):
                entry[name] = _redact_log_value(value, name)
        if record.exc_info and record.exc_info[0] is not None:
            # The traceback in Python's own format, which Error Reporting parses; it can
            # quote request data (an exception's text), so it is redacted like the rest.
            stack = redact_log_text("".join(traceback.format_exception(*record.exc_info)))
            entry["stack_trace"] = stack.rstrip("\n")
            entry["message"] = f"{message}\n{entry['stack_trace']}"
        elif record.levelno >= logging.ERROR:
            entry["@type"] = REPORTED_ERROR_EVENT
            entry["context"] = {
                "reportLocation": {
                    "filePath": record.pathname,
                    "lineNumber": record.lineno,
                    "functionName": f"{record.module}.{record.funcName}",
                }
            }
        context = _trace.get()
        if context is not None and self.project:
            entry[TRACE_FIELD] = f"projects/{self.project}/traces/{context.trace_id}"
            if context.span_id is not None:
                entry[SPAN_FIELD] = context.span_id
            if context.sampled is not None:
                entry[SAMPLED_FIELD] = context.sampled
        return json.dumps(entry, default=str)


_TRACEPARENT = re.compile(r"([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})(-.*)?")
_CLOUD_TRACE = re.compile(r"([0-9a-fA-F]{32})(?:/([0-9]{1,20}))?(?:;o=([01]))?")
_MAX_SPAN = 2**64 - 1


def parse_traceparent(header: str | None) -> TraceContext | None:
    """W3C `traceparent: 00-<trace-id>-<span-id>-<flags>`; None when malformed."""
    if not header:
        return None
    match = _TRACEPARENT.fullmatch(header.strip())
    if match is None:
        return None
    version, trace_id, span_id, flags, rest = match.groups()
    # Version ff is forbidden; version 00 has exactly four fields; later versions may
    # append fields, which this parser ignores (W3C Trace Context, "versioning").
    if version == "ff" or (version == "00" and rest is not None):
        return None
    if trace_id == "0" * 32 or span_id == "0" * 16:
        return None
    return TraceContext(trace_id, span_id, bool(int(flags, 16) & 1))


def parse_cloud_trace_context(header: str | None) -> TraceContext | None:
    """`X-Cloud-Trace-Context: TRACE_ID/SPAN_ID;o=1` (span id in decimal); None when
    malformed. Cloud Logging wants the span id as 16 hex digits, so it is converted."""
    if not header:
        return None
    match = _CLOUD_TRACE.fullmatch(header.strip())
    if match is None:
        return None
    trace_id, span, sampled = match.groups()
    trace_id = trace_id.lower()
    if trace_id == "0" * 32:
        return None
    span_id = None
    if span is not None and 0 < int(span) <= _MAX_SPAN:
        span_id = f"{int(span):016x}"
    return TraceContext(trace_id, span_id, None if sampled is None else sampled == "1")


def trace_from_headers(headers: Headers) -> TraceContext | None:
    """The request's trace: W3C `traceparent` first, then Google's own header."""
    return parse_traceparent(headers.get("traceparent")) or parse_cloud_trace_context(
        headers.get("X-Cloud-Trace-Context")
    )


def set_trace_from_headers(headers: Headers) -> None:
    """Remember the trace of the request being served (or forget the last one's)."""
    _trace.set(trace_from_headers(headers))


def current_trace() -> TraceContext | None:
    return _trace.get()


def configure_logging(level: str = "INFO", project: str | None = None) -> None:
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(JsonFormatter(project))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())


def get_logger(name: str) -> logging.Logger:
    return logging.getLogger(name)
