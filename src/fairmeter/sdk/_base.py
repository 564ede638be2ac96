"""Pieces shared by `Client` and `AsyncClient` that do no I/O."""

from __future__ import annotations

import logging
from typing import Any

import httpx

from . import _json
from ._calls import Call
from ._retry import RetryPolicy
from .errors import FairmeterError, ValidationError, error_from_response

VERSION = "0.1.0"
DEFAULT_BATCH_SIZE = 1000

logger = logging.getLogger("fairmeter.sdk")


def headers(api_key: str) -> dict[str, str]:
    if not api_key:
        raise ValueError("api_key is required")
    return {
        "Authorization": f"Bearer {api_key}",
        "Accept": "application/json, application/problem+json",
        "User-Agent": f"fairmeter-sdk-python/{VERSION}",
    }


def request_kwargs(call: Call) -> dict[str, Any]:
    extra = {"Content-Type": call.content_type} if call.content_type else None
    return {"content": call.content, "params": call.params, "headers": extra}


def answer(response: httpx.Response) -> Any:
    """The decoded body of a final response; raises the typed error for non-2xx."""
    if not response.is_success:
        raise error_from_response(response)
    if not response.content:
        return {}
    try:
        return _json.loads(response.content)
    except ValueError as exc:
        raise FairmeterError(
            code="invalid_response", status=response.status_code, detail="body is not JSON"
        ) from exc


def as_object(body: Any) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise FairmeterError(code="invalid_response", status=200, detail="expected an object")
    return body


def log_retry(call: Call, attempt: int, delay: float, reason: object) -> None:
    logger.warning(
        "fairmeter %s %s failed (%s); retry %d in %.2fs",
        call.method,
        call.path,
        reason,
        attempt + 1,
        delay,
    )


def batch_absorbs(error: ValidationError) -> bool:
    # A chunk refused whole is one part of the answer, not the end of the call.
    return error.code == "invalid_events"


class BaseClient:
    def __init__(self, max_retries: int, backoff: float, batch_size: int) -> None:
        if batch_size < 1:
            raise ValueError("batch_size must be >= 1")
        self._policy = RetryPolicy(max_retries, backoff)
        self._batch_size = batch_size
