"""The HTTP requests Google's platform sends to the shop, read from the Terraform tree.

Cloud Scheduler jobs and the Cloud Tasks queue are configured in HCL, and nothing on
the emulators runs them: a body the function refuses would fail only in the cloud.
This module turns the configuration into the requests Google sends, so tests can put
them through the target function's functions-framework test client
(tests/integration/test_scheduled_and_queued_calls.py) and check external targets against the
API they call (tests/infra/test_platform_calls.py):

- `scheduled_calls()`: one `PlatformCall` per Cloud Scheduler job (each `for_each`
  instance): `http_target`'s method, URI, headers and body, where the body is
  `base64encode(jsonencode(<object>))` evaluated like Terraform does (object keys
  sorted, compact JSON), then base64-decoded as the Scheduler API does before sending;
  plus the headers Cloud Scheduler itself sets (Google's HttpTarget reference:
  `User-Agent: Google-Cloud-Scheduler`, `X-CloudScheduler*`, and `Content-Type:
  application/octet-stream` for a body unless the job sets one).
- `queued_call(queue, task)`: a task as the application's code builds it
  (commerce.adapters.tasks_queue.CloudTasksEmailQueue.build_task) combined with the
  queue's `http_target` overrides (method, `uri_override` with enforce mode ALWAYS),
  plus the headers Cloud Tasks sets (`User-Agent: Google-Cloud-Tasks`, `X-CloudTasks-*`).

A target is a function of ours when its URI is a function's `uri` output
(`local.deployed[...]` or `module.<name>.uri`); anything else is an external API.
Expressions this module does not understand raise `UnsupportedExpression`, so a new
kind of job fails the tests instead of being skipped.
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import hcl2
from hcl2.utils import SerializationOptions

SHOP_MODULE = Path(__file__).resolve().parent / "terraform" / "modules" / "shop"

_OPTIONS = SerializationOptions(
    strip_string_quotes=True, with_comments=False, explicit_blocks=False
)
_BASE64_JSON = re.compile(r"^\$\{base64encode\(jsonencode\((?P<object>.*)\)\)\}$", re.DOTALL)
_REFERENCE = re.compile(r"\$\{(?P<expression>[^{}]*)\}")
_DEPLOYED_URI = re.compile(r'local\.deployed\[(?:each\.key|"(?P<name>[a-z_]+)")\]\.uri')
_MODULE_URI = re.compile(r"module\.(?P<module>[A-Za-z0-9_]+)\.uri")
_EACH_FOR_LOCAL = re.compile(r"^\$\{local\.(?P<name>[A-Za-z0-9_]+)\}$")

# Stand-ins for values only known after apply, e.g. the backups bucket's name. A
# reference that is not listed here stops the evaluation (UnsupportedExpression).
PLACEHOLDERS: Mapping[str, str] = {
    "var.project_id": "genx-prod",
    "var.region": "europe-west1",
    "google_storage_bucket.backups.name": "genx-prod-backups",
    "google_firestore_database.main.name": "(default)",
}


class UnsupportedExpression(ValueError):
    """An HCL expression the evaluator does not know; extend it rather than skip."""


@dataclass(frozen=True)
class PlatformCall:
    """One request as Google sends it. `target` is an entry point of functions/main.py,
    or None for an external API (`url` then names it)."""

    source: str
    target: str | None
    method: str
    url: str
    headers: Mapping[str, str]
    body: bytes
    auth: str  # "oidc" (Cloud Run checks the token) or "oauth" (Google APIs)
    auth_detail: Mapping[str, str] = field(default_factory=dict)

    @property
    def path(self) -> str:
        return urlsplit(self.url).path or "/"

    @property
    def query(self) -> str:
        return urlsplit(self.url).query


@dataclass(frozen=True)
class QueueTarget:
    """A Cloud Tasks queue's `http_target`: what it forces on every task it dispatches."""

    source: str
    queue_name: str
    target: str | None
    method: str | None
    uri_override: Mapping[str, str]
    header_overrides: Mapping[str, str]
    auth: str
    auth_detail: Mapping[str, str]


def function_url(entry_point: str) -> str:
    """A stand-in for a 2nd gen function's `uri` (its Cloud Run URL; no path)."""
    return f"https://shop-{entry_point.replace('_', '-')}-a1b2c3d4e5-ew.a.run.app"


# -- reading the module --------------------------------------------------------------


def _parse(path: Path) -> dict[str, Any]:
    parsed: dict[str, Any] = hcl2.loads(
        path.read_text(encoding="utf-8"), serialization_options=_OPTIONS
    )
    return parsed


def _module(directory: Path) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    """(locals, resources by type -> name -> body, modules by name -> body)."""
    local_values: dict[str, Any] = {}
    resources: dict[str, dict[str, Any]] = {}
    modules: dict[str, Any] = {}
    for path in sorted(directory.glob("*.tf")):
        parsed = _parse(path)
        for block in parsed.get("locals", []):
            local_values.update(block)
        for entry in parsed.get("resource", []):
            for type_name, named in entry.items():
                resources.setdefault(type_name, {}).update(named)
        for entry in parsed.get("module", []):
            modules.update(entry)
    return local_values, resources, modules


def _first(value: Any) -> Any:
    return value[0] if isinstance(value, list) and value else value


def _resolve_local(value: Any, local_values: Mapping[str, Any]) -> Any:
    if isinstance(value, str) and (match := _EACH_FOR_LOCAL.match(value)):
        name = match["name"]
        if name not in local_values:
            raise UnsupportedExpression(f"local.{name} is not defined in the module")
        return local_values[name]
    return value


def _target_of(
    uri: str, each_key: str | None, local_values: Mapping[str, Any], modules: Mapping[str, Any]
) -> str | None:
    """The entry point a URI expression names, or None when it is no function of ours."""
    if match := _DEPLOYED_URI.search(uri):
        if match["name"]:
            return match["name"]
        if each_key is None:
            raise UnsupportedExpression(f"{uri!r} uses each.key outside a for_each")
        return each_key
    if match := _MODULE_URI.search(uri):
        module = modules.get(match["module"])
        if module is None:
            raise UnsupportedExpression(f"module.{match['module']} is not declared")
        entry_point = _resolve_local(module.get("entry_point"), local_values)
        if not isinstance(entry_point, str) or "${" in entry_point:
            raise UnsupportedExpression(f"entry point of module.{match['module']}: {entry_point!r}")
        return entry_point
    if "${" in uri.split("://", 1)[-1].split("/", 1)[0]:
        raise UnsupportedExpression(f"cannot tell which host {uri!r} names")
    return None


def substitute(text: str, each_key: str | None = None) -> str:
    """Replace `${...}` references by their placeholders (each.key by the instance key)."""

    def replace(match: re.Match[str]) -> str:
        expression = match["expression"].strip()
        if expression == "each.key" and each_key is not None:
            return each_key
        if expression in PLACEHOLDERS:
            return PLACEHOLDERS[expression]
        raise UnsupportedExpression(f"no value for ${{{expression}}} in {text!r}")

    return _REFERENCE.sub(replace, text)


def _substitute_all(value: Any, each_key: str | None) -> Any:
    if isinstance(value, str):
        return substitute(value, each_key)
    if isinstance(value, list):
        return [_substitute_all(item, each_key) for item in value]
    if isinstance(value, dict):
        return {key: _substitute_all(item, each_key) for key, item in value.items()}
    return value


def jsonencode(value: Any) -> str:
    """Terraform's jsonencode: compact, object keys in lexical order, and <, >, & (and
    U+2028/U+2029) escaped as \\u sequences like Go's encoding/json."""
    text = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    for char, escape in (("<", "\\u003c"), (">", "\\u003e"), ("&", "\\u0026")):
        text = text.replace(char, escape)
    return text.replace("\u2028", "\\u2028").replace("\u2029", "\\u2029")


def evaluate_body(expression: Any, each_key: str | None = None) -> bytes:
    """The bytes a Scheduler job's `body` attribute makes Google send.

    `body` is bytes in the API, written base64 in Terraform; the only form used here
    is `base64encode(jsonencode({...}))`. None (no body) gives b"".
    """
    if expression is None:
        return b""
    if not isinstance(expression, str):
        raise UnsupportedExpression(f"body {expression!r}")
    match = _BASE64_JSON.match(expression.strip())
    if match is None:
        raise UnsupportedExpression(f"body {expression!r} is not base64encode(jsonencode(...))")
    parsed = hcl2.loads(f"value = {match['object']}\n", serialization_options=_OPTIONS)
    value = _substitute_all(parsed["value"], each_key)
    encoded = base64.b64encode(jsonencode(value).encode()).decode()  # base64encode(...)
    return base64.b64decode(encoded, validate=True)  # what the Scheduler API sends


def _headers(value: Any) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, dict) or any("${" in str(v) for v in value.values()):
        raise UnsupportedExpression(f"headers {value!r}")
    return {str(k): str(v) for k, v in value.items()}


def _auth(http_target: Mapping[str, Any]) -> tuple[str, dict[str, str]]:
    if "oidc_token" in http_target:
        return "oidc", {k: str(v) for k, v in _first(http_target["oidc_token"]).items()}
    if "oauth_token" in http_target:
        return "oauth", {k: str(v) for k, v in _first(http_target["oauth_token"]).items()}
    return "none", {}


def _has_header(headers: Mapping[str, str], name: str) -> bool:
    return any(key.lower() == name.lower() for key in headers)


# -- Cloud Scheduler -------------------------------------------------------------------


def scheduled_calls(directory: Path = SHOP_MODULE) -> list[PlatformCall]:
    """Every Cloud Scheduler job of the module, one call per for_each instance."""
    local_values, resources, modules = _module(directory)
    calls = []
    for name, body in sorted(resources.get("google_cloud_scheduler_job", {}).items()):
        for each_key in _instances(body, local_values):
            source = f"google_cloud_scheduler_job.{name}" + (f"[{each_key}]" if each_key else "")
            calls.append(_scheduler_call(source, body, each_key, local_values, modules))
    return calls


def _instances(body: Mapping[str, Any], local_values: Mapping[str, Any]) -> Iterator[str | None]:
    if "for_each" not in body:
        yield None
        return
    keys = _resolve_local(body["for_each"], local_values)
    if not isinstance(keys, dict):
        raise UnsupportedExpression(f"for_each {body['for_each']!r}")
    yield from sorted(keys)


def _scheduler_call(
    source: str,
    body: Mapping[str, Any],
    each_key: str | None,
    local_values: Mapping[str, Any],
    modules: Mapping[str, Any],
) -> PlatformCall:
    if "http_target" not in body:
        raise UnsupportedExpression(
            f"{source} has no http_target (Pub/Sub and App Engine targets are not modelled)"
        )
    http_target = _first(body["http_target"])
    uri = str(http_target["uri"])
    target = _target_of(uri, each_key, local_values, modules)
    if target is not None:
        url = _DEPLOYED_OR_MODULE.sub(lambda _: function_url(target), uri)
        url = substitute(url, each_key)
    else:
        url = substitute(uri, each_key)
    payload = evaluate_body(http_target.get("body"), each_key)
    headers = _headers(http_target.get("headers"))
    sent = {
        "User-Agent": "Google-Cloud-Scheduler",
        "X-CloudScheduler": "true",
        "X-CloudScheduler-JobName": f"projects/{PLACEHOLDERS['var.project_id']}/locations/"
        f"{PLACEHOLDERS['var.region']}/jobs/{source}",
        "X-CloudScheduler-ScheduleTime": "2026-12-01T16:00:00Z",
    }
    if payload and not _has_header(headers, "Content-Type"):
        sent["Content-Type"] = "application/octet-stream"
    sent.update(headers)
    auth, detail = _auth(http_target)
    return PlatformCall(
        source=source,
        target=target,
        method=str(http_target.get("http_method", "POST")).upper(),
        url=url,
        headers=sent,
        body=payload,
        auth=auth,
        auth_detail=detail,
    )


_DEPLOYED_OR_MODULE = re.compile(
    r'\$\{(?:local\.deployed\[(?:each\.key|"[a-z_]+")\]|module\.[A-Za-z0-9_]+)\.uri\}'
)


# -- Cloud Tasks -----------------------------------------------------------------------


def queue_targets(directory: Path = SHOP_MODULE) -> list[QueueTarget]:
    """Every Cloud Tasks queue of the module with the overrides of its http_target."""
    local_values, resources, modules = _module(directory)
    queues = []
    for name, body in sorted(resources.get("google_cloud_tasks_queue", {}).items()):
        http_target = _first(body.get("http_target")) or {}
        override = dict(_first(http_target.get("uri_override")) or {})
        host = str(override.get("host", ""))
        target = _target_of(host, None, local_values, modules) if host else None
        queue_name = _resolve_local(body.get("name"), local_values)
        headers: dict[str, str] = {}
        for entry in http_target.get("header_overrides", []):
            header = _first(entry.get("header"))
            headers[str(header["key"])] = str(header["value"])
        auth, detail = _auth(http_target)
        queues.append(
            QueueTarget(
                source=f"google_cloud_tasks_queue.{name}",
                queue_name=str(queue_name),
                target=target,
                method=http_target.get("http_method"),
                uri_override=override,
                header_overrides=headers,
                auth=auth,
                auth_detail=detail,
            )
        )
    return queues


def queued_call(queue: QueueTarget, task: Mapping[str, Any]) -> PlatformCall:
    """The request Cloud Tasks sends for `task` (as passed to create_task) on `queue`."""
    request = task["http_request"]
    scheme, host, path, query, _ = urlsplit(str(request["url"]))
    override = queue.uri_override
    enforce = override.get("uri_override_enforce_mode", "IF_NOT_EXISTS")
    if override and enforce == "ALWAYS":
        if queue.target is not None:
            host = urlsplit(function_url(queue.target)).netloc
        elif override.get("host"):
            host = substitute(str(override["host"]))
        scheme = str(override.get("scheme", scheme)).lower()
        if override.get("path_override"):
            path = str(_first(override["path_override"]).get("path", path))
        if override.get("query_override"):
            query = str(_first(override["query_override"]).get("query_params", query))
    elif override and enforce != "IF_NOT_EXISTS":
        raise UnsupportedExpression(f"uri_override_enforce_mode {enforce!r}")
    method = str(queue.method or request.get("http_method", "POST")).upper()
    body = request.get("body", b"")
    headers = dict(request.get("headers", {}))
    if body and not _has_header(headers, "Content-Type"):
        headers["Content-Type"] = "application/octet-stream"
    headers.update(queue.header_overrides)
    name = str(task.get("name", ""))
    headers.update(
        {
            "User-Agent": "Google-Cloud-Tasks",
            "X-CloudTasks-QueueName": queue.queue_name,
            "X-CloudTasks-TaskName": name.rsplit("/", 1)[-1],
            "X-CloudTasks-TaskRetryCount": "0",
            "X-CloudTasks-TaskExecutionCount": "0",
            "X-CloudTasks-TaskETA": "1764604800.0",
        }
    )
    if queue.auth != "none":
        auth, detail = queue.auth, dict(queue.auth_detail)
    elif "oidc_token" in request:
        auth, detail = "oidc", dict(request["oidc_token"])
    else:
        auth, detail = "none", {}
    return PlatformCall(
        source=queue.source,
        target=queue.target,
        method=method,
        url=urlunsplit((scheme, host, path or "/", query, "")),
        headers=headers,
        body=body if isinstance(body, bytes) else str(body).encode(),
        auth=auth,
        auth_detail=detail,
    )


# -- alerting on scheduled jobs ---------------------------------------------------------

_SCHEDULER_FAILURES = 'resource.type="cloud_scheduler_job" AND severity>=ERROR'
_SCHEDULED_SERVICES = (
    "${[for name in sort(keys(local.scheduled_functions)) : local.deployed[name].name]}"
)


def scheduled_job_alert_gaps(directory: Path = SHOP_MODULE) -> list[str]:
    """Why some scheduled job's failures would go unnoticed (empty: all are watched).

    Watched means both: (1) a log-based metric on the scheduler's own failed attempts
    with no job restriction, and an alert policy on it; (2) an alert on 4xx and 5xx
    answers of every function a scheduler job calls (the services listed from
    local.scheduled_functions, which every such job must iterate).
    """
    local_values, resources, _ = _module(directory)
    gaps = []
    metrics = resources.get("google_logging_metric", {})
    policies = resources.get("google_monitoring_alert_policy", {})
    policy_filters = {
        name: " ".join(
            str(_first(condition.get("condition_threshold", [{}])).get("filter", ""))
            for condition in policy.get("conditions", [])
        )
        for name, policy in policies.items()
    }
    failure_metrics = [
        name for name, body in metrics.items() if str(body.get("filter", "")) == _SCHEDULER_FAILURES
    ]
    if not failure_metrics:
        gaps.append(
            f"no google_logging_metric with filter exactly {_SCHEDULER_FAILURES!r} "
            "(failed attempts of every job, no job restriction)"
        )
    for metric in failure_metrics:
        if not any(
            f"google_logging_metric.{metric}.name" in text for text in policy_filters.values()
        ):
            gaps.append(f"no alert policy watches google_logging_metric.{metric}")
    if local_values.get("scheduled_services") != _SCHEDULED_SERVICES:
        gaps.append(f"local.scheduled_services must be {_SCHEDULED_SERVICES}")
    answers = [
        text
        for text in policy_filters.values()
        if "run.googleapis.com/request_count" in text and "local.scheduled_services" in text
    ]
    if not any('response_code_class=one_of("4xx","5xx")' in text for text in answers):
        gaps.append("no alert on 4xx and 5xx answers of local.scheduled_services")
    for name, body in sorted(resources.get("google_cloud_scheduler_job", {}).items()):
        http_target = _first(body.get("http_target")) or {}
        calls_function = _DEPLOYED_URI.search(
            str(http_target.get("uri", ""))
        ) or _MODULE_URI.search(str(http_target.get("uri", "")))
        if calls_function and body.get("for_each") != "${local.scheduled_functions}":
            gaps.append(
                f"google_cloud_scheduler_job.{name} calls a function but does not iterate "
                "local.scheduled_functions, so the 4xx/5xx alert does not list its service"
            )
    return gaps
