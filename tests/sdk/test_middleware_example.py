"""The example app in examples/metered_api.py works as its README says, in process."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from examples.metered_api import create_app, engine_from_env

from fairmeter.embedded import EmbeddedEngine
from fairmeter.sdk import RemoteEngine
from fairmeter.services.runtime import Runtime

pytestmark = pytest.mark.anyio

ACME = {"x-api-key": "acme-secret"}


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
async def http(runtime: Runtime, api: httpx.Client) -> AsyncIterator[httpx.AsyncClient]:
    """The example app on acme's 5-calls-a-month starter plan, as the README sets it up."""
    meter = {"key": "api_calls", "event_type": "api.request", "aggregation": "count"}
    charge = {"meter": "api_calls", "model": "per_unit", "unit_price": "0.01", "limit": "5",
              "policy": "block"}  # fmt: skip
    for path, body in (
        ("/v1/meters", meter),
        ("/v1/customers", {"key": "acme"}),
        ("/v1/plans", {"key": "starter", "currency": "USD", "charges": [charge]}),
        ("/v1/subscriptions", {"customer": "acme", "plan": "starter"}),
    ):
        assert api.post(path, json=body).status_code == 201, path
    app = create_app(EmbeddedEngine(runtime=runtime))
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://example") as client:
        yield client


async def test_the_example_serves_five_calls_then_refuses_with_a_problem(
    http: httpx.AsyncClient,
) -> None:
    first = await http.get("/v1/quotes", params={"count": 2}, headers=ACME)
    assert first.status_code == 200
    assert first.json() == {"quotes": ["quote 1", "quote 2"], "remaining": "3"}
    assert first.headers["ratelimit-policy"] == '"api_calls";q=5'
    assert (await http.get("/v1/quotes", params={"count": 3}, headers=ACME)).status_code == 200
    refused = await http.get("/v1/quotes", headers=ACME)
    assert refused.status_code == 429
    body = refused.json()
    assert (body["code"], body["limit"], body["usage"]) == ("limit_reached", "5", "5")
    assert body["upgrade_url"] == "https://example.com/pricing?customer=acme"
    assert int(refused.headers["retry-after"]) > 0


async def test_the_example_refuses_unknown_keys_and_skips_health(
    http: httpx.AsyncClient,
) -> None:
    assert (await http.get("/v1/quotes")).status_code == 401
    assert (await http.get("/v1/quotes", headers={"x-api-key": "nope"})).status_code == 401
    health = await http.get("/health")
    assert health.json() == {"status": "ok"} and "ratelimit" not in health.headers


async def test_the_example_picks_its_mode_from_the_environment(
    monkeypatch: pytest.MonkeyPatch, sqlite_url: str
) -> None:
    monkeypatch.setenv("FAIRMETER_MODE", "remote")
    monkeypatch.setenv("FAIRMETER_API_KEY", "fm_key")
    monkeypatch.setenv("FAIRMETER_FAILURE", "open")
    remote = engine_from_env()
    assert isinstance(remote, RemoteEngine) and remote.failure == "open"
    await remote.aclose()
    monkeypatch.setenv("FAIRMETER_MODE", "embedded")
    monkeypatch.setenv("FAIRMETER_DATABASE_URL", sqlite_url)
    embedded = engine_from_env()
    assert isinstance(embedded, EmbeddedEngine)
    await embedded.aclose()
