"""What the blocking client puts on the wire and how it shapes the answers."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from typing import TYPE_CHECKING, Any

import httpx
import pytest

from fairmeter.sdk import (
    Client,
    Event,
    EventBuffer,
    FairmeterError,
    NotFoundError,
    ValidationError,
    _calls,
)

if TYPE_CHECKING:
    from conftest import ScriptedServer


def test_requests_carry_the_bearer_api_key(client: Client, server: ScriptedServer) -> None:
    server.json(200, {"data": []})
    client.list_meters()
    assert server.requests[0].headers["authorization"] == "Bearer fm_test_key"
    assert server.requests[0].headers["user-agent"].startswith("fairmeter-sdk-python/")


def test_empty_api_key_is_refused() -> None:
    with pytest.raises(ValueError, match="api_key"):
        Client("http://fairmeter.test", "")


def test_base_url_path_prefix_is_kept(server: ScriptedServer) -> None:
    transport = httpx.MockTransport(server)
    with Client("http://fairmeter.test/metering", "k", transport=transport) as prefixed:
        prefixed.send_event(type="t", subject="s")
    assert server.requests[0].url.path == "/metering/v1/events"


def test_send_event_posts_one_structured_cloudevent(client: Client, server: ScriptedServer) -> None:
    moment = datetime(2025, 5, 1, 12, 0, tzinfo=timezone(timedelta(hours=-5)))
    result = client.send_event(
        type="api.call",
        subject="acme",
        data={"tokens": 3},
        id="evt-1",
        time=moment,
        region="us",
    )
    request = server.requests[0]
    assert (request.method, request.url.path) == ("POST", "/v1/events")
    assert request.headers["content-type"] == "application/cloudevents+json"
    assert server.bodies()[0] == {
        "specversion": "1.0",
        "id": "evt-1",
        "source": "fairmeter-sdk",
        "type": "api.call",
        "subject": "acme",
        "time": "2025-05-01T12:00:00-05:00",
        "region": "us",
        "data": {"tokens": 3},
    }
    assert result == {"accepted": 1, "duplicates": 0, "rejected": []}


def test_send_event_generates_a_uuid_id_when_none_given(
    client: Client, server: ScriptedServer
) -> None:
    client.send_event(type="t", subject="s")
    client.send_event(type="t", subject="s")
    first, second = server.event_ids()
    assert first != second
    assert len(first[0]) == 36


def test_send_event_omits_time_when_none(client: Client, server: ScriptedServer) -> None:
    client.send_event(type="t", subject="s")
    assert "time" not in server.bodies()[0]


def test_send_event_refuses_naive_time_before_sending(
    client: Client, server: ScriptedServer
) -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        client.send_event(type="t", subject="s", time=datetime(2025, 1, 1))
    assert server.requests == []


def test_send_event_keeps_decimal_quantities_exact_in_the_body(
    client: Client, server: ScriptedServer
) -> None:
    big = "123456789012345678901234567890"
    client.send_event(
        type="t", subject="s", data={"cost": Decimal("0.000000000001"), "bytes": Decimal(big)}
    )
    content = server.requests[0].content
    assert b'"cost":0.000000000001' in content
    assert f'"bytes":{big}'.encode() in content


def test_send_event_422_raises_validation_error_with_item_rejections(
    client: Client, server: ScriptedServer
) -> None:
    rejected = [{"index": 0, "id": "e", "detail": "unknown subject"}]
    server.problem(422, "invalid_events", accepted=0, duplicates=0, rejected=rejected)
    with pytest.raises(ValidationError) as caught:
        client.send_event(type="t", subject="nobody", id="e")
    assert caught.value.code == "invalid_events"
    assert caught.value.problem["rejected"] == rejected


def test_send_events_posts_a_batch(client: Client, server: ScriptedServer) -> None:
    result = client.send_events(
        [Event(type="t", subject="a", id="1"), {"type": "t", "subject": "b", "id": "2"}]
    )
    assert server.requests[0].headers["content-type"] == "application/cloudevents-batch+json"
    assert server.event_ids() == [["1", "2"]]
    assert [event["specversion"] for event in server.bodies()[0]] == ["1.0", "1.0"]
    assert result == {"accepted": 2, "duplicates": 0, "rejected": []}


def test_send_events_splits_into_chunks_of_batch_size(
    client: Client, server: ScriptedServer
) -> None:
    events = [Event(type="t", subject="s", id=str(n)) for n in range(7)]
    result = client.send_events(events, batch_size=3)
    assert server.event_ids() == [["0", "1", "2"], ["3", "4", "5"], ["6"]]
    assert result["accepted"] == 7


def test_send_events_default_chunk_is_the_client_batch_size(server: ScriptedServer) -> None:
    transport = httpx.MockTransport(server)
    with Client("http://fairmeter.test", "k", transport=transport, batch_size=2) as small:
        small.send_events([{"type": "t", "subject": "s"} for _ in range(5)])
    assert [len(ids) for ids in server.event_ids()] == [2, 2, 1]


def test_send_events_chunks_stay_under_the_byte_limit() -> None:
    events = [Event(type="t", subject="s", data={"pad": "x" * 100}) for _ in range(10)]
    one = len(_calls.event_batches(events[:1], 1000)[0][1].content or b"")
    batches = _calls.event_batches(events, 1000, max_bytes=3 * one)
    assert [offset for offset, _ in batches] == [0, 3, 6, 9]
    assert all(len(call.content or b"") <= 3 * one for _, call in batches)
    sent = [json.loads(call.content or b"") for _, call in batches]
    assert [event["id"] for chunk in sent for event in chunk] == [e.id for e in events]


def test_an_event_over_the_byte_limit_goes_alone() -> None:
    events = [Event(type="t", subject="s", data={"pad": "x" * 500}) for _ in range(2)]
    assert [offset for offset, _ in _calls.event_batches(events, 10, max_bytes=100)] == [0, 1]


def test_send_events_rewrites_rejected_index_to_the_callers_list(
    client: Client, server: ScriptedServer
) -> None:
    server.json(200, {"accepted": 1, "duplicates": 1, "rejected": [{"index": 0, "id": "0"}]})
    server.json(200, {"accepted": 1, "duplicates": 0, "rejected": [{"index": 1, "id": "4"}]})
    events = [Event(type="t", subject="s", id=str(n)) for n in range(5)]
    result = client.send_events(events, batch_size=3)
    assert result == {
        "accepted": 2,
        "duplicates": 1,
        "rejected": [{"index": 0, "id": "0"}, {"index": 4, "id": "4"}],
    }


def test_send_events_rewrites_rejected_pointers_to_the_callers_list(
    client: Client, server: ScriptedServer
) -> None:
    errors = [{"pointer": "/1/data/tokens", "detail": "not a number"}, {"pointer": "/10"}]
    server.json(200, {"accepted": 2, "duplicates": 0, "rejected": []})
    server.json(200, {"accepted": 0, "duplicates": 0, "rejected": [{"index": 1, "errors": errors}]})
    result = client.send_events([{"type": "t", "subject": "s"} for _ in range(4)], batch_size=2)
    [item] = result["rejected"]
    assert item["index"] == 3
    assert item["errors"] == [
        {"pointer": "/3/data/tokens", "detail": "not a number"},
        {"pointer": "/10"},
    ]


def test_send_events_reports_a_refused_chunk_when_another_was_accepted(
    client: Client, server: ScriptedServer
) -> None:
    server.json(200, {"accepted": 2, "duplicates": 0, "rejected": []})
    server.problem(422, "invalid_events", accepted=0, duplicates=0, rejected=[{"index": 0}])
    result = client.send_events([{"type": "t", "subject": "s"} for _ in range(3)], batch_size=2)
    assert result == {"accepted": 2, "duplicates": 0, "rejected": [{"index": 2}]}


def test_send_events_raises_when_no_chunk_was_accepted(
    client: Client, server: ScriptedServer
) -> None:
    server.problem(422, "invalid_events", accepted=0, duplicates=0, rejected=[{"index": 1}])
    server.problem(422, "invalid_events", accepted=0, duplicates=0, rejected=[{"index": 0}])
    with pytest.raises(ValidationError) as caught:
        client.send_events([{"type": "t", "subject": "s"} for _ in range(4)], batch_size=2)
    assert caught.value.code == "invalid_events"
    assert caught.value.problem["rejected"] == [{"index": 1}, {"index": 2}]
    assert caught.value.problem["accepted"] == 0


def test_send_events_other_4xx_is_raised(client: Client, server: ScriptedServer) -> None:
    server.problem(413, "payload_too_large")
    with pytest.raises(FairmeterError, match="payload_too_large"):
        client.send_events([{"type": "t", "subject": "s"}])


def test_send_events_with_no_events_sends_nothing(client: Client, server: ScriptedServer) -> None:
    assert client.send_events([]) == {"accepted": 0, "duplicates": 0, "rejected": []}
    assert server.requests == []


def test_send_events_refuses_a_bad_event_before_sending_any_chunk(
    client: Client, server: ScriptedServer
) -> None:
    events: list[dict[str, Any]] = [
        {"type": "t", "subject": "s"},
        {"type": "t", "subject": "s", "data": {"x": {1}}},
    ]
    with pytest.raises(TypeError):
        client.send_events(events, batch_size=1)
    assert server.requests == []


def test_create_meter_posts_only_given_fields(client: Client, server: ScriptedServer) -> None:
    server.json(201, {"key": "tokens"})
    meter = client.create_meter(
        "tokens", event_type="llm.call", aggregation="sum", value_property="$.tokens"
    )
    request = server.requests[0]
    assert (request.method, request.url.path) == ("POST", "/v1/meters")
    assert request.headers["content-type"] == "application/json"
    assert server.bodies()[0] == {
        "key": "tokens",
        "event_type": "llm.call",
        "aggregation": "sum",
        "value_property": "$.tokens",
    }
    assert meter == {"key": "tokens"}


def test_resource_keys_are_escaped_in_the_path(client: Client, server: ScriptedServer) -> None:
    client.get_meter("a/b?c")
    assert server.requests[0].url.raw_path == b"/v1/meters/a%2Fb%3Fc"


def test_list_meters_returns_the_data_list(client: Client, server: ScriptedServer) -> None:
    server.json(200, {"data": [{"key": "a"}, {"key": "b"}]})
    assert client.list_meters() == [{"key": "a"}, {"key": "b"}]
    assert (server.requests[0].method, server.requests[0].url.path) == ("GET", "/v1/meters")


def test_list_meters_can_include_archived(client: Client, server: ScriptedServer) -> None:
    server.json(200, {"data": []})
    client.list_meters(include_archived=True)
    assert server.requests[0].url.params["include_archived"] == "true"


def test_list_customers_follows_every_page(client: Client, server: ScriptedServer) -> None:
    server.json(200, {"data": [{"key": "a"}, {"key": "b"}], "has_more": True})
    server.json(200, {"data": [{"key": "c"}], "has_more": False})
    assert [c["key"] for c in client.list_customers()] == ["a", "b", "c"]
    first, second = (dict(r.url.params) for r in server.requests)
    assert first == {"limit": "1000"}
    assert second == {"limit": "1000", "starting_after": "b"}


def test_list_answer_without_data_is_an_invalid_response(
    client: Client, server: ScriptedServer
) -> None:
    server.json(200, [])
    with pytest.raises(FairmeterError) as caught:
        client.list_customers()
    assert caught.value.code == "invalid_response"


def test_create_customer_sends_defaults(client: Client, server: ScriptedServer) -> None:
    client.create_customer("acme", name="Acme", metadata={"tier": "gold"})
    assert server.requests[0].url.path == "/v1/customers"
    assert server.bodies()[0] == {
        "key": "acme",
        "name": "Acme",
        "currency": "USD",
        "timezone": "UTC",
        "metadata": {"tier": "gold"},
    }


def test_get_and_list_customers(client: Client, server: ScriptedServer) -> None:
    server.json(200, {"key": "acme"})
    server.json(200, {"data": [{"key": "acme"}]})
    assert client.get_customer("acme") == {"key": "acme"}
    assert client.list_customers() == [{"key": "acme"}]
    assert [r.url.path for r in server.requests] == ["/v1/customers/acme", "/v1/customers"]


def test_update_customer_patches_given_fields_including_null(
    client: Client, server: ScriptedServer
) -> None:
    client.update_customer("acme", email=None, name="Acme Inc")
    request = server.requests[0]
    assert (request.method, request.url.path) == ("PATCH", "/v1/customers/acme")
    assert server.bodies()[0] == {"email": None, "name": "Acme Inc"}


def test_usage_sends_query_and_returns_decimal_values(
    client: Client, server: ScriptedServer
) -> None:
    row = {"from": "a", "to": "b", "customer": "acme", "group": {"model": "x"}}
    server.json(200, {"data": [{**row, "value": "0.000000000001"}, {**row, "value": None}]})
    rows = client.usage(
        "tokens",
        customer="acme",
        from_=datetime(2025, 1, 1, tzinfo=UTC),
        to="2025-02-01T00:00:00Z",
        window="day",
        timezone="Europe/Paris",
        group_by=["model", "region"],
    )
    url = server.requests[0].url
    assert url.path == "/v1/meters/tokens/usage"
    assert dict(url.params) == {
        "customer": "acme",
        "from": "2025-01-01T00:00:00+00:00",
        "to": "2025-02-01T00:00:00Z",
        "window": "day",
        "timezone": "Europe/Paris",
        "group_by": "model,region",
    }
    assert rows[0]["value"] == Decimal("0.000000000001")
    assert rows[1]["value"] is None


def test_usage_sends_only_window_by_default(client: Client, server: ScriptedServer) -> None:
    server.json(200, {"data": []})
    assert client.usage("tokens") == []
    assert dict(server.requests[0].url.params) == {"window": "none"}


def test_http_error_raises_the_typed_error(client: Client, server: ScriptedServer) -> None:
    server.problem(404, "not_found", detail="no meter tokens")
    with pytest.raises(NotFoundError) as caught:
        client.get_meter("tokens")
    assert (caught.value.code, caught.value.status) == ("not_found", 404)


def test_success_body_that_is_not_json_is_an_invalid_response(
    client: Client, server: ScriptedServer
) -> None:
    server.reply(httpx.Response(200, text="ok"))
    with pytest.raises(FairmeterError) as caught:
        client.get_meter("tokens")
    assert caught.value.code == "invalid_response"


def test_client_buffer_returns_an_event_buffer_bound_to_the_client(
    client: Client, server: ScriptedServer
) -> None:
    with client.buffer(max_events=10, flush_interval=60) as buffer:
        assert isinstance(buffer, EventBuffer)
        event_id = buffer.add(type="t", subject="s")
    assert server.event_ids() == [[event_id]]
