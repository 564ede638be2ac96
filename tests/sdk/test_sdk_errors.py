"""Non-2xx answers become typed errors chosen by problem code, then by status."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from fairmeter.sdk import (
    AuthenticationError,
    ConflictError,
    FairmeterError,
    NotFoundError,
    PayloadTooLargeError,
    PermissionDeniedError,
    RateLimitError,
    ServerError,
    TransportError,
    ValidationError,
    error_from_response,
)


def _problem(status: int, **body: Any) -> httpx.Response:
    return httpx.Response(
        status,
        content=json.dumps({"status": status, **body}).encode(),
        headers={"content-type": "application/problem+json"},
    )


@pytest.mark.parametrize(
    ("status", "code", "expected"),
    [
        (401, "unauthorized", AuthenticationError),
        (403, "forbidden", PermissionDeniedError),
        (404, "not_found", NotFoundError),
        (404, "meter_not_found", NotFoundError),
        (409, "meter_exists", ConflictError),
        (413, "payload_too_large", PayloadTooLargeError),
        (422, "invalid_events", ValidationError),
        (429, "rate_limited", RateLimitError),
        (500, "internal", ServerError),
        (503, "unavailable", ServerError),
        (400, "bad_request", FairmeterError),
    ],
)
def test_problem_maps_to_error_class_with_its_code(
    status: int, code: str, expected: type[FairmeterError]
) -> None:
    error = error_from_response(_problem(status, code=code, title="T", detail="D"))
    assert type(error) is expected
    assert (error.code, error.status, error.title, error.detail) == (code, status, "T", "D")


def test_code_chooses_the_class_before_status() -> None:
    assert type(error_from_response(_problem(400, code="unauthorized"))) is AuthenticationError


def test_problem_keeps_the_full_body() -> None:
    response = _problem(422, code="invalid_events", accepted=0, rejected=[{"index": 0}])
    assert error_from_response(response).problem == {
        "status": 422,
        "code": "invalid_events",
        "accepted": 0,
        "rejected": [{"index": 0}],
    }


def test_validation_error_lists_pointer_and_detail() -> None:
    errors = [{"pointer": "/data/tokens", "detail": "must be a number", "extra": 1}]
    error = error_from_response(_problem(422, code="invalid_body", errors=errors))
    assert isinstance(error, ValidationError)
    assert error.errors == [{"pointer": "/data/tokens", "detail": "must be a number"}]


def test_validation_error_without_errors_field_has_empty_list() -> None:
    error = error_from_response(_problem(422, code="invalid_events"))
    assert isinstance(error, ValidationError)
    assert error.errors == []


def test_non_problem_body_gets_http_status_code() -> None:
    error = error_from_response(httpx.Response(502, text="<html>Bad gateway</html>"))
    assert type(error) is ServerError
    assert error.code == "http_502"
    assert error.title == "Bad Gateway"
    assert error.detail == "<html>Bad gateway</html>"
    assert error.problem == {}


def test_json_body_without_code_gets_http_status_code() -> None:
    error = error_from_response(httpx.Response(404, json={"detail": "Not Found"}))
    assert type(error) is NotFoundError
    assert (error.code, error.detail) == ("http_404", "Not Found")


def test_rate_limit_error_reads_retry_after_seconds() -> None:
    response = httpx.Response(429, json={"code": "rate_limited"}, headers={"Retry-After": "7"})
    error = error_from_response(response)
    assert isinstance(error, RateLimitError)
    assert error.retry_after == 7


def test_error_message_names_status_code_and_detail() -> None:
    error = error_from_response(_problem(409, code="meter_exists", detail="key api_calls taken"))
    assert str(error) == "409 meter_exists: key api_calls taken"


def test_transport_error_wraps_the_httpx_failure() -> None:
    error = TransportError.wrap(httpx.ConnectError("connection refused"))
    assert (error.code, error.status, error.detail) == ("transport_error", 0, "connection refused")
    assert isinstance(error, FairmeterError)
