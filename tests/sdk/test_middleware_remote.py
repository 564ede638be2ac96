"""MeteringMiddleware in remote mode: RemoteEngine talking to a real fairmeter server
(uvicorn in a child process), on SQLite and PostgreSQL, including what happens when that
server goes away: the named fail-open / fail-closed setting."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route
from tests.conftest import LiveServer

from fairmeter.sdk import Client, MeteringMiddleware, NotFoundError, Outcome, RemoteEngine

pytestmark = pytest.mark.anyio

ACME = {"x-customer": "acme"}


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def server(live_server: LiveServer, live_admin_key: str) -> Iterator[tuple[LiveServer, str]]:
    """acme on a plan of 3 api_calls a month (block), with a tokens meter beside it."""
    auth = {"Authorization": f"Bearer {live_admin_key}"}
    with httpx.Client(base_url=live_server.url, headers=auth) as admin:
        for meter in (
            {"key": "api_calls", "event_type": "api.request", "aggregation": "count"},
            {"key": "tokens", "event_type": "llm.call", "aggregation": "sum",
             "value_property": "$.tokens"},
        ):  # fmt: skip
            assert admin.post("/v1/meters", json=meter).status_code == 201
        charges: list[dict[str, Any]] = [
            {"meter": "api_calls", "model": "per_unit", "unit_price": "0.01", "limit": "3",
             "policy": "block"},
            {"meter": "tokens", "model": "per_unit", "unit_price": "0.0001"},
        ]  # fmt: skip
        plan = {"key": "starter", "currency": "USD", "charges": charges}
        assert admin.post("/v1/plans", json=plan).status_code == 201
        assert admin.post("/v1/customers", json={"key": "acme"}).status_code == 201
        sub = {"customer": "acme", "plan": "starter"}
        assert admin.post("/v1/subscriptions", json=sub).status_code == 201
    yield live_server, live_admin_key


async def _hello(request: Request) -> JSONResponse:
    request.state.tokens = 250
    return JSONResponse({"reason": request.state.fairmeter.reason})


def _app(engine: RemoteEngine, **options: Any) -> Starlette:
    app = Starlette(routes=[Route("/hello", _hello)])
    app.add_middleware(
        MeteringMiddleware,
        engine=engine,
        customer=lambda request: request.headers.get("x-customer"),
        meter="api_calls",
        **options,
    )
    return app


def _client(app: Starlette) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://app")


async def test_the_server_counts_each_admitted_call_and_refuses_past_the_limit(
    server: tuple[LiveServer, str],
) -> None:
    live, key = server
    engine = RemoteEngine(base_url=live.url, api_key=key, cache_ttl=5.0)
    async with _client(_app(engine, upgrade_url="https://example.com/up")) as http:
        responses = [await http.get("/hello", headers=ACME) for _ in range(5)]
        with pytest.raises(NotFoundError):  # a provisioning mistake is loud, not free
            await http.get("/hello", headers={"x-customer": "ghost"})
    await engine.aclose()
    assert [r.status_code for r in responses] == [200, 200, 200, 429, 429]
    assert [r.headers["ratelimit"].split(";")[1] for r in responses] == ["r=2", "r=1", "r=0"] + [
        "r=0"
    ] * 2
    assert responses[0].headers["ratelimit-policy"] == '"api_calls";q=3'
    problem = responses[3].json()
    assert (problem["code"], problem["limit"], problem["usage"]) == ("limit_reached", "3", "3")
    assert int(responses[3].headers["retry-after"]) > 0
    assert problem["upgrade_url"] == "https://example.com/up"
    # The fifth call was refused from the local cache, without a round trip.
    assert (engine.stats.calls, engine.stats.cached_refusals) == (5, 1)
    with Client(live.url, key) as client:
        # Recorded on the server: a check of one more is refused at 3.
        assert client.check("acme", "api_calls").usage == 3


async def test_report_consumes_what_the_handler_produced(
    server: tuple[LiveServer, str],
) -> None:
    live, key = server
    engine = RemoteEngine(base_url=live.url, api_key=key)

    async def report(request: Request, outcome: Outcome) -> None:
        await engine.consume(outcome.customer, "tokens", Decimal(request.state.tokens))

    async with _client(_app(engine, report=report)) as http:
        assert (await http.get("/hello", headers=ACME)).status_code == 200
        assert (await http.get("/hello", headers=ACME)).status_code == 200
    await engine.aclose()
    now = datetime.now(UTC)
    with Client(live.url, key) as client:
        rows = client.usage("tokens", customer="acme", from_=now - timedelta(days=1), to=now)
    assert [row["value"] for row in rows] == [Decimal(500)]


@pytest.mark.parametrize(("failure", "status"), [("open", 200), ("closed", 503)])
async def test_a_stopped_server_fails_open_or_closed_as_set(
    server: tuple[LiveServer, str], failure: str, status: int
) -> None:
    live, key = server
    engine = RemoteEngine(base_url=live.url, api_key=key, failure=failure, timeout=1.0)  # type: ignore[arg-type]
    async with _client(_app(engine)) as http:
        assert (await http.get("/hello", headers=ACME)).status_code == 200
        live.stop()
        down = await http.get("/hello", headers=ACME)
    await engine.aclose()
    assert down.status_code == status
    if failure == "open":
        assert down.json() == {"reason": "limits_unavailable"}
        assert engine.stats.failed_open == 1
    else:
        assert down.json()["code"] == "limits_unavailable"
        assert down.headers["retry-after"] == "1"
        assert engine.stats.failed_closed == 1
