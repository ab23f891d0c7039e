"""Log lines as Cloud Logging and Error Reporting read them: the JSON an unexpected error
produces inside a real function request (driven through functions-framework's test
client), the trace taken from either header form, and redaction inside the traceback."""

from __future__ import annotations

import io
import json
import logging
import random
import re
import secrets
import string
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import functions_framework
import pytest
from hypothesis import given
from hypothesis import strategies as st

from commerce.bootstrap import Container, use_container
from commerce.clock import FixedClock
from commerce.logs import (
    REPORTED_ERROR_EVENT,
    JsonFormatter,
    TraceContext,
    parse_cloud_trace_context,
    parse_traceparent,
    redact,
    trace_from_headers,
)
from commerce.secrets import EnvSecrets
from commerce.settings import Settings
from tests.support.factories import NOW, TEST_SECRETS

REPO = Path(__file__).resolve().parents[2]
SOURCE = str(REPO / "functions" / "main.py")
PROJECT = "demo-genx-logs"
TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
SOURCE_FIELD = "logging.googleapis.com/sourceLocation"
TRACE_FIELD = "logging.googleapis.com/trace"
SPAN_FIELD = "logging.googleapis.com/spanId"
SAMPLED_FIELD = "logging.googleapis.com/trace_sampled"

# Secrets a careless exception message might quote (made per run, in the shapes the
# shop hands out); none may reach a log line.
_ALPHABET = string.ascii_uppercase + string.digits
LEAKED_TOKEN = secrets.token_urlsafe(32)  # a download token: 43 base64url characters
LEAKED_KEY = "GENX-" + "-".join("".join(random.choices(_ALPHABET, k=4)) for _ in range(3))
LEAKED_STRIPE = "sk_test_" + secrets.token_hex(12)
LEAKED_EMAIL = f"ada.{secrets.token_hex(3)}+shop@mail.example.com"


class Exploding:
    """A dependency that fails the way a bug or an outage does, quoting secrets."""

    def __getattr__(self, name: str) -> Any:
        def fail(*args: Any, **kwargs: Any) -> Any:
            raise RuntimeError(
                f"backend refused /d/{LEAKED_TOKEN} for {LEAKED_KEY} with {LEAKED_STRIPE}"
                f" of {LEAKED_EMAIL}"
            )

        return fail


@pytest.fixture
def log_lines() -> Iterator[io.StringIO]:
    """Every record of the request, formatted exactly as production formats it."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter(PROJECT))
    root = logging.getLogger()
    previous_level = root.level
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    yield stream
    root.removeHandler(handler)
    root.setLevel(previous_level)


@pytest.fixture
def broken_container() -> Iterator[Container]:
    settings = Settings(  # type: ignore[call-arg]
        _env_file=None,
        environment="local",
        gcp_project=PROJECT,
        storefront_url="http://shop.test",
        storefront_origins=("http://shop.test",),
        public_base_url="http://functions.test",
        artifacts_bucket="genx-artifacts-test",
    )
    container = Container(settings, clock=FixedClock(NOW), secrets=EnvSecrets(dict(TEST_SECRETS)))
    container.rate_limiter = Exploding()  # type: ignore[misc,assignment]
    container.license_service = Exploding()  # type: ignore[misc,assignment]
    use_container(container)
    yield container
    use_container(None)


def _entries(stream: io.StringIO, event: str) -> list[dict[str, Any]]:
    entries = [json.loads(line) for line in stream.getvalue().splitlines() if line.strip()]
    return [entry for entry in entries if entry.get("event") == event]


def _order_status_error(stream: io.StringIO, **headers: str) -> dict[str, Any]:
    client = functions_framework.create_app(target="order_status", source=SOURCE).test_client()
    response = client.get("/?session_id=cs_test_abc", headers=headers)

    assert response.status_code == 500
    assert response.get_json() == {
        "error": "internal_error",
        "detail": "An internal error occurred.",
    }
    [entry] = _entries(stream, "http.error")
    return entry


# A Python traceback as Error Reporting recognises it: the header line, then frames.
_PYTHON_TRACEBACK = re.compile(
    r'Traceback \(most recent call last\):\n(  File "[^"]+", line \d+, in \S+\n(    .*\n)*)+'
    r"\S*Error: .*",
)


def test_an_unexpected_error_in_a_function_logs_a_traceback_error_reporting_parses(
    broken_container: Container, log_lines: io.StringIO
) -> None:
    entry = _order_status_error(log_lines)

    assert entry["severity"] == "ERROR"
    assert _PYTHON_TRACEBACK.search(entry["stack_trace"]), entry["stack_trace"]
    # The frame that raised is in it, and the message carries the same traceback.
    assert "in fail" in entry["stack_trace"]
    assert entry["message"].startswith("unhandled error\nTraceback (most recent call last):")
    assert entry["message"].endswith(entry["stack_trace"])
    # Where the error was logged: the catch-all of the HTTP plumbing.
    location = entry[SOURCE_FIELD]
    assert location["file"].endswith("commerce/http.py")
    assert location["function"] == "wrapper"
    assert isinstance(location["line"], int)
    assert location["line"] > 0


def test_secrets_quoted_by_an_exception_are_redacted_inside_the_traceback(
    broken_container: Container, log_lines: io.StringIO
) -> None:
    _order_status_error(log_lines)

    everything = log_lines.getvalue()
    assert (
        "RuntimeError: backend refused [redacted] for [redacted] with [redacted] of [redacted]"
        in everything
    )
    for secret in (LEAKED_TOKEN, LEAKED_KEY, LEAKED_STRIPE, LEAKED_EMAIL):
        assert secret not in everything


@pytest.mark.parametrize(
    ("headers", "span_id", "sampled"),
    [
        ({"X-Cloud-Trace-Context": f"{TRACE_ID}/12345;o=1"}, "0000000000003039", True),
        ({"X-Cloud-Trace-Context": f"{TRACE_ID}/12345"}, "0000000000003039", None),
        ({"X-Cloud-Trace-Context": TRACE_ID.upper()}, None, None),
        ({"traceparent": f"00-{TRACE_ID}-00f067aa0ba902b7-01"}, "00f067aa0ba902b7", True),
        ({"traceparent": f"00-{TRACE_ID}-00f067aa0ba902b7-00"}, "00f067aa0ba902b7", False),
        # Both present (Cloud Run forwards both): the W3C header wins.
        (
            {
                "traceparent": f"00-{TRACE_ID}-00f067aa0ba902b7-01",
                "X-Cloud-Trace-Context": "0af7651916cd43dd8448eb211c80319c/1;o=1",
            },
            "00f067aa0ba902b7",
            True,
        ),
    ],
    ids=["cloud-sampled", "cloud-no-flag", "cloud-trace-only", "w3c", "w3c-unsampled", "both"],
)
def test_the_error_line_carries_the_requests_trace_from_either_header(
    broken_container: Container,
    log_lines: io.StringIO,
    headers: dict[str, str],
    span_id: str | None,
    sampled: bool | None,
) -> None:
    entry = _order_status_error(log_lines, **headers)

    assert entry[TRACE_FIELD] == f"projects/{PROJECT}/traces/{TRACE_ID}"
    assert entry.get(SPAN_FIELD) == span_id
    assert entry.get(SAMPLED_FIELD) == sampled


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"X-Cloud-Trace-Context": "not-a-trace"},
        {"X-Cloud-Trace-Context": "/123;o=1"},
        {"X-Cloud-Trace-Context": "0" * 32 + "/1;o=1"},
        {"traceparent": "00-zzzz-00f067aa0ba902b7-01"},
        {"traceparent": f"ff-{TRACE_ID}-00f067aa0ba902b7-01"},
        {"traceparent": f"00-{'0' * 32}-00f067aa0ba902b7-01"},
        {"traceparent": f"00-{TRACE_ID}-{'0' * 16}-01"},
    ],
    ids=["none", "garbage", "no-trace", "zero-trace", "w3c-garbage", "w3c-ff", "w3c-zero", "span0"],
)
def test_a_malformed_trace_header_is_ignored_and_the_error_still_logged(
    broken_container: Container, log_lines: io.StringIO, headers: dict[str, str]
) -> None:
    entry = _order_status_error(log_lines, **headers)

    assert TRACE_FIELD not in entry
    assert SPAN_FIELD not in entry
    assert "stack_trace" in entry


def test_the_license_api_logs_its_failures_with_traceback_and_trace(
    broken_container: Container, log_lines: io.StringIO
) -> None:
    client = functions_framework.create_app(target="license_api", source=SOURCE).test_client()
    response = client.post(
        "/validate",
        data=json.dumps({"key": "GENX-AAAA-BBBB-CCCC", "nonce": secrets.token_urlsafe(16)}),
        headers={
            "Content-Type": "application/json",
            "traceparent": f"00-{TRACE_ID}-00f067aa0ba902b7-01",
        },
    )

    assert response.status_code == 500
    [entry] = _entries(log_lines, "license.error")
    assert entry["severity"] == "ERROR"
    assert _PYTHON_TRACEBACK.search(entry["stack_trace"])
    assert entry[TRACE_FIELD] == f"projects/{PROJECT}/traces/{TRACE_ID}"
    assert entry[SOURCE_FIELD]["file"].endswith("commerce/licensing/endpoints.py")
    assert LEAKED_KEY not in log_lines.getvalue()


def _record(level: int, msg: str, exc_info: Any = None) -> logging.LogRecord:
    return logging.LogRecord("t", level, "/src/commerce/x.py", 42, msg, (), exc_info, "run")


def test_e_mail_addresses_leave_log_lines_but_redact_keeps_them() -> None:
    record = _record(logging.WARNING, f"bounce from {LEAKED_EMAIL}")
    record.reason = f"550 <{LEAKED_EMAIL}>: no such user"
    record.context_list = [f"to {LEAKED_EMAIL}"]
    entry = json.loads(JsonFormatter(PROJECT).format(record))

    assert entry["message"] == "bounce from [redacted]"
    assert entry["reason"] == "550 <[redacted]>: no such user"
    assert entry["context_list"] == ["to [redacted]"]
    # Audit entries and stored errors go through redact(), which leaves addresses alone.
    assert redact({"to": LEAKED_EMAIL}) == {"to": LEAKED_EMAIL}


def test_an_error_without_exception_is_reported_with_its_location() -> None:
    entry = json.loads(JsonFormatter(PROJECT).format(_record(logging.ERROR, "cannot sign")))

    assert entry["@type"] == REPORTED_ERROR_EVENT
    assert entry["context"]["reportLocation"] == {
        "filePath": "/src/commerce/x.py",
        "lineNumber": 42,
        "functionName": "x.run",
    }
    assert "stack_trace" not in entry


def test_an_info_line_is_not_an_error_event_and_has_no_stack_trace() -> None:
    entry = json.loads(JsonFormatter(PROJECT).format(_record(logging.INFO, "ok")))

    assert entry["severity"] == "INFO"
    assert "@type" not in entry
    assert "stack_trace" not in entry
    assert entry[SOURCE_FIELD] == {"file": "/src/commerce/x.py", "line": 42, "function": "run"}


def test_a_warning_with_an_exception_keeps_its_severity_and_its_traceback() -> None:
    try:
        raise ValueError(f"bad token {LEAKED_TOKEN}")
    except ValueError:
        record = _record(logging.WARNING, "retrying", sys.exc_info())
    entry = json.loads(JsonFormatter(PROJECT).format(record))

    assert entry["severity"] == "WARNING"
    assert entry["stack_trace"].endswith("ValueError: bad token [redacted]")
    assert LEAKED_TOKEN not in json.dumps(entry)


def test_cloud_trace_span_ids_are_converted_from_decimal_to_16_hex_digits() -> None:
    assert parse_cloud_trace_context(f"{TRACE_ID}/{2**64 - 1};o=0") == TraceContext(
        TRACE_ID, "ffffffffffffffff", False
    )
    # Out of uint64 range: the trace is kept, the span dropped.
    assert parse_cloud_trace_context(f"{TRACE_ID}/{2**64};o=1") == TraceContext(
        TRACE_ID, None, True
    )


def test_traceparent_of_a_later_version_may_carry_more_fields_version_00_may_not() -> None:
    assert parse_traceparent(f"01-{TRACE_ID}-00f067aa0ba902b7-01-extra") is not None
    assert parse_traceparent(f"00-{TRACE_ID}-00f067aa0ba902b7-01-extra") is None
    # W3C ids are lowercase; an uppercase one is malformed.
    assert parse_traceparent(f"00-{TRACE_ID.upper()}-00f067aa0ba902b7-01") is None


_HEX32 = re.compile(r"[0-9a-f]{32}")
_HEX16 = re.compile(r"[0-9a-f]{16}")


@given(traceparent=st.text(max_size=80), cloud=st.text(max_size=80))
def test_any_header_values_give_a_valid_trace_or_none_never_an_error(
    traceparent: str, cloud: str
) -> None:
    context = trace_from_headers({"traceparent": traceparent, "X-Cloud-Trace-Context": cloud})

    if context is not None:
        assert _HEX32.fullmatch(context.trace_id)
        assert context.trace_id != "0" * 32
        assert context.span_id is None or _HEX16.fullmatch(context.span_id)


@given(
    trace=st.from_regex(_HEX32, fullmatch=True).filter(lambda t: t != "0" * 32),
    span=st.integers(min_value=1, max_value=2**64 - 1),
    sampled=st.booleans(),
)
def test_both_header_forms_of_one_trace_give_the_same_context(
    trace: str, span: int, sampled: bool
) -> None:
    w3c = parse_traceparent(f"00-{trace}-{span:016x}-{int(sampled):02x}")
    google = parse_cloud_trace_context(f"{trace}/{span};o={int(sampled)}")

    assert w3c == google == TraceContext(trace, f"{span:016x}", sampled)
