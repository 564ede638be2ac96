"""Python SDK for the Fairmeter API.

Depends only on the standard library and httpx, so it can ship on its own.
Quantities travel as `Decimal` (or decimal strings), never as binary floats.
`MeteringMiddleware` needs Starlette too; it is imported on first use, so the client
alone does not.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ._base import VERSION as __version__
from .async_client import AsyncClient
from .buffer import AsyncEventBuffer, EventBuffer, Rejection, RejectionHandler
from .client import Client
from .decision import Decision
from .engines import Engine, RemoteEngine, RemoteStats
from .errors import (
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
    error_from_problem,
    error_from_response,
)
from .events import Event, build_event

if TYPE_CHECKING:
    from .middleware import MeteringMiddleware, Outcome


def __getattr__(name: str) -> Any:
    if name in ("MeteringMiddleware", "Outcome"):
        from . import middleware

        return getattr(middleware, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "AsyncClient",
    "AsyncEventBuffer",
    "AuthenticationError",
    "Client",
    "ConflictError",
    "Decision",
    "Engine",
    "Event",
    "EventBuffer",
    "FairmeterError",
    "MeteringMiddleware",
    "NotFoundError",
    "Outcome",
    "PayloadTooLargeError",
    "PermissionDeniedError",
    "RateLimitError",
    "Rejection",
    "RejectionHandler",
    "RemoteEngine",
    "RemoteStats",
    "ServerError",
    "TransportError",
    "ValidationError",
    "__version__",
    "build_event",
    "error_from_problem",
    "error_from_response",
]
