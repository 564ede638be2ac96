"""Python SDK for the Fairmeter API.

Depends only on the standard library and httpx, so it can ship on its own.
Quantities travel as `Decimal` (or decimal strings), never as binary floats.
"""

from ._base import VERSION as __version__
from .async_client import AsyncClient
from .buffer import AsyncEventBuffer, EventBuffer, Rejection, RejectionHandler
from .client import Client
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

__all__ = [
    "AsyncClient",
    "AsyncEventBuffer",
    "AuthenticationError",
    "Client",
    "ConflictError",
    "Event",
    "EventBuffer",
    "FairmeterError",
    "NotFoundError",
    "PayloadTooLargeError",
    "PermissionDeniedError",
    "RateLimitError",
    "Rejection",
    "RejectionHandler",
    "ServerError",
    "TransportError",
    "ValidationError",
    "__version__",
    "build_event",
    "error_from_problem",
    "error_from_response",
]
