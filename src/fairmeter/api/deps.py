"""Request dependencies: the runtime and the caller's API key."""

from __future__ import annotations

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.concurrency import run_in_threadpool

from fairmeter.domain.errors import UnsupportedMediaType
from fairmeter.domain.keys import Scope
from fairmeter.services.keys import permitted
from fairmeter.services.runtime import Runtime

bearer = HTTPBearer(auto_error=False, description="An API key: `Authorization: Bearer fm_...`")


# Dependencies are `async def` on purpose: FastAPI runs a plain `def` dependency in the
# thread pool, a hop that costs more than a warm entitlement check or a small ingest.


async def runtime(request: Request) -> Runtime:
    found: Runtime = request.app.state.runtime
    return found


def _key(credentials: HTTPAuthorizationCredentials | None) -> str | None:
    return credentials.credentials if credentials else None


async def admin(
    credentials: HTTPAuthorizationCredentials | None = Depends(bearer),
    rt: Runtime = Depends(runtime),
) -> Scope:
    return await _authorize(rt, _key(credentials), Scope.ADMIN)


async def ingest(
    credentials: HTTPAuthorizationCredentials | None = Depends(bearer),
    rt: Runtime = Depends(runtime),
) -> Scope:
    return await _authorize(rt, _key(credentials), Scope.INGEST)


async def _authorize(rt: Runtime, key: str | None, needed: Scope) -> Scope:
    """A key verified recently is answered from memory; others ask the database (in the
    thread pool: it is I/O)."""
    scope = rt.verified_keys.cached(key)
    if scope is None:
        scope = await run_in_threadpool(rt.verified_keys.verify, rt.db, key)
    return permitted(scope, needed)


async def json_body(request: Request) -> None:
    """Routes that read a JSON body refuse other media types with 415, not a vague 422."""
    if request.method not in ("POST", "PUT", "PATCH"):
        return
    declared = request.headers.get("content-type")
    if declared is None:
        return
    media = declared.split(";")[0].strip().lower()
    if media != "application/json" and not media.endswith("+json"):
        raise UnsupportedMediaType(f"{media!r} is not accepted; send application/json")
