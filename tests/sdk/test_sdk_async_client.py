"""AsyncClient sends the same requests as Client and retries by the same rules."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import TYPE_CHECKING

import httpx
import pytest

from fairmeter.sdk import (
    AsyncClient,
    AsyncEventBuffer,
    NotFoundError,
    ServerError,
    TransportError,
    ValidationError,
)

if TYPE_CHECKING:
    from conftest import ScriptedServer

pytestmark = pytest.mark.anyio


async def test_requests_carry_the_bearer_api_key(
    async_client: AsyncClient, server: ScriptedServer
) -> None:
    await async_client.send_event(type="t", subject="s")
    assert server.requests[0].headers["authorization"] == "Bearer fm_test_key"


async def test_send_event_posts_one_cloudevent_with_exact_decimals(
    async_client: AsyncClient, server: ScriptedServer
) -> None:
    result = await async_client.send_event(
        type="api.call",
        subject="acme",
        id="e-1",
        time=datetime(2025, 1, 1, tzinfo=UTC),
        data={"cost": Decimal("0.000000000001")},
    )
    request = server.requests[0]
    assert request.headers["content-type"] == "application/cloudevents+json"
    assert b'"cost":0.000000000001' in request.content
    assert server.bodies()[0]["time"] == "2025-01-01T00:00:00+00:00"
    assert result["accepted"] == 1


async def test_send_events_splits_and_rewrites_rejected_index(
    async_client: AsyncClient, server: ScriptedServer
) -> None:
    server.json(200, {"accepted": 2, "duplicates": 0, "rejected": []})
    server.json(200, {"accepted": 0, "duplicates": 0, "rejected": [{"index": 0}]})
    result = await async_client.send_events(
        [{"type": "t", "subject": "s"} for _ in range(3)], batch_size=2
    )
    assert [len(ids) for ids in server.event_ids()] == [2, 1]
    assert result == {"accepted": 2, "duplicates": 0, "rejected": [{"index": 2}]}


async def test_send_events_raises_when_nothing_was_accepted(
    async_client: AsyncClient, server: ScriptedServer
) -> None:
    server.problem(422, "invalid_events", accepted=0, duplicates=0, rejected=[{"index": 0}])
    with pytest.raises(ValidationError) as caught:
        await async_client.send_events([{"type": "t", "subject": "s"}])
    assert caught.value.problem["rejected"] == [{"index": 0}]
    assert len(server.requests) == 1


async def test_retry_on_503_and_connection_error_keeps_the_same_event_id(
    async_client: AsyncClient, server: ScriptedServer
) -> None:
    server.problem(503, "unavailable")
    server.reply(httpx.ConnectError)
    await async_client.send_event(type="t", subject="s")
    first, second, third = server.event_ids()
    assert first == second == third


async def test_gives_up_after_max_retries(
    async_client: AsyncClient, server: ScriptedServer
) -> None:
    server.reply(*[httpx.ConnectError] * 4)
    with pytest.raises(TransportError):
        await async_client.send_event(type="t", subject="s")
    assert len(server.requests) == 4


async def test_creates_are_not_retried(async_client: AsyncClient, server: ScriptedServer) -> None:
    server.problem(503, "unavailable")
    with pytest.raises(ServerError):
        await async_client.create_meter("tokens", event_type="t", aggregation="count")
    assert len(server.requests) == 1


async def test_typed_error_carries_the_problem_code(
    async_client: AsyncClient, server: ScriptedServer
) -> None:
    server.problem(404, "not_found")
    with pytest.raises(NotFoundError) as caught:
        await async_client.get_customer("nobody")
    assert caught.value.code == "not_found"


async def test_resources_and_usage(async_client: AsyncClient, server: ScriptedServer) -> None:
    server.json(201, {"key": "acme"})
    server.json(200, {"data": [{"key": "acme"}]})
    server.json(200, {"key": "acme", "name": "A"})
    server.json(200, {"data": [{"key": "tokens"}]})
    server.json(200, {"key": "tokens"})
    server.json(200, {"data": [{"group": {}, "value": "1.10"}]})
    assert await async_client.create_customer("acme") == {"key": "acme"}
    assert await async_client.list_customers() == [{"key": "acme"}]
    assert await async_client.update_customer("acme", name="A") == {"key": "acme", "name": "A"}
    assert await async_client.list_meters() == [{"key": "tokens"}]
    assert await async_client.get_meter("tokens") == {"key": "tokens"}
    rows = await async_client.usage("tokens", group_by="model")
    assert rows == [{"group": {}, "value": Decimal("1.10")}]
    assert [(r.method, r.url.path) for r in server.requests] == [
        ("POST", "/v1/customers"),
        ("GET", "/v1/customers"),
        ("PATCH", "/v1/customers/acme"),
        ("GET", "/v1/meters"),
        ("GET", "/v1/meters/tokens"),
        ("GET", "/v1/meters/tokens/usage"),
    ]
    assert server.requests[-1].url.params["group_by"] == "model"


async def test_client_buffer_returns_an_async_event_buffer(
    async_client: AsyncClient, server: ScriptedServer
) -> None:
    async with async_client.buffer(flush_interval=60) as buffer:
        assert isinstance(buffer, AsyncEventBuffer)
        event_id = await buffer.add(type="t", subject="s")
    assert server.event_ids() == [[event_id]]
