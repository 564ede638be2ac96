"""Request dependencies: the runtime and the caller's API key."""

from __future__ import annotations

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from fairmeter.domain.errors import UnsupportedMediaType
from fairmeter.domain.keys import Scope
from fairmeter.services.keys import authorize
from fairmeter.services.runtime import Runtime

bearer = HTTPBearer(auto_error=False, description="An API key: `Authorization: Bearer fm_...`")


def runtime(request: Request) -> Runtime:
    found: Runtime = request.app.state.runtime
    return found


def _key(credentials: HTTPAuthorizationCredentials | None) -> str | None:
    return credentials.credentials if credentials else None


def admin(
    credentials: HTTPAuthorizationCredentials | None = Depends(bearer),
    rt: Runtime = Depends(runtime),
) -> Scope:
    return authorize(rt.db, _key(credentials), Scope.ADMIN)


def ingest(
    credentials: HTTPAuthorizationCredentials | None = Depends(bearer),
    rt: Runtime = Depends(runtime),
) -> Scope:
    return authorize(rt.db, _key(credentials), Scope.INGEST)


def json_body(request: Request) -> None:
    """Routes that read a JSON body refuse other media types with 415, not a vague 422."""
    if request.method not in ("POST", "PUT", "PATCH"):
        return
    declared = request.headers.get("content-type")
    if declared is None:
        return
    media = declared.split(";")[0].strip().lower()
    if media != "application/json" and not media.endswith("+json"):
        raise UnsupportedMediaType(f"{media!r} is not accepted; send application/json")
