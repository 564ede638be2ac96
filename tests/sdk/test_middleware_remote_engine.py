"""RemoteEngine and the clients' check/consume, against a scripted server: what goes on
the wire, which refusals are cached and for how long, and the named fail-open/closed
setting. The same engine against a real running server is in test_middleware_remote.py."""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING, Any

import httpx
import pytest

from fairmeter.sdk import AsyncClient, Client, Decision, RemoteEngine

if TYPE_CHECKING:
    from conftest import ScriptedServer

pytestmark = pytest.mark.anyio


def _decision(allowed: bool, reason: str, **fields: Any) -> dict[str, Any]:
    return {
        "allowed": allowed,
        "reason": reason,
        "customer": "acme",
        "meter": "api_calls",
        "policy": "block",
        "usage": "10",
        "limit": "10",
        "remaining": "0",
        "overage_amount": "0",
        "currency": "USD",
        "retry_after": None,
        "resets_at": "2026-12-01T00:00:00Z",
        "plan": "pro",
        "upgraded_to": None,
        "duplicate": False,
        **fields,
    }


class Ticker:
    """A monotonic clock the test moves."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_consume_posts_an_idempotency_key_and_parses_the_decision(
    client: Client, server: ScriptedServer
) -> None:
    server.json(200, _decision(True, "within_allowance", usage="3.5", remaining="6.5"))
    decision = client.consume("acme", "api_calls", Decimal("3.5"), data={"endpoint": "/x"})
    sent = server.bodies()[0]
    assert server.requests[0].url.path == "/v1/entitlements/consume"
    assert (sent["customer"], sent["meter"], sent["quantity"]) == ("acme", "api_calls", "3.5")
    assert sent["idempotency_key"] and sent["data"] == {"endpoint": "/x"}
    assert decision.allowed and decision.usage == Decimal("3.5")
    assert decision.remaining == Decimal("6.5")
    assert decision.resets_at == datetime(2026, 12, 1, tzinfo=UTC)


def test_a_consume_retried_after_a_lost_answer_resends_the_same_key(
    client: Client, server: ScriptedServer
) -> None:
    server.reply(httpx.ConnectError)
    server.json(200, _decision(True, "within_allowance"))
    client.consume("acme", "api_calls")
    keys = [body["idempotency_key"] for body in server.bodies()]
    assert len(keys) == 2 and keys[0] == keys[1]


def test_check_records_nothing_and_sends_no_key(client: Client, server: ScriptedServer) -> None:
    server.json(200, _decision(False, "limit_reached", retry_after="2026-12-01T00:00:00Z"))
    decision = client.check("acme", "api_calls", 2)
    assert server.requests[0].url.path == "/v1/entitlements/check"
    assert "idempotency_key" not in server.bodies()[0]
    assert (decision.allowed, decision.reason) == (False, "limit_reached")
    assert decision.retry_after == datetime(2026, 12, 1, tzinfo=UTC)


def test_a_float_quantity_is_refused_before_anything_is_sent(
    client: Client, server: ScriptedServer
) -> None:
    with pytest.raises(TypeError, match="float"):
        client.consume("acme", "api_calls", 0.1)  # type: ignore[arg-type]
    assert server.requests == []


def test_a_decision_reads_back_what_it_writes() -> None:
    body = _decision(False, "throttled", retry_after="2026-11-15T12:00:01.5Z")
    assert Decision.from_dict(body).as_dict() == {
        **body,
        "retry_after": "2026-11-15T12:00:01.500000+00:00",
        "resets_at": "2026-12-01T00:00:00+00:00",
    }


async def test_async_consume_matches_the_blocking_client(
    async_client: AsyncClient, server: ScriptedServer
) -> None:
    server.json(200, _decision(True, "overage", usage="11"))
    decision = await async_client.consume("acme", "api_calls", 1, idempotency_key="req-1")
    assert server.bodies()[0]["idempotency_key"] == "req-1"
    assert (decision.reason, decision.usage) == ("overage", Decimal(11))


async def test_every_allowed_call_goes_to_the_server(
    async_client: AsyncClient, server: ScriptedServer
) -> None:
    engine = RemoteEngine(async_client)
    for _ in range(3):
        server.json(200, _decision(True, "within_allowance"))
        assert (await engine.consume("acme", "api_calls", Decimal(1))).allowed
    assert len(server.requests) == 3 and engine.stats.calls == 3


async def test_a_refusal_is_answered_locally_until_the_cache_ttl_passes(
    async_client: AsyncClient, server: ScriptedServer
) -> None:
    ticker = Ticker()
    engine = RemoteEngine(async_client, cache_ttl=2.0, monotonic=ticker)
    server.json(200, _decision(False, "limit_reached", retry_after="2099-01-01T00:00:00Z"))
    first = await engine.consume("acme", "api_calls", Decimal(1))
    ticker.now += 1.9
    again = await engine.consume("acme", "api_calls", Decimal(1))
    assert again == first and not again.allowed
    assert len(server.requests) == 1 and engine.stats.cached_refusals == 1
    # Another meter or customer is not refused by acme's cached answer.
    server.json(200, _decision(True, "within_allowance", customer="globex"))
    assert (await engine.consume("globex", "api_calls", Decimal(1))).allowed
    ticker.now += 0.2  # past the ttl: the server decides again (the plan may have changed)
    server.json(200, _decision(True, "upgraded", upgraded_to="scale"))
    assert (await engine.consume("acme", "api_calls", Decimal(1))).reason == "upgraded"


async def test_a_refusal_is_not_cached_past_its_retry_after(
    async_client: AsyncClient, server: ScriptedServer
) -> None:
    soon = datetime.now(UTC) - timedelta(seconds=1)  # a throttle that has refilled already
    engine = RemoteEngine(async_client, cache_ttl=60.0)
    server.json(200, _decision(False, "throttled", retry_after=soon.isoformat()))
    await engine.consume("acme", "api_calls", Decimal(1))
    server.json(200, _decision(True, "throttled"))
    assert (await engine.consume("acme", "api_calls", Decimal(1))).allowed
    assert len(server.requests) == 2


@pytest.mark.parametrize(("failure", "allowed"), [("open", True), ("closed", False)])
async def test_an_unreachable_server_fails_as_the_named_setting_says(
    server: ScriptedServer,
    caplog: pytest.LogCaptureFixture,
    failure: str,
    allowed: bool,
) -> None:
    ticker = Ticker()
    transport = httpx.MockTransport(server)
    async with AsyncClient("http://fm", "k", max_retries=0, transport=transport) as http:
        engine = RemoteEngine(http, failure=failure, cache_ttl=1.0, monotonic=ticker)  # type: ignore[arg-type]
        server.reply(httpx.ConnectError)
        with caplog.at_level(logging.WARNING, "fairmeter.sdk"):
            decision = await engine.consume("acme", "api_calls", Decimal(1))
            # Within cache_ttl the engine does not knock again on a server that is down.
            again = await engine.consume("acme", "api_calls", Decimal(1))
        assert (decision.allowed, decision.reason) == (allowed, "limits_unavailable")
        assert again.allowed is allowed and len(server.requests) == 1
        counted = engine.stats.failed_open if allowed else engine.stats.failed_closed
        assert counted == 2
        assert "unreachable (transport_error" in caplog.text and f"failing {failure}" in caplog.text
        ticker.now += 1.5
        server.json(200, _decision(True, "within_allowance"))
        assert (await engine.consume("acme", "api_calls", Decimal(1))).reason == (
            "within_allowance"
        )


async def test_a_server_error_or_a_bad_key_counts_as_unreachable(
    server: ScriptedServer,
) -> None:
    transport = httpx.MockTransport(server)
    async with AsyncClient("http://fm", "k", max_retries=0, transport=transport) as http:
        engine = RemoteEngine(http, failure="closed", cache_ttl=0.0)
        server.problem(503, "limits_unavailable")
        assert (await engine.consume("acme", "m", Decimal(1))).reason == "limits_unavailable"
        server.problem(401, "unauthorized")
        assert not (await engine.consume("acme", "m", Decimal(1))).allowed
    assert engine.stats.failed_closed == 2


def test_remote_engine_settings_are_checked() -> None:
    with pytest.raises(ValueError, match="open"):
        RemoteEngine(base_url="http://fm", api_key="k", failure="maybe")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="base_url"):
        RemoteEngine()


def test_the_request_body_is_plain_json(client: Client, server: ScriptedServer) -> None:
    server.json(200, _decision(True, "within_allowance"))
    client.consume("acme", "api_calls", Decimal("1E+1"))
    assert json.loads(server.requests[0].content)["quantity"] == "10"
