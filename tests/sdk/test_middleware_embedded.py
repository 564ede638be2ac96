"""MeteringMiddleware in process: EmbeddedEngine over the real limits engine, on SQLite and
PostgreSQL, behind a Starlette app reached through httpx. The clock stands at
2026-11-15T12:00Z; periods are calendar months."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from fairmeter.domain import entitlements
from fairmeter.domain.errors import NotFound
from fairmeter.domain.limits import parse_override
from fairmeter.domain.pricing.charges import LimitPolicy
from fairmeter.embedded import EmbeddedEngine, to_sdk
from fairmeter.sdk import MeteringMiddleware
from fairmeter.services import limits
from fairmeter.services.clock import FixedClock
from fairmeter.services.runtime import Runtime

pytestmark = pytest.mark.anyio

TO_RESET = 15 * 86400 + 12 * 3600  # seconds from the clock to 2026-12-01T00:00Z


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def _plan(key: str, limit: str, policy: str, price: str = "0.01", **charge: Any) -> dict[str, Any]:
    return {
        "key": key,
        "currency": "USD",
        "charges": [
            {
                "meter": "api_calls",
                "model": "per_unit",
                "unit_price": price,
                "limit": limit,
                "policy": policy,
                **charge,
            }
        ],
    }


@pytest.fixture
def shop(api: httpx.Client) -> httpx.Client:
    """Meter api_calls; customers acme (3 calls a month, block), zeta (overage at 1 USD a
    call) and nobody (no subscription)."""
    body = {"key": "api_calls", "event_type": "api.request", "aggregation": "count"}
    assert api.post("/v1/meters", json=body).status_code == 201
    for plan in (_plan("starter", "3", "block"), _plan("metered", "2", "overage", "1")):
        assert api.post("/v1/plans", json=plan).status_code == 201, plan
    for customer, plan in (("acme", "starter"), ("zeta", "metered"), ("nobody", None)):
        assert api.post("/v1/customers", json={"key": customer}).status_code == 201
        if plan is not None:
            sub = {"customer": customer, "plan": plan, "start_at": "2026-11-01T00:00:00Z"}
            assert api.post("/v1/subscriptions", json=sub).status_code == 201
    return api


@pytest.fixture
def engine(runtime: Runtime, shop: httpx.Client) -> EmbeddedEngine:
    return EmbeddedEngine(runtime=runtime)


async def _hello(request: Request) -> JSONResponse:
    return JSONResponse({"reason": request.state.fairmeter.reason})


@pytest.fixture
async def http(engine: EmbeddedEngine, clock: FixedClock) -> AsyncIterator[httpx.AsyncClient]:
    app = Starlette(routes=[Route("/hello", _hello)])
    app.add_middleware(
        MeteringMiddleware,
        engine=engine,
        customer=lambda request: request.headers.get("x-customer"),
        meter="api_calls",
        upgrade_url="https://example.com/upgrade",
        clock=lambda: clock.now().timestamp(),
    )
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://app") as client:
        yield client


def _as(customer: str) -> dict[str, str]:
    return {"x-customer": customer}


async def _statuses(http: httpx.AsyncClient, customer: str, count: int) -> list[int]:
    return [(await http.get("/hello", headers=_as(customer))).status_code for _ in range(count)]


def _recorded(api: httpx.Client, customer: str) -> Decimal:
    rows = api.get(
        "/v1/meters/api_calls/usage",
        params={"customer": customer, "from": "2026-11-01T00:00:00Z", "to": "2026-12-01T00:00:00Z"},
    ).json()["data"]
    return sum((Decimal(str(row["value"])) for row in rows), Decimal(0))


async def test_a_block_limit_admits_up_to_the_limit_then_answers_429(
    http: httpx.AsyncClient,
) -> None:
    allowed = [await http.get("/hello", headers=_as("acme")) for _ in range(3)]
    assert [r.status_code for r in allowed] == [200, 200, 200]
    assert [r.headers["ratelimit"] for r in allowed] == [
        f'"api_calls";r={left};t={TO_RESET}' for left in (2, 1, 0)
    ]
    assert allowed[0].headers["ratelimit-policy"] == '"api_calls";q=3'
    refused = await http.get("/hello", headers=_as("acme"))
    assert refused.status_code == 429
    assert refused.headers["retry-after"] == str(TO_RESET)
    body = refused.json()
    assert (body["code"], body["meter"], body["limit"], body["usage"]) == (
        "limit_reached",
        "api_calls",
        "3",
        "3",
    )
    assert body["resets_at"] == "2026-12-01T00:00:00+00:00"
    assert body["plan"] == "starter" and body["upgrade_url"] == "https://example.com/upgrade"


async def test_admitted_calls_are_recorded_as_usage_once_the_engine_flushes(
    http: httpx.AsyncClient, engine: EmbeddedEngine, shop: httpx.Client
) -> None:
    assert await _statuses(http, "acme", 5) == [200, 200, 200, 429, 429]
    engine.close()  # a runtime it did not build: flushes the batch, stays open
    assert _recorded(shop, "acme") == 3


async def test_the_limit_opens_again_when_the_period_resets(
    http: httpx.AsyncClient, clock: FixedClock
) -> None:
    assert await _statuses(http, "acme", 4) == [200, 200, 200, 429]
    clock.at = datetime(2026, 12, 1, tzinfo=UTC)
    response = await http.get("/hello", headers=_as("acme"))
    assert response.status_code == 200
    assert response.headers["ratelimit"] == f'"api_calls";r=2;t={31 * 86400}'


async def test_a_customer_without_a_subscription_gets_403(http: httpx.AsyncClient) -> None:
    response = await http.get("/hello", headers=_as("nobody"))
    assert response.status_code == 403
    assert response.json()["code"] == "no_subscription"


async def test_overage_goes_on_past_the_limit_until_the_spend_cap_then_402(
    http: httpx.AsyncClient, runtime: Runtime
) -> None:
    limits.put_override(runtime, "zeta", "api_calls", parse_override({"max_overage_amount": "2"}))
    responses = [await http.get("/hello", headers=_as("zeta")) for _ in range(5)]
    assert [r.status_code for r in responses] == [200, 200, 200, 200, 402]
    assert [r.json().get("reason") for r in responses[:4]] == [
        "within_allowance",
        "within_allowance",
        "overage",
        "overage",
    ]
    body = responses[4].json()
    assert (body["code"], body["overage_amount"], body["currency"]) == (
        "spend_cap_reached",
        "2",
        "USD",
    )


async def test_a_suspended_customer_gets_402(http: httpx.AsyncClient, runtime: Runtime) -> None:
    limits.suspend(runtime, "acme", "unpaid invoice")
    response = await http.get("/hello", headers=_as("acme"))
    assert response.status_code == 402
    assert response.json()["code"] == "suspended"


async def test_throttle_past_the_limit_answers_429_with_a_short_retry(
    http: httpx.AsyncClient, runtime: Runtime
) -> None:
    override = parse_override({"limit": "1", "policy": "throttle", "throttle_rate": "0.5"})
    limits.put_override(runtime, "acme", "api_calls", override)
    # One within the limit, one from the bucket past it, then the bucket is empty.
    assert await _statuses(http, "acme", 2) == [200, 200]
    refused = await http.get("/hello", headers=_as("acme"))
    assert refused.status_code == 429
    assert refused.json()["code"] == "throttled"
    assert refused.headers["retry-after"] == "2"  # 0.5 tokens a second: one in 2 s


async def test_an_unknown_customer_is_an_error_not_a_free_call(http: httpx.AsyncClient) -> None:
    with pytest.raises(NotFound, match="ghost"):
        await http.get("/hello", headers=_as("ghost"))


@pytest.mark.parametrize("allowed", [True, False])
def test_the_sdk_decision_carries_every_field_of_the_engines(allowed: bool) -> None:
    engine_decision = entitlements.Decision(
        allowed=allowed,
        reason=entitlements.Reason.OVERAGE if allowed else entitlements.Reason.THROTTLED,
        customer="acme",
        meter="api_calls",
        policy=LimitPolicy.THROTTLE,
        usage=Decimal("12.5"),
        limit=Decimal(10),
        remaining=Decimal(0),
        overage_amount=Decimal("0.25"),
        currency="EUR",
        retry_after_us=None if allowed else 1_795_000_000_500_000,
        resets_at_us=1_796_000_000_000_000,
        plan="pro",
        upgraded_to="scale" if allowed else None,
        duplicate=allowed,
    )
    expected = engine_decision.as_dict()
    for name in ("retry_after", "resets_at"):
        if expected[name] is not None:
            expected[name] = str(expected[name]).replace("Z", "+00:00")
    assert to_sdk(engine_decision).as_dict() == expected


def test_an_engine_needs_a_runtime_that_enforces_limits(runtime: Runtime) -> None:
    with pytest.raises(ValueError, match="enforces no limits"):
        EmbeddedEngine(runtime=Runtime(runtime.db))
    with pytest.raises(ValueError, match="database_url"):
        EmbeddedEngine()


def test_an_engine_it_builds_itself_is_closed_with_its_runtime(sqlite_url: str) -> None:
    engine = EmbeddedEngine(database_url=sqlite_url)
    assert engine.runtime.limits is not None
    engine.close()
