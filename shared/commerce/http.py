"""HTTP plumbing shared by the thin entry points in functions/main.py.

`endpoint(...)` wraps a Flask view: method check, body-size limit, CORS for the
storefront's origins, the request's trace for logs, and the one error renderer. `parse_body`
reads JSON (strict and bounded, `commerce.strict_json`) or an urlencoded form (UTF-8
only) into a pydantic model; every refusal is a 4xx with a stable code. Expected
failures (CommerceError) become `{"error": code, "detail": text}` with their status;
anything else is logged (redacted) and answered with a plain 500 body, never a
traceback.
"""

from __future__ import annotations

import functools
import json
import urllib.parse
from collections.abc import Callable, Collection, Mapping
from typing import Any, TypeVar

import flask
from pydantic import BaseModel, ValidationError
from werkzeug.routing import PathConverter

from commerce import startup, strict_json
from commerce.deadlines import request_budget
from commerce.errors import (
    CommerceError,
    InternalError,
    InvalidEncoding,
    InvalidRequest,
    MethodNotAllowed,
    OriginNotAllowed,
    PayloadTooLarge,
    UnsupportedMediaType,
    render,
)
from commerce.logs import get_logger, set_trace_from_headers

M = TypeVar("M", bound=BaseModel)
View = Callable[[flask.Request], flask.Response]
DEFAULT_MAX_BODY = 16 * 1024
FORM_TYPE = "application/x-www-form-urlencoded"  # what an HTML form posts; no multipart
MAX_FORM_FIELDS = 32
_log = get_logger("commerce.http")


class _AnyPath(PathConverter):
    """werkzeug's `path` converter, also across a (percent-encoded) newline."""

    regex = "[^/](?s:.)*?"


def route_every_path_to_the_function() -> None:
    """Let every path reach the function, so every answer is ours (JSON, signed).

    functions-framework mounts an HTTP function at `/` and `/<path:path>`, and werkzeug's
    router then answered some paths itself before any function ran: a path holding a
    percent-encoded newline with an HTML 404 (unsigned, for the license API), and an
    empty path with a 308 redirect (a 500 when the query string holds a character that
    cannot go into a Location header). Slashes are not merged either, so no path is
    redirected. functions-framework executes functions/main.py inside its new app's context and
    only then adds its rules, so this, called at import there, changes how those rules
    match. Outside such a context (a plain import) it does nothing.
    """
    if not flask.has_app_context():
        return
    url_map = flask.current_app.url_map
    url_map.merge_slashes = False
    url_map.strict_slashes = False
    url_map.converters["path"] = _AnyPath


def json_response(
    body: Any, status: int = 200, headers: Mapping[str, str] | None = None
) -> flask.Response:
    response = flask.Response(
        json.dumps(body, separators=(",", ":"), default=str),
        status=status,
        mimetype="application/json",
    )
    response.headers["Cache-Control"] = "no-store"
    for name, value in (headers or {}).items():
        response.headers[name] = value
    return response


def error_response(error: CommerceError) -> flask.Response:
    body, status, headers = render(error)
    return json_response(body, status, headers)


def _apply_cors(response: flask.Response, origin: str | None, allowed: Collection[str]) -> None:
    if origin and origin.rstrip("/") in allowed:
        response.headers["Access-Control-Allow-Origin"] = origin
        response.headers["Vary"] = "Origin"
        response.headers["Access-Control-Allow-Methods"] = "GET, POST, OPTIONS"
        response.headers["Access-Control-Allow-Headers"] = "Content-Type"
        response.headers["Access-Control-Max-Age"] = "600"


def endpoint(
    *,
    methods: Collection[str],
    max_body: int = DEFAULT_MAX_BODY,
    cors_origins: Callable[[], Collection[str]] | None = None,
    budget: Callable[[], float | None] | None = None,
) -> Callable[[View], View]:
    """`budget` gives the seconds every Firestore call of the request must finish within
    (commerce.deadlines); without it, the library's own deadlines apply."""
    allowed_methods = {m.upper() for m in methods}

    def decorate(view: View) -> View:
        @functools.wraps(view)
        def entry(request: flask.Request) -> flask.Response:
            try:
                return wrapper(request)
            finally:
                startup.resume()  # the instance's first answer ends its cold start

        def wrapper(request: flask.Request) -> flask.Response:
            set_trace_from_headers(request.headers)
            origin = request.headers.get("Origin")
            allowed_origins: Collection[str] = ()
            try:
                if cors_origins is not None:
                    allowed_origins = cors_origins()
                    if request.method == "OPTIONS":
                        if not origin or origin.rstrip("/") not in allowed_origins:
                            raise OriginNotAllowed()
                        preflight = flask.Response(status=204)
                        _apply_cors(preflight, origin, allowed_origins)
                        return preflight
                if request.method not in allowed_methods:
                    raise MethodNotAllowed(headers={"Allow": ", ".join(sorted(allowed_methods))})
                length = request.content_length
                if length is not None and length > max_body:
                    raise PayloadTooLarge()
                with request_budget(budget() if budget is not None else None):
                    response = view(request)
            except CommerceError as error:
                level = 40 if error.status >= 500 else 20
                _log.log(
                    level,
                    "request refused: %s",
                    error.code,
                    extra={
                        "event": "http.refused",
                        "code": error.code,
                        "status": error.status,
                        "path": request.path,
                    },
                )
                response = error_response(error)
            except Exception:
                _log.exception(
                    "unhandled error", extra={"event": "http.error", "path": request.path}
                )
                response = error_response(InternalError())
            if cors_origins is not None:
                _apply_cors(response, origin, allowed_origins)
            return response

        return entry

    return decorate


def read_body(request: flask.Request, max_body: int = DEFAULT_MAX_BODY) -> bytes:
    """The raw body (cached, so signature checks and parsing see the same bytes)."""
    if request.content_length is not None and request.content_length > max_body:
        raise PayloadTooLarge()
    data = request.get_data(cache=True)
    if len(data) > max_body:
        raise PayloadTooLarge()
    return data


def parse_body(request: flask.Request, model: type[M], max_body: int = DEFAULT_MAX_BODY) -> M:
    """JSON or form body -> validated model (unknown fields refused: set extra='forbid').

    Both are read from the size-checked raw bytes and parsed strictly: JSON by
    `commerce.strict_json` (bounded depth and number length, UTF-8 only), forms by
    `parse_form` (UTF-8 only, bounded field count). Every refusal is a 4xx with a
    stable code.
    """
    content_type = (request.mimetype or "").lower()
    if content_type == FORM_TYPE:
        raw: Any = parse_form(read_body(request, max_body))
    elif content_type == "application/json" or content_type == "":
        raw = parse_json(read_body(request, max_body), allow_empty=True)
    else:
        raise UnsupportedMediaType()
    return validate(model, raw)


def parse_json(body: bytes, *, allow_empty: bool = False) -> dict[str, Any]:
    """A JSON object from `body` (strict and bounded; see commerce.strict_json)."""
    if allow_empty and not body.strip():
        return {}
    raw = strict_json.loads(body)
    if not isinstance(raw, dict):
        raise InvalidRequest("The body must be a JSON object.")
    return raw


def parse_form(body: bytes) -> dict[str, str]:
    """An `application/x-www-form-urlencoded` body -> its non-empty fields (first wins).

    Werkzeug's form parser replaces or drops what is not UTF-8 without saying so; here
    it is refused, percent-encoded or not (a percent-encoded lone surrogate included).
    """
    try:
        pairs = urllib.parse.parse_qsl(
            body.decode("utf-8"),
            keep_blank_values=True,
            encoding="utf-8",
            errors="strict",
            max_num_fields=MAX_FORM_FIELDS,
        )
    except UnicodeDecodeError:
        raise InvalidEncoding("The form is not valid UTF-8.") from None
    except ValueError:
        raise InvalidRequest("The form has too many fields.") from None
    fields: dict[str, str] = {}
    for key, value in pairs:
        if value != "":
            fields.setdefault(key, value)
    return fields


def validate(model: type[M], raw: Mapping[str, Any]) -> M:
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"])[:64] or "body"  # keys are input
        raise InvalidRequest(f"{where}: {first['msg']}") from None


def wants_html(request: flask.Request) -> bool:
    best = request.accept_mimetypes.best_match(["application/json", "text/html"])
    return best == "text/html"


def is_form_post(request: flask.Request) -> bool:
    return (request.mimetype or "").lower() == FORM_TYPE
