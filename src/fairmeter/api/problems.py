"""One table maps error codes to HTTP statuses; every error leaves as problem+json (RFC 9457)."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import JSONResponse

from fairmeter.domain import errors

PROBLEM_JSON = "application/problem+json"
TYPE_BASE = "https://fairmeter.dev/problems/"
log = logging.getLogger("fairmeter.api")

CODES = {400: "malformed_body", 404: "not_found", 405: "method_not_allowed"}

STATUS: dict[type[errors.FairmeterError], int] = {
    errors.MalformedBody: 400,
    errors.Unauthorized: 401,
    errors.Forbidden: 403,
    errors.NotFound: 404,
    errors.Conflict: 409,
    errors.PayloadTooLarge: 413,
    errors.UnsupportedMediaType: 415,
    errors.InvalidInput: 422,
}


def status_of(error: errors.FairmeterError) -> int:
    for cls in type(error).__mro__:
        if cls in STATUS:
            return STATUS[cls]
    return 500


def problem(
    status: int, code: str, title: str, detail: str, instance: str | None = None, **extra: object
) -> JSONResponse:
    body: dict[str, object] = {
        "type": TYPE_BASE + code,
        "title": title,
        "status": status,
        "code": code,
        "detail": detail,
    }
    if instance:
        body["instance"] = instance
    body.update(extra)
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
    return JSONResponse(body, status_code=status, media_type=PROBLEM_JSON, headers=headers)


def from_error(error: errors.FairmeterError, request: Request) -> JSONResponse:
    extra: dict[str, object] = dict(error.extra)
    if error.errors:
        extra["errors"] = [e.as_dict() for e in error.errors]
    return problem(
        status_of(error), error.code, error.title, error.detail, request.url.path, **extra
    )


def install(app: FastAPI) -> None:
    @app.exception_handler(errors.FairmeterError)
    async def _domain(request: Request, exc: errors.FairmeterError) -> JSONResponse:
        return from_error(exc, request)

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        unparseable = _unparseable(exc.errors())
        if unparseable is not None:
            # Same fault, same answer as /v1/events: 400 malformed_body, not a byte offset
            # dressed up as a JSON Pointer.
            return from_error(errors.MalformedBody(unparseable), request)
        fields = [
            {"pointer": _pointer(e.get("loc", ())), "detail": _detail(e), "code": "invalid"}
            for e in exc.errors()
        ]
        return problem(
            422,
            "invalid_input",
            "The request is not valid",
            "; ".join(f"{f['pointer']}: {f['detail']}" for f in fields),
            request.url.path,
            errors=fields,
        )

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = CODES.get(exc.status_code, "http_error")
        detail = str(exc.detail)
        if code == "malformed_body":
            # FastAPI answers 400 when it cannot read a body at all (nested too deeply, say).
            return from_error(errors.MalformedBody(detail), request)
        response = problem(exc.status_code, code, detail, detail, request.url.path)
        # Keep the exception's headers: a 405 must say which methods are allowed (Allow).
        response.headers.update(exc.headers or {})
        return response

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unexpected error on %s", request.url.path)
        return problem(
            500,
            "internal_error",
            "Internal error",
            "an unexpected error occurred; nothing was recorded by this request",
            request.url.path,
        )


def _unparseable(found: Sequence[Any]) -> str | None:
    for error in found:
        if error.get("type") == "json_invalid":
            reason = (error.get("ctx") or {}).get("error", "")
            loc = error.get("loc") or (None,)
            where = loc[-1]
            at = f" at character {where}" if isinstance(where, int) else ""
            return f"the body is not valid JSON{at}" + (f": {reason}" if reason else "")
    return None


def _detail(error: Mapping[str, Any]) -> str:
    """FastAPI's wording speaks Python ("a valid dictionary"); the whole body is JSON."""
    if tuple(error.get("loc", ())) == ("body",):
        kind = error.get("type")
        if kind == "dict_type":
            return "the body must be a JSON object"
        if kind == "missing":
            return "a JSON object body is required"
    return str(error.get("msg", "is not valid"))


def _pointer(loc: tuple[object, ...] | list[object]) -> str:
    parts = [str(p) for p in loc]
    if parts and parts[0] in ("body", "query", "path", "header"):
        where, parts = parts[0], parts[1:]
        if where != "body":
            return "/" + "/".join(parts) if parts else f"/{where}"
    return "/" + "/".join(parts)
