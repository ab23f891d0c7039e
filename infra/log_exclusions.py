"""Which request log entries the project's log exclusions drop (offline).

Two platform logs record full URLs (path, query string) and the Referer:

- the external Application Load Balancer's request log: `resource.type =
  "http_load_balancer"`, log `requests`, fields `httpRequest.requestUrl` and
  `httpRequest.referer`; written for every backend service with logging on and for
  every backend bucket (always on for buckets);
- Cloud Run's request log, which 2nd gen functions write: `resource.type =
  "cloud_run_revision"`, log `run.googleapis.com/requests`, the same `httpRequest`
  fields.

A download link carries its token in the path (`/d/<token>`), the success page and
the order-status poll carry the Checkout Session id in the query (`?session_id=`).
The shop's `google_logging_project_exclusion`s drop those entries from the `_Default`
sink, so they are never stored. This module evaluates the exclusion filters found in
the Terraform tree against log entries shaped like Google's, with a small evaluator for
the part of the Logging query language the filters use (AND, OR, NOT, parentheses,
`field = "v"`, `field : "v"` (has: substring, case-insensitive), `log_id("name")`);
anything else raises `UnsupportedQuery`, so a new filter cannot pass untested.
Precedence as documented for Cloud Logging: NOT, then OR, then AND
(`a OR b AND c` is `(a OR b) AND c`).
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

import hcl2
from hcl2.utils import SerializationOptions

TERRAFORM_ROOT = Path(__file__).resolve().parent / "terraform"
SHOP_MODULE = TERRAFORM_ROOT / "modules" / "shop"
PROJECT = "genx-prod"

_OPTIONS = SerializationOptions(
    strip_string_quotes=True, with_comments=False, explicit_blocks=False
)
_TOKEN = re.compile(
    r'\s*(?:(?P<string>"(?:[^"\\]|\\.)*")|(?P<paren>[()])|(?P<op>>=|<=|!=|=~|!~|[=:<>])'
    r"|(?P<word>[A-Za-z_@][A-Za-z0-9_.@/%-]*))"
)
_REFERENCE = re.compile(r"\$\{(?P<expression>[^{}]*)\}")


class UnsupportedQuery(ValueError):
    """Query syntax the evaluator does not implement."""


# -- the query evaluator ---------------------------------------------------------------


def _tokens(query: str) -> list[tuple[str, str]]:
    found, position = [], 0
    while position < len(query):
        if query[position:].strip() == "":
            break
        match = _TOKEN.match(query, position)
        if match is None:
            raise UnsupportedQuery(f"cannot read {query[position:]!r}")
        kind = match.lastgroup
        assert kind is not None
        found.append((kind, match[kind]))
        position = match.end()
    return found


def _field(entry: Mapping[str, Any], path: str) -> Any:
    value: Any = entry
    for part in path.split("."):
        if not isinstance(value, Mapping) or part not in value:
            return None
        value = value[part]
    return value


def _unquote(text: str) -> str:
    return re.sub(r"\\(.)", r"\1", text[1:-1])


class _Parser:
    def __init__(self, query: str, entry: Mapping[str, Any]) -> None:
        self.tokens = _tokens(query)
        self.position = 0
        self.entry = entry

    def peek(self) -> tuple[str, str] | None:
        return self.tokens[self.position] if self.position < len(self.tokens) else None

    def take(self) -> tuple[str, str]:
        token = self.peek()
        if token is None:
            raise UnsupportedQuery("unexpected end of query")
        self.position += 1
        return token

    def query(self) -> bool:
        result = self.conjunction()
        if self.peek() is not None:
            raise UnsupportedQuery(f"unexpected {self.peek()}")
        return result

    def conjunction(self) -> bool:  # AND (also implicit) binds loosest
        results = [self.disjunction()]
        while (token := self.peek()) is not None and token != ("paren", ")"):
            if token == ("word", "AND"):
                self.take()
            results.append(self.disjunction())
        return all(results)

    def disjunction(self) -> bool:
        results = [self.negation()]
        while self.peek() == ("word", "OR"):
            self.take()
            results.append(self.negation())
        return any(results)

    def negation(self) -> bool:
        if self.peek() == ("word", "NOT"):
            self.take()
            return not self.negation()
        return self.comparison()

    def comparison(self) -> bool:
        kind, text = self.take()
        if (kind, text) == ("paren", "("):
            result = self.conjunction()
            if self.take() != ("paren", ")"):
                raise UnsupportedQuery("unbalanced parentheses")
            return result
        if kind != "word" or text in ("AND", "OR", "NOT"):
            raise UnsupportedQuery(f"expected a field, got {text!r}")
        if text == "log_id":
            if self.take() != ("paren", "("):
                raise UnsupportedQuery("log_id needs (")
            kind, name = self.take()
            if kind != "string" or self.take() != ("paren", ")"):
                raise UnsupportedQuery("log_id takes one string")
            log_name = str(self.entry.get("logName", ""))
            return log_name.endswith("/logs/" + quote(_unquote(name), safe=""))
        op_kind, op = self.take()
        value_kind, raw = self.take()
        if op_kind != "op" or op not in ("=", ":") or value_kind != "string":
            raise UnsupportedQuery(f"{text} {op} {raw}: only = and : with a quoted value")
        actual = _field(self.entry, text)
        if actual is None:
            return False
        wanted = _unquote(raw).lower()
        have = str(actual).lower()
        return have == wanted if op == "=" else wanted in have


def matches(query: str, entry: Mapping[str, Any]) -> bool:
    """Whether Cloud Logging's query `query` selects the LogEntry `entry` (a dict)."""
    return _Parser(query, entry).query()


# -- log entries shaped like Google's -------------------------------------------------


def load_balancer_entry(url: str, referer: str | None = None, status: int = 200) -> dict[str, Any]:
    """A request log entry of the external Application Load Balancer."""
    request: dict[str, Any] = {
        "requestMethod": "GET",
        "requestUrl": url,
        "status": status,
        "remoteIp": "198.51.100.23",
        "userAgent": "Mozilla/5.0",
        "serverIp": "10.128.0.2",
    }
    if referer:
        request["referer"] = referer
    return {
        "logName": f"projects/{PROJECT}/logs/requests",
        "resource": {
            "type": "http_load_balancer",
            "labels": {"project_id": PROJECT, "forwarding_rule_name": "shop-https"},
        },
        "httpRequest": request,
        "jsonPayload": {
            "@type": "type.googleapis.com/google.cloud.loadbalancing.type.LoadBalancerLogEntry",
            "statusDetails": "response_sent_by_backend",
        },
        "severity": "INFO",
    }


def cloud_run_entry(
    service: str, url: str, referer: str | None = None, status: int = 200
) -> dict[str, Any]:
    """A request log entry Cloud Run writes for a function's service."""
    request: dict[str, Any] = {
        "requestMethod": "GET",
        "requestUrl": url,
        "status": status,
        "remoteIp": "198.51.100.23",
        "userAgent": "Mozilla/5.0",
        "protocol": "HTTP/1.1",
    }
    if referer:
        request["referer"] = referer
    return {
        "logName": f"projects/{PROJECT}/logs/run.googleapis.com%2Frequests",
        "resource": {
            "type": "cloud_run_revision",
            "labels": {"project_id": PROJECT, "service_name": service, "location": "europe-west1"},
        },
        "httpRequest": request,
        "severity": "INFO",
    }


# -- the Terraform side --------------------------------------------------------------


@dataclass(frozen=True)
class Exclusion:
    source: str
    filter: str
    disabled: bool


def _parse_module(directory: Path) -> tuple[dict[str, Any], dict[str, dict[str, Any]]]:
    local_values: dict[str, Any] = {}
    resources: dict[str, dict[str, Any]] = {}
    for path in sorted(directory.glob("*.tf")):
        parsed = hcl2.loads(path.read_text(encoding="utf-8"), serialization_options=_OPTIONS)
        for block in parsed.get("locals", []):
            local_values.update(block)
        for entry in parsed.get("resource", []):
            for type_name, named in entry.items():
                resources.setdefault(type_name, {}).update(named)
    return local_values, resources


def _interpolate(text: str, local_values: Mapping[str, Any], each: tuple[str, Any] | None) -> str:
    def replace(match: re.Match[str]) -> str:
        expression = match["expression"].strip()
        if expression == "each.value" and each is not None and isinstance(each[1], str):
            return each[1]
        if expression == "each.key" and each is not None:
            return each[0]
        if expression.startswith("local.") and isinstance(local_values.get(expression[6:]), str):
            return _interpolate(local_values[expression[6:]], local_values, each)
        if expression == "var.name_prefix":
            return "shop"
        raise UnsupportedQuery(f"cannot evaluate ${{{expression}}} in {text!r}")

    return _REFERENCE.sub(replace, text)


def _instances(
    body: Mapping[str, Any], local_values: Mapping[str, Any]
) -> Iterator[tuple[str, Any] | None]:
    each = body.get("for_each")
    if each is None:
        yield None
        return
    match = re.fullmatch(r"\$\{local\.([A-Za-z0-9_]+)\}", str(each))
    values = local_values.get(match[1]) if match else None
    if not isinstance(values, dict):
        raise UnsupportedQuery(f"for_each {each!r}")
    yield from sorted(values.items())


def project_exclusions(directory: Path = SHOP_MODULE) -> list[Exclusion]:
    """Every google_logging_project_exclusion of the module, filters evaluated."""
    local_values, resources = _parse_module(directory)
    found = []
    for name, body in sorted(resources.get("google_logging_project_exclusion", {}).items()):
        for each in _instances(body, local_values):
            source = f"google_logging_project_exclusion.{name}" + (f"[{each[0]}]" if each else "")
            found.append(
                Exclusion(
                    source,
                    _interpolate(str(body["filter"]), local_values, each),
                    body.get("disabled") is True,
                )
            )
    return found


def other_sinks(root: Path = TERRAFORM_ROOT) -> list[str]:
    """Sinks declared anywhere in the tree (they bypass the _Default sink's exclusions)."""
    sinks = []
    for path in sorted(root.rglob("*.tf")):
        parsed = hcl2.loads(path.read_text(encoding="utf-8"), serialization_options=_OPTIONS)
        for entry in parsed.get("resource", []):
            for type_name, named in entry.items():
                if type_name.startswith("google_logging_") and type_name.endswith("_sink"):
                    sinks += [f"{path.relative_to(root)}: {type_name}.{name}" for name in named]
    return sinks


def excluded_by(entry: Mapping[str, Any], exclusions: list[Exclusion]) -> list[str]:
    return [e.source for e in exclusions if not e.disabled and matches(e.filter, entry)]


def path_rules(directory: Path = SHOP_MODULE) -> dict[str, list[str]]:
    """Entry point -> the URL map path rules the load balancer routes to it."""
    local_values, _ = _parse_module(directory)
    functions = local_values.get("functions", {})
    return {
        name: list(spec.get("path_rules", []))
        for name, spec in functions.items()
        if spec.get("public") is True
    }


def route(url: str, rules: Mapping[str, list[str]]) -> str | None:
    """The function the URL map sends `url` to (None: the storefront bucket). Path
    rules match the whole path, `/*` a prefix, as Google's URL maps do."""
    path = urlsplit(url).path or "/"
    for name, patterns in rules.items():
        for pattern in patterns:
            if pattern.endswith("/*"):
                if path.startswith(pattern[:-1]) or path == pattern[:-2]:
                    return name
            elif path == pattern:
                return name
    return None


def usage_logged_public_buckets(directory: Path = SHOP_MODULE) -> list[str]:
    """Buckets the load balancer serves (backend buckets) that write usage logs.

    Cloud Storage usage logs are objects in a bucket, out of reach of log exclusions,
    and record each request's URI with its query string and Referer (`cs_uri`,
    `cs_referer`): for the storefront that would store the success page's session id.
    """
    _, resources = _parse_module(directory)
    served = {
        match[1]
        for backend in resources.get("google_compute_backend_bucket", {}).values()
        if (
            match := re.search(
                r"google_storage_bucket\.([A-Za-z0-9_]+)\.", str(backend.get("bucket_name"))
            )
        )
    }
    buckets = resources.get("google_storage_bucket", {})
    return sorted(name for name in served if "logging" in buckets.get(name, {}))
