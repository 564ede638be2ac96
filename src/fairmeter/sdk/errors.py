"""Typed errors raised by the SDK, built from the server's problem+json answers."""

from __future__ import annotations

from typing import Any

import httpx

from ._json import loads

__all__ = [
    "AuthenticationError",
    "ConflictError",
    "FairmeterError",
    "NotFoundError",
    "PayloadTooLargeError",
    "PermissionDeniedError",
    "RateLimitError",
    "ServerError",
    "TransportError",
    "ValidationError",
    "error_from_problem",
    "error_from_response",
]

# A non-JSON error body (an HTML page from a proxy, say) is only kept as a hint.
_MAX_TEXT_DETAIL = 500


class FairmeterError(Exception):
    """Any failure reported by the SDK; `code` is stable, `problem` is the full body."""

    def __init__(
        self,
        *,
        code: str,
        status: int,
        title: str | None = None,
        detail: str | None = None,
        problem: dict[str, Any] | None = None,
    ) -> None:
        self.code = code
        self.status = status
        self.title = title
        self.detail = detail
        self.problem: dict[str, Any] = problem if problem is not None else {}
        super().__init__(self._message())

    def _message(self) -> str:
        text = self.detail or self.title or self.code
        return f"{self.status} {self.code}: {text}" if self.status else f"{self.code}: {text}"


class AuthenticationError(FairmeterError):
    """401: the API key is missing, unknown or revoked."""


class PermissionDeniedError(FairmeterError):
    """403: the API key may not do this."""


class NotFoundError(FairmeterError):
    """404: the meter, customer or route does not exist."""


class ConflictError(FairmeterError):
    """409: the key is already taken, or the change conflicts with stored state."""


class PayloadTooLargeError(FairmeterError):
    """413: the request body is over the server's limit; send smaller batches."""


class ValidationError(FairmeterError):
    """422: the request was understood but invalid; see `errors` for each field."""

    @property
    def errors(self) -> list[dict[str, Any]]:
        items = self.problem.get("errors")
        if not isinstance(items, list):
            return []
        return [
            {"pointer": item.get("pointer"), "detail": item.get("detail")}
            for item in items
            if isinstance(item, dict)
        ]


class RateLimitError(FairmeterError):
    """429 that outlived the client's retries; `retry_after` is in seconds when sent."""

    retry_after: float | None = None


class ServerError(FairmeterError):
    """5xx that outlived the client's retries (or a call that is never retried)."""


class TransportError(FairmeterError):
    """The server could not be reached (connection refused, timeout, reset)."""

    @classmethod
    def wrap(cls, exc: httpx.TransportError) -> TransportError:
        return cls(
            code="transport_error",
            status=0,
            title="Transport error",
            detail=str(exc) or type(exc).__name__,
        )


_BY_CODE: dict[str, type[FairmeterError]] = {
    "unauthorized": AuthenticationError,
    "forbidden": PermissionDeniedError,
    "not_found": NotFoundError,
}

_BY_STATUS: dict[int, type[FairmeterError]] = {
    401: AuthenticationError,
    403: PermissionDeniedError,
    404: NotFoundError,
    409: ConflictError,
    413: PayloadTooLargeError,
    422: ValidationError,
    429: RateLimitError,
}


def _error_class(code: str, status: int) -> type[FairmeterError]:
    if code in _BY_CODE:
        return _BY_CODE[code]
    if status in _BY_STATUS:
        return _BY_STATUS[status]
    return ServerError if status >= 500 else FairmeterError


def retry_after_seconds(response: httpx.Response) -> float | None:
    """The Retry-After header in seconds; the HTTP-date form is ignored."""
    value = response.headers.get("retry-after")
    try:
        seconds = float(value) if value is not None else None
    except ValueError:
        return None
    return seconds if seconds is not None and seconds >= 0 else None


def _str_or_none(value: object) -> str | None:
    return value if isinstance(value, str) else None


def error_from_problem(
    status: int, problem: dict[str, Any], *, reason: str | None = None
) -> FairmeterError:
    """Build the typed error for a problem+json body (or any JSON object)."""
    code = _str_or_none(problem.get("code")) or f"http_{status}"
    return _error_class(code, status)(
        code=code,
        status=status,
        title=_str_or_none(problem.get("title")) or reason,
        detail=_str_or_none(problem.get("detail")),
        problem=problem,
    )


def _parse_json_object(response: httpx.Response) -> dict[str, Any] | None:
    try:
        body = loads(response.content)
    except ValueError:
        return None
    return body if isinstance(body, dict) else None


def error_from_response(response: httpx.Response) -> FairmeterError:
    """Map a non-2xx response to the matching `FairmeterError` subclass."""
    status = response.status_code
    problem = _parse_json_object(response)
    if problem is None:
        text = response.text.strip()[:_MAX_TEXT_DETAIL] or None
        error = _error_class(f"http_{status}", status)(
            code=f"http_{status}", status=status, title=response.reason_phrase, detail=text
        )
    else:
        error = error_from_problem(status, problem, reason=response.reason_phrase)
    if isinstance(error, RateLimitError):
        error.retry_after = retry_after_seconds(response)
    return error
