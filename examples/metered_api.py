"""A small FastAPI app whose calls are metered and limited by fairmeter.

Every call to /v1/... consumes one `api_calls` unit of the caller's customer before the
handler runs; past the plan's limit the caller gets a 429 (or 402/403) problem with the
RateLimit fields. Two modes (see examples/README.md):

    FAIRMETER_MODE=embedded  the engine runs in this process on fairmeter's database
                             (FAIRMETER_DATABASE_URL, default sqlite:///./fairmeter.db)
    FAIRMETER_MODE=remote    each call asks a fairmeter server (FAIRMETER_URL,
                             FAIRMETER_API_KEY); FAIRMETER_FAILURE=open|closed says what
                             to do when it cannot be reached

Run it with: uvicorn --factory examples.metered_api:create_app --port 8001
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request

from fairmeter.embedded import EmbeddedEngine
from fairmeter.sdk import MeteringMiddleware, RemoteEngine

# A stand-in for the app's own API keys: key -> fairmeter customer key.
API_KEYS = {"acme-secret": "acme", "globex-secret": "globex"}
UNMETERED = ("/health", "/docs", "/openapi.json")

Engine = EmbeddedEngine | RemoteEngine


def engine_from_env() -> Engine:
    if os.environ.get("FAIRMETER_MODE", "embedded") == "remote":
        failure = os.environ.get("FAIRMETER_FAILURE", "closed")
        if failure not in ("open", "closed"):
            raise SystemExit("FAIRMETER_FAILURE must be open or closed")
        return RemoteEngine(
            base_url=os.environ.get("FAIRMETER_URL", "http://127.0.0.1:8000"),
            api_key=os.environ["FAIRMETER_API_KEY"],
            failure="open" if failure == "open" else "closed",
        )
    url = os.environ.get("FAIRMETER_DATABASE_URL", "sqlite:///./fairmeter.db")
    return EmbeddedEngine(database_url=url)


def customer_of(request: Request) -> str | None:
    """The caller's customer; None (no or unknown key) is refused with 401 below."""
    return API_KEYS.get(request.headers.get("x-api-key", ""))


def units_of(request: Request) -> int:
    """A batch of n items costs n calls: ?count=5 consumes 5 units (bad counts cost 1)."""
    try:
        return max(1, int(request.query_params.get("count", "1")))
    except ValueError:
        return 1


def create_app(engine: Engine | None = None) -> FastAPI:
    metering = engine or engine_from_env()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        yield
        await metering.aclose()  # writes the usage the embedded engine still holds

    app = FastAPI(title="Metered example API", lifespan=lifespan)
    app.add_middleware(
        MeteringMiddleware,
        engine=metering,
        customer=customer_of,
        meter="api_calls",
        quantity=units_of,
        skip=lambda request: request.url.path in UNMETERED,
        anonymous="reject",
        upgrade_url="https://example.com/pricing?customer={customer}",
    )

    @app.get("/health")
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/v1/quotes")
    async def quotes(request: Request, count: int = 1) -> dict[str, Any]:
        decision = request.state.fairmeter  # what the middleware decided for this call
        return {
            "quotes": [f"quote {n + 1}" for n in range(count)],
            "remaining": None if decision.remaining is None else str(decision.remaining),
        }

    return app
