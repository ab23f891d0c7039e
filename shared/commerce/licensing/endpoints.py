"""HTTP adapter of the license API (one Cloud Function, `license_api`, routed by path).

POST JSON to `/validate`, `/activate`, `/deactivate`, `/certificate` or `/updates`.
Every answer is JSON `{"status": CODE, "nonce": <echo>, "time": <unix seconds>, ...}`
signed with Ed25519 over the exact body bytes (`X-GENX-Signature`, base64url) and
naming the key (`X-GENX-Key-Id`), errors included. License verdicts are HTTP 200 (the
plugin reads `status`); RATE_LIMITED is 429 with Retry-After; malformed requests are
4xx INVALID_REQUEST; UNAVAILABLE is 503 (unsigned if the signing key itself is missing).
See docs/license-api.openapi.yaml.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import flask

from commerce.domain.network import client_address, network_prefix
from commerce.errors import (
    CommerceError,
    InvalidRequest,
    MethodNotAllowed,
    NotFound,
    PayloadTooLarge,
    RateLimited,
    UnsupportedMediaType,
)
from commerce.http import read_body, validate
from commerce.licensing.models import (
    ActivateRequest,
    Answer,
    CertificateRequest,
    DeactivateRequest,
    LicenseRequest,
    StatusCode,
    UpdatesRequest,
    ValidateRequest,
)
from commerce.licensing.verifier import KEY_ID_HEADER, SIGNATURE_HEADER, key_id
from commerce.logs import get_logger
from commerce.signing import unb64url

if TYPE_CHECKING:
    from commerce.bootstrap import Container
    from commerce.licensing.service import LicenseService

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
}


def handle(request: flask.Request, container: Container) -> flask.Response:
    """Route, parse, call the service, sign. Never a traceback, never an unsigned 2xx."""
    nonce: str | None = None
    try:
        if request.method != "POST":
            raise MethodNotAllowed(headers={"Allow": "POST"})
        route = ROUTES.get(request.path.rstrip("/").rsplit("/", 1)[-1])
        if route is None:
            raise NotFound("Unknown license API path.")
        model, operation = route
        raw = _json_object(request)
        echoed = raw.get("nonce")
        nonce = echoed if isinstance(echoed, str) and 0 < len(echoed) <= 128 else None
        parsed = validate(model, raw)
        settings = container.settings
        network = network_prefix(
            client_address(
                request.headers.get("X-Forwarded-For"),
                request.remote_addr,
                settings.trusted_proxy_hops,
            )
        )
        answer = operation(container.license_service, parsed, network)
    except RateLimited as error:
        answer = Answer(
            StatusCode.RATE_LIMITED,
            {"error": error.code, "detail": error.detail, "retry_after": error.retry_after_seconds},
            http_status=error.status,
            headers=error.headers,
        )
    except CommerceError as error:
        answer = _error_answer(error)
    except Exception:
        _log.exception("license API failed", extra={"event": "license.error"})
        answer = Answer(
            StatusCode.UNAVAILABLE,
            {"error": "internal_error", "detail": "An internal error occurred."},
            http_status=500,
        )
    return signed_response(answer, nonce, container)


def _json_object(request: flask.Request) -> dict[str, Any]:
    if (request.mimetype or "application/json").lower() != "application/json":
        raise UnsupportedMediaType("The body must be JSON.")
    if request.content_length is not None and request.content_length > MAX_BODY:
        raise PayloadTooLarge()
    body = read_body(request, MAX_BODY)
    try:
        raw = json.loads(body)
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise InvalidRequest("The body is not valid JSON.") from None
    if not isinstance(raw, dict):
        raise InvalidRequest("The body must be a JSON object.")
    return raw


def _error_answer(error: CommerceError) -> Answer:
    status = StatusCode.UNAVAILABLE if error.status >= 500 else StatusCode.INVALID_REQUEST
    return Answer(
        status,
        {"error": error.code, "detail": error.detail},
        http_status=error.status,
        headers=error.headers,
    )


def response_body(answer: Answer, nonce: str | None, now: int) -> bytes:
    """The exact bytes that are sent and signed (compact JSON, keys sorted)."""
    body: dict[str, Any] = {"status": answer.status.value, "nonce": nonce, "time": now}
    if answer.status in DETAILS and "detail" not in answer.fields:
        body["detail"] = DETAILS[answer.status]
    body.update(answer.fields)
    return json.dumps(body, separators=(",", ":"), sort_keys=True, ensure_ascii=False).encode()


def signed_response(answer: Answer, nonce: str | None, container: Container) -> flask.Response:
    body = response_body(answer, nonce, int(container.clock.now().timestamp()))
    headers = {"Cache-Control": "no-store", **answer.headers}
    status = answer.http_status
    try:
        signer = container.signer
        headers[SIGNATURE_HEADER] = signer.sign(body)
        headers[KEY_ID_HEADER] = key_id(unb64url(signer.public_key_b64()))
    except CommerceError as error:  # no signing key: fail closed, say so unsigned
        _log.error("license answers cannot be signed: %s", error.code)
        body = response_body(_error_answer(error), nonce, int(container.clock.now().timestamp()))
        status = error.status
        headers = {"Cache-Control": "no-store"}
    response = flask.Response(body, status=status, mimetype="application/json")
    for name, value in headers.items():
        response.headers[name] = value
    return response
