"""AsyncEventBuffer follows EventBuffer's rules with an asyncio task as the timer."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

import httpx
import pytest

from fairmeter.sdk import AsyncClient, AsyncEventBuffer, Rejection

if TYPE_CHECKING:
    from conftest import ScriptedServer

pytestmark = pytest.mark.anyio

NEVER = 60.0


@pytest.fixture
async def fragile_client(server: ScriptedServer) -> AsyncIterator[AsyncClient]:
    transport = httpx.MockTransport(server)
    async with AsyncClient("http://t", "k", max_retries=0, transport=transport) as sdk_client:
        yield sdk_client


async def test_buffer_flushes_when_it_reaches_max_events(
    async_client: AsyncClient, server: ScriptedServer
) -> None:
    async with AsyncEventBuffer(async_client, max_events=2, flush_interval=NEVER) as buffer:
        ids = [await buffer.add(type="t", subject="s") for _ in range(2)]
        assert server.event_ids() == [ids]
        assert buffer.pending == 0


async def test_buffer_flushes_on_the_interval(
    async_client: AsyncClient, server: ScriptedServer
) -> None:
    async with AsyncEventBuffer(async_client, flush_interval=0.01) as buffer:
        event_id = await buffer.add(type="t", subject="s")
        for _ in range(200):
            if server.requests:
                break
            await asyncio.sleep(0.01)
    assert server.event_ids()[0] == [event_id]


async def test_failed_flush_keeps_events_and_resends_the_same_ids(
    fragile_client: AsyncClient, server: ScriptedServer
) -> None:
    server.reply(httpx.ConnectError)
    async with AsyncEventBuffer(fragile_client, flush_interval=NEVER) as buffer:
        ids = [await buffer.add(type="t", subject="s") for _ in range(2)]
        assert await buffer.flush() is False
        assert buffer.pending == 2
        assert await buffer.flush() is True
    assert server.event_ids() == [ids, ids]


async def test_rejected_events_are_reported_and_not_retried(
    async_client: AsyncClient, server: ScriptedServer
) -> None:
    reported: list[Rejection] = []
    server.json(200, {"accepted": 0, "duplicates": 0, "rejected": [{"index": 0, "code": "bad"}]})
    buffer = AsyncEventBuffer(async_client, flush_interval=NEVER, on_rejected=reported.extend)
    event_id = await buffer.add(type="t", subject="s")
    await buffer.close()
    await buffer.close()
    assert [(r.code, r.event and r.event["id"]) for r in reported] == [("bad", event_id)]
    assert len(server.requests) == 1


async def test_add_after_close_is_refused(async_client: AsyncClient) -> None:
    buffer = AsyncEventBuffer(async_client, flush_interval=NEVER)
    await buffer.close()
    with pytest.raises(RuntimeError, match="closed"):
        await buffer.add(type="t", subject="s")
