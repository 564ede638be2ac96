"""EventBuffer: batches by size and time, keeps events on transient failure, same ids."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal
from typing import TYPE_CHECKING

import httpx
import pytest

from fairmeter.sdk import Client, EventBuffer, Rejection

if TYPE_CHECKING:
    from conftest import ScriptedServer

# Long enough that the timer never fires in tests that are not about it.
NEVER = 60.0


@pytest.fixture
def fragile_client(server: ScriptedServer) -> Iterator[Client]:
    """No retries inside the client, so one scripted failure fails one flush."""
    transport = httpx.MockTransport(server)
    with Client("http://t", "k", max_retries=0, transport=transport) as sdk_client:
        yield sdk_client


def test_add_assigns_the_id_immediately(client: Client, server: ScriptedServer) -> None:
    with EventBuffer(client, flush_interval=NEVER) as buffer:
        event_id = buffer.add(type="t", subject="s", id="mine")
        other_id = buffer.add(type="t", subject="s")
        assert event_id == "mine"
        assert len(other_id) == 36
        assert server.requests == []
    assert server.event_ids() == [["mine", other_id]]


def test_buffer_stamps_events_with_the_time_they_were_added(
    client: Client, server: ScriptedServer
) -> None:
    before = datetime.now(UTC)
    with EventBuffer(client, flush_interval=NEVER) as buffer:
        buffer.add(type="t", subject="s")
        buffer.add(type="t", subject="s", time="2025-01-01T00:00:00Z")
    stamped, given = server.bodies()[0]
    assert before <= datetime.fromisoformat(stamped["time"]) <= datetime.now(UTC)
    assert given["time"] == "2025-01-01T00:00:00Z"


def test_buffered_event_is_not_changed_by_later_changes_to_its_data(
    client: Client, server: ScriptedServer
) -> None:
    data = {"tokens": Decimal("1.50"), "tags": ["a"]}
    with EventBuffer(client, flush_interval=NEVER) as buffer:
        buffer.add(type="t", subject="s", data=data)
        data["tags"].append("b")
        data["tokens"] = Decimal(2)
    assert server.bodies()[0][0]["data"] == {"tokens": Decimal("1.50"), "tags": ["a"]}
    assert b'"tokens":1.50' in server.requests[0].content


def test_buffer_flushes_when_it_reaches_max_events(client: Client, server: ScriptedServer) -> None:
    with EventBuffer(client, max_events=3, flush_interval=NEVER) as buffer:
        ids = [buffer.add(type="t", subject="s") for _ in range(3)]
        assert server.event_ids() == [ids]
        assert buffer.pending == 0
        buffer.add(type="t", subject="s")
        assert len(server.requests) == 1


def test_buffer_flushes_on_the_interval(client: Client, server: ScriptedServer) -> None:
    with EventBuffer(client, flush_interval=0.02) as buffer:
        event_id = buffer.add(type="t", subject="s")
        assert server.wait_for(1)
    assert server.event_ids()[0] == [event_id]


def test_failed_flush_keeps_events_and_resends_the_same_ids(
    fragile_client: Client, server: ScriptedServer
) -> None:
    server.reply(httpx.ConnectError)
    with EventBuffer(fragile_client, flush_interval=NEVER) as buffer:
        ids = [buffer.add(type="t", subject="s") for _ in range(2)]
        assert buffer.flush() is False
        assert buffer.pending == 2
        assert buffer.last_error is not None
        assert buffer.last_error.code == "transport_error"
        later = buffer.add(type="t", subject="s")
        assert buffer.flush() is True
        assert buffer.pending == 0
        assert buffer.last_error is None
    assert server.event_ids() == [ids, [*ids, later]]
    assert buffer.rejected == []


@pytest.mark.parametrize("status", [429, 500, 503])
def test_server_side_failure_keeps_events(
    fragile_client: Client, server: ScriptedServer, status: int
) -> None:
    server.problem(status, "busy")
    with EventBuffer(fragile_client, flush_interval=NEVER) as buffer:
        buffer.add(type="t", subject="s")
        assert buffer.flush() is False
        assert buffer.pending == 1
    assert len(server.requests) == 2


def test_size_flush_waits_for_the_timer_while_the_server_is_failing(
    fragile_client: Client, server: ScriptedServer
) -> None:
    server.reply(httpx.ConnectError)
    with EventBuffer(fragile_client, max_events=2, flush_interval=NEVER) as buffer:
        buffer.add(type="t", subject="s")
        buffer.add(type="t", subject="s")  # size flush fails
        for _ in range(5):
            buffer.add(type="t", subject="s")
        assert len(server.requests) == 1
        assert buffer.flush() is True
        buffer.add(type="t", subject="s")
        buffer.add(type="t", subject="s")  # healthy again: size flushes resume
        assert len(server.requests) == 3


def test_rejected_events_are_reported_and_not_retried(
    client: Client, server: ScriptedServer
) -> None:
    reported: list[Rejection] = []
    errors = [{"pointer": "/subject", "detail": "no customer x", "code": "unknown_subject"}]
    item = {"index": 1, "id": "b", "errors": errors}
    server.json(200, {"accepted": 1, "duplicates": 0, "rejected": [item]})
    with EventBuffer(client, flush_interval=NEVER, on_rejected=reported.extend) as buffer:
        buffer.add(type="t", subject="s", id="a")
        buffer.add(type="t", subject="x", id="b")
        assert buffer.flush() is True
        assert buffer.pending == 0
    assert len(server.requests) == 1
    assert reported == buffer.rejected
    [rejection] = reported
    assert rejection.event is not None
    assert rejection.event["id"] == "b"
    assert (rejection.code, rejection.detail, rejection.problem) == (
        "unknown_subject",
        "/subject: no customer x",
        item,
    )


def test_a_batch_refused_whole_reports_each_item(client: Client, server: ScriptedServer) -> None:
    items = [{"index": 0, "detail": "bad"}, {"index": 1, "detail": "bad"}]
    server.problem(422, "invalid_events", accepted=0, duplicates=0, rejected=items)
    with EventBuffer(client, flush_interval=NEVER) as buffer:
        ids = [buffer.add(type="t", subject="s") for _ in range(2)]
        buffer.flush()
        assert buffer.pending == 0
    assert [r.event["id"] for r in buffer.rejected if r.event] == ids
    assert len(server.requests) == 1


def test_other_4xx_drops_the_batch_and_reports_every_event(
    client: Client, server: ScriptedServer
) -> None:
    server.problem(401, "unauthorized", detail="unknown key")
    with EventBuffer(client, flush_interval=NEVER) as buffer:
        buffer.add(type="t", subject="s")
        buffer.add(type="t", subject="s")
        assert buffer.flush() is True
    assert [(r.code, r.detail) for r in buffer.rejected] == [("unauthorized", "unknown key")] * 2
    assert buffer.last_error is not None
    assert len(server.requests) == 1


def test_close_flushes_what_is_left(client: Client, server: ScriptedServer) -> None:
    buffer = EventBuffer(client, flush_interval=NEVER)
    event_id = buffer.add(type="t", subject="s")
    buffer.close()
    buffer.close()
    assert server.event_ids() == [[event_id]]


def test_add_after_close_is_refused(client: Client) -> None:
    buffer = EventBuffer(client, flush_interval=NEVER)
    buffer.close()
    with pytest.raises(RuntimeError, match="closed"):
        buffer.add(type="t", subject="s")


def test_unencodable_event_is_refused_by_add(client: Client) -> None:
    with EventBuffer(client, flush_interval=NEVER) as buffer:
        with pytest.raises(TypeError):
            buffer.add(type="t", subject="s", data={"x": object()})
        assert buffer.pending == 0


def test_the_rejection_callback_may_add_events(client: Client, server: ScriptedServer) -> None:
    server.json(200, {"accepted": 0, "duplicates": 0, "rejected": [{"index": 0}]})
    buffers: list[EventBuffer] = []

    def resend_fixed(rejections: list[Rejection]) -> None:
        buffers[0].add(type="t", subject="fixed")

    with EventBuffer(
        client, max_events=1, flush_interval=NEVER, on_rejected=resend_fixed
    ) as buffer:
        buffers.append(buffer)
        buffer.add(type="t", subject="broken")
    assert [body[0]["subject"] for body in server.bodies()] == ["broken", "fixed"]


def test_concurrent_adds_deliver_every_event_exactly_once(
    client: Client, server: ScriptedServer
) -> None:
    per_thread, threads = 200, 8
    with EventBuffer(client, max_events=50, flush_interval=0.005) as buffer:

        def produce() -> None:
            for _ in range(per_thread):
                buffer.add(type="t", subject="s")

        workers = [threading.Thread(target=produce) for _ in range(threads)]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join()
    sent = [event_id for ids in server.event_ids() for event_id in ids]
    assert len(sent) == len(set(sent)) == per_thread * threads


@pytest.mark.parametrize(("max_events", "interval"), [(0, 1.0), (1, 0.0)])
def test_invalid_buffer_settings_are_refused(
    client: Client, max_events: int, interval: float
) -> None:
    with pytest.raises(ValueError):
        EventBuffer(client, max_events=max_events, flush_interval=interval)
