"""A scripted stand-in for the Fairmeter API, served through httpx.MockTransport."""

from __future__ import annotations

import json
import threading
from collections import deque
from collections.abc import AsyncIterator, Callable, Iterator
from decimal import Decimal
from typing import Any

import httpx
import pytest

from fairmeter.sdk import AsyncClient, Client

BASE_URL = "http://fairmeter.test"
API_KEY = "fm_test_key"

Reply = httpx.Response | type[httpx.TransportError] | Callable[[httpx.Request], httpx.Response]


def _default_reply(request: httpx.Request) -> httpx.Response:
    """Accept every event; answer anything else with an empty object."""
    if request.method == "POST" and request.url.path == "/v1/events":
        body = json.loads(request.content)
        count = len(body) if isinstance(body, list) else 1
        return httpx.Response(200, json={"accepted": count, "duplicates": 0, "rejected": []})
    return httpx.Response(200, json={})


class ScriptedServer:
    """Answers with queued replies in order, then with `_default_reply`; records requests."""

    def __init__(self) -> None:
        self.requests: list[httpx.Request] = []
        self._replies: deque[Reply] = deque()
        self._seen = threading.Condition()

    def __call__(self, request: httpx.Request) -> httpx.Response:
        with self._seen:
            self.requests.append(request)
            reply = self._replies.popleft() if self._replies else _default_reply
            self._seen.notify_all()
        if isinstance(reply, type):
            raise reply("scripted failure", request=request)
        return reply(request) if callable(reply) else reply

    def reply(self, *replies: Reply) -> None:
        self._replies.extend(replies)

    def json(self, status: int, body: Any, **headers: str) -> None:
        self.reply(httpx.Response(status, json=body, headers=headers))

    def problem(self, status: int, code: str, **fields: Any) -> None:
        body = {"type": "about:blank", "title": code, "status": status, "code": code, **fields}
        self.reply(
            httpx.Response(
                status,
                content=json.dumps(body).encode(),
                headers={"content-type": "application/problem+json"},
            )
        )

    def bodies(self) -> list[Any]:
        return [json.loads(r.content, parse_float=Decimal) for r in self.requests]

    def event_ids(self) -> list[list[str]]:
        """Ids per request, for checking that retries resend the same events."""
        ids = []
        for body in self.bodies():
            events = body if isinstance(body, list) else [body]
            ids.append([event["id"] for event in events])
        return ids

    def wait_for(self, count: int, timeout: float = 2.0) -> bool:
        with self._seen:
            return self._seen.wait_for(lambda: len(self.requests) >= count, timeout)


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def server() -> ScriptedServer:
    return ScriptedServer()


@pytest.fixture
def client(server: ScriptedServer) -> Iterator[Client]:
    with Client(
        BASE_URL, API_KEY, backoff=0.0, transport=httpx.MockTransport(server)
    ) as sdk_client:
        yield sdk_client


@pytest.fixture
async def async_client(server: ScriptedServer) -> AsyncIterator[AsyncClient]:
    async with AsyncClient(
        BASE_URL, API_KEY, backoff=0.0, transport=httpx.MockTransport(server)
    ) as sdk_client:
        yield sdk_client
