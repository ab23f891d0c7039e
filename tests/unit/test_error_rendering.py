"""One error renderer for every function: the license API signs what
`commerce.errors.render` produces, the other functions send it as it is."""

from __future__ import annotations

import json

import flask
import pytest

from commerce.errors import (
    CommerceError,
    InternalError,
    InvalidRequest,
    PayloadTooLarge,
    RateLimited,
    SecretUnavailable,
    TransientFailure,
    render,
)
from commerce.http import endpoint
from commerce.licensing.endpoints import _INTERNAL, InvalidNonce, _error_answer
from commerce.licensing.schemas import StatusCode

ERRORS = [
    InvalidRequest("body: field required"),
    InvalidNonce(),
    PayloadTooLarge(),
    RateLimited(7),
    SecretUnavailable(),
    TransientFailure(),
    InternalError(),
]


@pytest.mark.parametrize("error", ERRORS, ids=lambda e: e.code)
def test_a_license_answer_carries_the_shared_renderers_body_status_and_headers(
    error: CommerceError,
) -> None:
    body, status, headers = render(error)

    answer = _error_answer(error)

    assert {k: v for k, v in answer.fields.items() if k != "retry_after"} == body
    assert (answer.http_status, answer.headers) == (status, headers)


def test_a_refused_license_call_says_why_in_the_plugins_status_code() -> None:
    assert _error_answer(InvalidNonce()).status is StatusCode.INVALID_REQUEST
    assert _error_answer(TransientFailure()).status is StatusCode.UNAVAILABLE
    limited = _error_answer(RateLimited(7))
    assert limited.status is StatusCode.RATE_LIMITED
    assert limited.fields["retry_after"] == 7
    assert limited.headers == {"Retry-After": "7"}


def test_an_unexpected_failure_is_the_same_internal_error_in_every_function() -> None:
    @endpoint(methods=["POST"])
    def broken(request: flask.Request) -> flask.Response:
        raise KeyError("not on purpose")

    with flask.Flask(__name__).test_request_context("/", method="POST"):
        response = broken(flask.request)

    assert response.status_code == 500
    assert json.loads(response.get_data()) == render(InternalError())[0] == _INTERNAL.fields
    assert _INTERNAL.status is StatusCode.UNAVAILABLE
