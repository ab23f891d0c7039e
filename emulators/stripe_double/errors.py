"""Stripe-shaped API errors: `{"error": {"type", "message", "param", "code"}}`."""

from __future__ import annotations

from typing import Any


class StripeError(Exception):
    """An error the double answers with, in the shape the official library parses."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        param: str | None = None,
        code: str | None = None,
        error_type: str = "invalid_request_error",
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.param = param
        self.code = code
        self.error_type = error_type

    def body(self) -> dict[str, Any]:
        error: dict[str, Any] = {"type": self.error_type, "message": self.message}
        if self.param is not None:
            error["param"] = self.param
        if self.code is not None:
            error["code"] = self.code
            error["doc_url"] = f"https://stripe.com/docs/error-codes/{self.code.replace('_', '-')}"
        return {"error": error}


def missing_param(param: str) -> StripeError:
    return StripeError(
        400, f"Missing required param: {param}.", param=param, code="parameter_missing"
    )


def unknown_param(param: str) -> StripeError:
    return StripeError(
        400, f"Received unknown parameter: {param}", param=param, code="parameter_unknown"
    )


def invalid_param(param: str, message: str) -> StripeError:
    return StripeError(400, message, param=param, code="parameter_invalid")


def no_such(object_name: str, object_id: str, param: str) -> StripeError:
    return StripeError(
        404, f"No such {object_name}: '{object_id}'", param=param, code="resource_missing"
    )
