"""Retries: only idempotent calls, only on 5xx/429/transport failures, same event ids."""

from __future__ import annotations

import random
from typing import TYPE_CHECKING

import httpx
import pytest

from fairmeter.sdk import (
    Client,
    ConflictError,
    RateLimitError,
    ServerError,
    TransportError,
    ValidationError,
)
from fairmeter.sdk._retry import MAX_DELAY, RetryPolicy

if TYPE_CHECKING:
    from conftest import ScriptedServer


def test_retry_on_503_keeps_the_same_event_id(client: Client, server: ScriptedServer) -> None:
    server.problem(503, "unavailable")
    server.problem(503, "unavailable")
    client.send_event(type="t", subject="s")
    ids = server.event_ids()
    assert len(ids) == 3
    assert ids[0] == ids[1] == ids[2]


def test_retry_on_connection_error_keeps_the_same_event_ids(
    client: Client, server: ScriptedServer
) -> None:
    server.reply(httpx.ConnectError, httpx.ReadError)
    result = client.send_events([{"type": "t", "subject": "s"} for _ in range(3)])
    first, second, third = server.event_ids()
    assert first == second == third
    assert len(set(first)) == 3
    assert result["accepted"] == 3


def test_timeout_is_retried(client: Client, server: ScriptedServer) -> None:
    server.reply(httpx.ReadTimeout)
    client.send_event(type="t", subject="s")
    assert len(server.requests) == 2


def test_429_is_retried(client: Client, server: ScriptedServer) -> None:
    server.problem(429, "rate_limited")
    client.send_event(type="t", subject="s")
    assert len(server.requests) == 2


def test_no_retry_on_422(client: Client, server: ScriptedServer) -> None:
    server.problem(422, "invalid_events", accepted=0, duplicates=0, rejected=[{"index": 0}])
    with pytest.raises(ValidationError):
        client.send_event(type="t", subject="s")
    assert len(server.requests) == 1


@pytest.mark.parametrize("status", [400, 401, 403, 404, 409, 413])
def test_no_retry_on_4xx_other_than_429(
    client: Client, server: ScriptedServer, status: int
) -> None:
    server.problem(status, f"code_{status}")
    with pytest.raises(Exception, match=f"code_{status}"):
        client.send_events([{"type": "t", "subject": "s"}])
    assert len(server.requests) == 1


def test_server_error_is_raised_after_max_retries(client: Client, server: ScriptedServer) -> None:
    server.reply(*[httpx.Response(500, text="boom")] * 4)
    with pytest.raises(ServerError) as caught:
        client.send_event(type="t", subject="s")
    assert caught.value.code == "http_500"
    assert len(server.requests) == 4  # the first attempt and max_retries=3


def test_rate_limit_error_is_raised_after_max_retries(
    client: Client, server: ScriptedServer
) -> None:
    for _ in range(4):
        server.problem(429, "rate_limited")
    with pytest.raises(RateLimitError):
        client.get_meter("tokens")
    assert len(server.requests) == 4


def test_connection_failure_after_retries_is_a_transport_error(
    client: Client, server: ScriptedServer
) -> None:
    server.reply(*[httpx.ConnectError] * 4)
    with pytest.raises(TransportError) as caught:
        client.send_event(type="t", subject="s")
    assert caught.value.code == "transport_error"
    assert isinstance(caught.value.__cause__, httpx.ConnectError)
    assert len(server.requests) == 4


def test_max_retries_zero_makes_a_single_attempt(server: ScriptedServer) -> None:
    server.reply(httpx.ConnectError)
    transport = httpx.MockTransport(server)
    with (
        Client("http://t", "k", max_retries=0, transport=transport) as once,
        pytest.raises(TransportError),
    ):
        once.send_event(type="t", subject="s")
    assert len(server.requests) == 1


def test_reads_are_retried(client: Client, server: ScriptedServer) -> None:
    server.problem(502, "bad_gateway")
    server.json(200, {"data": []})
    assert client.list_customers() == []
    assert len(server.requests) == 2


@pytest.mark.parametrize("failure", ["503", "connect"])
def test_creates_and_updates_are_never_retried(
    client: Client, server: ScriptedServer, failure: str
) -> None:
    if failure == "503":
        server.problem(503, "unavailable")
        expected: type[Exception] = ServerError
    else:
        server.reply(httpx.ConnectError)
        expected = TransportError
    with pytest.raises(expected):
        client.create_customer("acme")
    assert len(server.requests) == 1


def test_a_create_answered_409_is_not_retried(client: Client, server: ScriptedServer) -> None:
    server.problem(409, "customer_exists")
    with pytest.raises(ConflictError):
        client.create_customer("acme")
    assert len(server.requests) == 1


def test_backoff_grows_exponentially_with_bounded_jitter() -> None:
    random.seed(7)
    policy = RetryPolicy(max_retries=5, backoff=0.2)
    for attempt in range(4):
        base = 0.2 * 2**attempt
        delays = [policy.delay(attempt) for _ in range(50)]
        assert all(base / 2 <= delay <= base for delay in delays)
        assert len(set(delays)) > 1


def test_backoff_is_capped() -> None:
    assert RetryPolicy(max_retries=50, backoff=1.0).delay(40) <= MAX_DELAY


def test_backoff_waits_at_least_retry_after_up_to_the_cap() -> None:
    policy = RetryPolicy(max_retries=3, backoff=0.0)
    assert policy.delay(0, retry_after=2.0) == 2.0
    assert policy.delay(0, retry_after=3600.0) == MAX_DELAY


def test_retry_after_header_sets_the_wait() -> None:
    policy = RetryPolicy(max_retries=3, backoff=0.0)
    response = httpx.Response(503, headers={"Retry-After": "1.5"})
    assert policy.after_response(True, 0, response) == 1.5


@pytest.mark.parametrize(("retries", "backoff"), [(-1, 0.1), (1, -0.1)])
def test_negative_retry_settings_are_refused(retries: int, backoff: float) -> None:
    with pytest.raises(ValueError):
        RetryPolicy(max_retries=retries, backoff=backoff)
