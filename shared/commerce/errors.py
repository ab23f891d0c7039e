"""The one error hierarchy. Every expected failure is a `CommerceError` carrying an
HTTP status and a stable machine code; `render` turns it into the public body
`{"error": code, "detail": text}`. Codes are part of the API: never rename one.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar


class CommerceError(Exception):
    """Base of every error the backend raises on purpose."""

    status: ClassVar[int] = 400
    code: ClassVar[str] = "bad_request"
    default_detail: ClassVar[str] = "The request could not be processed."

    def __init__(self, detail: str | None = None, *, headers: Mapping[str, str] | None = None):
        self.detail = detail or self.default_detail
        self.headers: dict[str, str] = dict(headers or {})
        super().__init__(self.detail)

    def body(self) -> dict[str, Any]:
        return {"error": self.code, "detail": self.detail}


def render(error: CommerceError) -> tuple[dict[str, Any], int, dict[str, str]]:
    """(body, status, headers) for an HTTP response."""
    return error.body(), error.status, error.headers


# --- configuration -------------------------------------------------------------------


class ConfigurationError(CommerceError):
    """Start-up or feature configuration is missing or invalid (fail closed)."""

    status = 503
    code = "misconfigured"
    default_detail = "The service is not configured."


class SecretUnavailable(ConfigurationError):
    code = "secret_unavailable"
    default_detail = "A required secret is not configured; the feature is disabled."


# --- request errors (4xx) ------------------------------------------------------------


class InvalidRequest(CommerceError):
    status = 400
    code = "invalid_request"
    default_detail = "The request is malformed."


class InvalidJson(InvalidRequest):
    code = "invalid_json"
    default_detail = "The body is not valid JSON."


class InvalidEncoding(InvalidRequest):
    code = "invalid_encoding"
    default_detail = "The body is not valid UTF-8 (or holds a lone surrogate)."


class BodyTooDeep(InvalidRequest):
    code = "body_too_deep"
    default_detail = "The body nests arrays or objects too deeply."


class NumberTooLong(InvalidRequest):
    code = "number_too_long"
    default_detail = "A number in the body is too long."


class PayloadTooLarge(CommerceError):
    status = 413
    code = "payload_too_large"
    default_detail = "The request body is too large."


class UnsupportedMediaType(CommerceError):
    status = 415
    code = "unsupported_media_type"
    default_detail = "The request body must be JSON or a form."


class MethodNotAllowed(CommerceError):
    status = 405
    code = "method_not_allowed"
    default_detail = "This method is not allowed here."


class OriginNotAllowed(CommerceError):
    status = 403
    code = "origin_not_allowed"
    default_detail = "Requests from this origin are not allowed."


class NotFound(CommerceError):
    status = 404
    code = "not_found"
    default_detail = "Not found."


class Gone(CommerceError):
    status = 410
    code = "gone"
    default_detail = "This resource is no longer available."


class Conflict(CommerceError):
    status = 409
    code = "conflict"
    default_detail = "The request conflicts with the current state."


class RateLimited(CommerceError):
    status = 429
    code = "rate_limited"
    default_detail = "Too many requests; try again later."

    def __init__(self, retry_after_seconds: int, detail: str | None = None):
        self.retry_after_seconds = max(1, int(retry_after_seconds))
        super().__init__(detail, headers={"Retry-After": str(self.retry_after_seconds)})


class InvalidSignature(CommerceError):
    status = 400
    code = "invalid_signature"
    default_detail = "The signature is missing, invalid or too old."


# --- domain rule violations ------------------------------------------------------------


class InvalidLicenseKey(InvalidRequest):
    code = "invalid_license_key"
    default_detail = "This is not a valid license key (check for typos)."


class InvalidTransition(Conflict):
    code = "invalid_transition"
    default_detail = "The order cannot move to that state."


class AlreadyExists(Conflict):
    code = "already_exists"
    default_detail = "It already exists."


# --- upstream / transient (5xx) ----------------------------------------------------------


class InternalError(CommerceError):
    """What an unexpected exception is answered with (logged first; never a traceback)."""

    status = 500
    code = "internal_error"
    default_detail = "An internal error occurred."


class UpstreamError(CommerceError):
    """A dependency (Stripe, mail provider) failed; the caller may retry."""

    status = 502
    code = "upstream_error"
    default_detail = "A payment or mail provider did not answer; please try again."


class TransientFailure(CommerceError):
    """Worth retrying (storage contention, provider 5xx). Tasks and webhooks answer 503."""

    status = 503
    code = "temporarily_unavailable"
    default_detail = "Temporarily unavailable; please retry."
