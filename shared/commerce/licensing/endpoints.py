"""HTTP adapter of the license API (one Cloud Function, `license_api`, routed by path).

POST JSON to `/validate`, `/activate`, `/deactivate`, `/certificate` or `/updates`.
Every answer is JSON `{"status": CODE, "nonce": <echo>, "time": <unix seconds>,
"request": {operation, key_sha256, fingerprint_sha256, certificate_sha256}, ...}` signed
with Ed25519 over the exact body bytes (`X-GENX-Signature`, base64url) and naming the
key (`X-GENX-Key-Id`), errors included: the `request` object binds the answer to the
call it answers (docs/license-format.md), so a relayed answer for another machine,
key or operation is refused by the plugin. The nonce is required and echoed only once
it is well-formed. License verdicts are HTTP 200 (the plugin reads `status`);
RATE_LIMITED is 429 with Retry-After; malformed requests are 4xx INVALID_REQUEST with
a stable `error` code; UNAVAILABLE is 503 (unsigned if the signing key itself is
missing).
See docs/license-api.openapi.yaml.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

import flask
from pydantic import BaseModel, ValidationError

from commerce.domain.network import client_address, network_prefix
from commerce.errors import (
    CommerceError,
    InternalError,
    InvalidRequest,
    MethodNotAllowed,
    NotFound,
    PayloadTooLarge,
    RateLimited,
    UnsupportedMediaType,
    render,
)
from commerce.http import read_body
from commerce.licensing.certificates import signer_key_id
from commerce.licensing.schemas import (
    ActivateRequest,
    Answer,
    CertificateRequest,
    DeactivateRequest,
    LicenseRequest,
    StatusCode,
    UpdatesRequest,
    ValidateRequest,
)
from commerce.licensing.verifier import (
    KEY_ID_HEADER,
    SIGNATURE_HEADER,
    fingerprint_sha256,
    is_valid_nonce,
    key_sha256,
    text_sha256,
)
from commerce.logs import get_logger, set_trace_from_headers

if TYPE_CHECKING:
    from commerce.bootstrap import Container
    from commerce.licensing.service import LicenseService

M = TypeVar("M", bound=BaseModel)
MAX_BODY = 8 * 1024
_log = get_logger("commerce.licensing.http")

Operation = Callable[["LicenseService", Any, str], Answer]
ROUTES: dict[str, tuple[type[LicenseRequest], Operation]] = {
    "validate": (ValidateRequest, lambda s, r, n: s.validate(r, n)),
    "activate": (ActivateRequest, lambda s, r, n: s.activate(r, n)),
    "deactivate": (DeactivateRequest, lambda s, r, n: s.deactivate(r, n)),
    "certificate": (CertificateRequest, lambda s, r, n: s.certificate(r, n)),
    "updates": (UpdatesRequest, lambda s, r, n: s.updates(r, n)),
}

DETAILS: dict[StatusCode, str] = {
    StatusCode.NOT_FOUND: "No license has this key.",
    StatusCode.REVOKED: "This license has been revoked.",
    StatusCode.REFUNDED: "This purchase was refunded; the license is no longer valid.",
    StatusCode.DISPUTED: "This license is suspended while a payment dispute is open.",
    StatusCode.NO_ACTIVATION: "This machine is not activated for the license.",
    StatusCode.TOO_MANY_ACTIVATIONS: (
        "The license is active on the maximum number of machines; deactivate one first."
    ),
    StatusCode.FINGERPRINT_MISMATCH: "The certificate or activation belongs to another machine.",
    StatusCode.INVALID_KEY: "This is not a valid license key (check for typos).",
    StatusCode.CHANNEL_NOT_ALLOWED: (
        "This license gets updates from its own channel only (beta by opt-in through support)."
    ),
}


class InvalidJson(InvalidRequest):
    code = "invalid_json"
    default_detail = "The body is not a JSON object."


class InvalidText(InvalidRequest):
    code = "invalid_text"
    default_detail = "The body contains text that is not valid Unicode (a lone surrogate)."


class NonceRequired(InvalidRequest):
    code = "nonce_required"
    default_detail = "Send a fresh random nonce (16 to 128 base64url characters) with every call."


class InvalidNonce(InvalidRequest):
    code = "invalid_nonce"
    default_detail = "The nonce must be 16 to 128 base64url characters (A-Z a-z 0-9 _ -)."


@dataclass
class _Call:
    """What is known of the request so far: it decides what the answer echoes and binds."""

    operation: str | None = None
    nonce: str | None = None
    raw: dict[str, Any] | None = None

    def binding(self) -> dict[str, str | None]:
        """The signed `request` object (docs/license-format.md): hashes of what was sent,
        never the values; a field not (yet) known to be well-formed text is null."""

        def text(name: str) -> str | None:
            value = self.raw.get(name) if self.raw is not None else None
            return value if isinstance(value, str) and _encodable(value) else None

        key, fingerprint, certificate = text("key"), text("fingerprint"), text("certificate")
        return {
            "operation": self.operation,
            "key_sha256": (
                key_sha256(key, self.nonce) if key is not None and self.nonce is not None else None
            ),
            "fingerprint_sha256": (
                fingerprint_sha256(fingerprint) if fingerprint is not None else None
            ),
            "certificate_sha256": text_sha256(certificate) if certificate is not None else None,
        }


def handle(request: flask.Request, container: Container) -> flask.Response:
    """Route, parse, call the service, sign. Never a traceback, never an unsigned answer
    while the signing key is there; the nonce is echoed only once it is known good."""
    set_trace_from_headers(request.headers)
    call = _Call()
    try:
        if request.method != "POST":
            raise MethodNotAllowed(headers={"Allow": "POST"})
        name = request.path.rstrip("/").rsplit("/", 1)[-1]
        route = ROUTES.get(name)
        if route is None:
            raise NotFound("Unknown license API path.")
        call.operation = name
        model, operation = route
        raw = _json_object(request)
        call.nonce = _nonce(raw)
        call.raw = raw
        parsed = _validate(model, raw)
        settings = container.settings
        network = network_prefix(
            client_address(
                request.headers.get("X-Forwarded-For"),
                request.remote_addr,
                settings.trusted_proxy_hops,
            )
        )
        answer = operation(container.license_service, parsed, network)
    except CommerceError as error:
        answer = _error_answer(error)
    except Exception:
        _log.exception("license API failed", extra={"event": "license.error"})
        answer = _INTERNAL
    return signed_response(answer, call, container)


def _json_object(request: flask.Request) -> dict[str, Any]:
    """The body as a JSON object of UTF-8-encodable text (so nothing that is hashed,
    stored or echoed later can fail to encode)."""
    if (request.mimetype or "application/json").lower() != "application/json":
        raise UnsupportedMediaType("The body must be JSON.")
    if request.content_length is not None and request.content_length > MAX_BODY:
        raise PayloadTooLarge()
    body = read_body(request, MAX_BODY)
    try:
        raw = json.loads(body)
    except (UnicodeDecodeError, ValueError, RecursionError):
        # ValueError covers bad JSON and integers beyond Python's int-string limit;
        # RecursionError deep nesting (the 8 KiB cap bounds the work either way).
        raise InvalidJson("The body is not valid JSON.") from None
    if not isinstance(raw, dict):
        raise InvalidJson("The body must be a JSON object.")
    for name, value in raw.items():
        if not _encodable(name) or (isinstance(value, str) and not _encodable(value)):
            raise InvalidText()
    return raw


def _encodable(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _nonce(raw: dict[str, Any]) -> str:
    """The request's nonce, checked before anything echoes it."""
    if "nonce" not in raw or raw["nonce"] is None:
        raise NonceRequired()
    nonce = raw["nonce"]
    if not is_valid_nonce(nonce):
        raise InvalidNonce()
    assert isinstance(nonce, str)
    return nonce


def _validate(model: type[M], raw: dict[str, Any]) -> M:
    """The request model, or INVALID_REQUEST naming a known field (never echoing an
    unknown field's name or any value)."""
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        loc = first["loc"]
        field = str(loc[0]) if loc else ""
        if first["type"] == "extra_forbidden":
            raise InvalidRequest("The body has a field this operation does not take.") from None
        where = field if field in model.model_fields else "body"
        raise InvalidRequest(f"{where}: {first['msg']}") from None


def _error_answer(error: CommerceError) -> Answer:
    """What every function answers for the error (`commerce.errors.render`, the one
    renderer), as a license answer: a status code for the plugin beside `error` and
    `detail`, then signed and bound like any other answer."""
    body, http_status, headers = render(error)
    if isinstance(error, RateLimited):
        status = StatusCode.RATE_LIMITED
        body = {**body, "retry_after": error.retry_after_seconds}
    elif http_status >= 500:
        status = StatusCode.UNAVAILABLE
    else:
        status = StatusCode.INVALID_REQUEST
    return Answer(status, body, http_status=http_status, headers=headers)


_INTERNAL = _error_answer(InternalError())


def response_body(answer: Answer, call: _Call, now: int) -> bytes:
    """The exact bytes that are sent and signed (compact JSON, keys sorted)."""
    body: dict[str, Any] = {
        "status": answer.status.value,
        "nonce": call.nonce,
        "time": now,
        "request": call.binding(),
    }
    if answer.status in DETAILS and "detail" not in answer.fields:
        body["detail"] = DETAILS[answer.status]
    body.update(answer.fields)
    return json.dumps(body, separators=(",", ":"), sort_keys=True, ensure_ascii=False).encode()


def signed_response(answer: Answer, call: _Call, container: Container) -> flask.Response:
    now = int(container.clock.now().timestamp())
    try:
        body = response_body(answer, call, now)
    except (UnicodeEncodeError, TypeError, ValueError):  # a value that cannot be sent
        _log.exception("license answer cannot be encoded", extra={"event": "license.error"})
        answer, call = _INTERNAL, _Call(call.operation, call.nonce)
        body = response_body(answer, call, now)
    headers = {"Cache-Control": "no-store", **answer.headers}
    status = answer.http_status
    try:
        signer = container.signer
        headers[SIGNATURE_HEADER] = signer.sign(body)
        headers[KEY_ID_HEADER] = signer_key_id(signer)
    except CommerceError as error:  # no signing key: fail closed, say so unsigned
        _log.error("license answers cannot be signed: %s", error.code)
        body = response_body(_error_answer(error), call, now)
        status = error.status
        headers = {"Cache-Control": "no-store"}
    response = flask.Response(body, status=status, mimetype="application/json")
    for name, value in headers.items():
        response.headers[name] = value
    return response
