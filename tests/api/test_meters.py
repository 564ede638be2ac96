"""Meters: defined once per key, validated field by field, archived rather than deleted."""

from __future__ import annotations

import httpx
import pytest

VALUE_METERS = ["sum", "max", "latest", "unique_count"]


def test_a_count_meter_needs_no_value_property(api: httpx.Client) -> None:
    response = api.post(
        "/v1/meters", json={"key": "calls", "event_type": "api.request", "aggregation": "count"}
    )
    assert response.status_code == 201
    assert response.json() == {
        "key": "calls",
        "name": "calls",
        "event_type": "api.request",
        "aggregation": "count",
        "value_property": None,
        "group_by": {},
        "unit": "",
        "archived": False,
        "backfilled_events": 0,
    }


@pytest.mark.parametrize("aggregation", VALUE_METERS)
def test_each_value_aggregation_is_created_with_its_value_property(
    api: httpx.Client, aggregation: str
) -> None:
    sent = {
        "key": f"m_{aggregation}",
        "name": f"Tokens by {aggregation}",
        "event_type": "api.request",
        "aggregation": aggregation,
        "value_property": "$.usage.tokens",
        "group_by": {"model": "$.model", "region": "$.where.region"},
        "unit": "tokens",
    }
    response = api.post("/v1/meters", json=sent)
    assert response.status_code == 201
    assert response.json() == {**sent, "archived": False, "backfilled_events": 0}
    assert api.get(f"/v1/meters/m_{aggregation}").json() == {**sent, "archived": False}


def test_meters_are_listed_by_key(api: httpx.Client, new_meter) -> None:
    for key in ("tokens", "calls", "bytes"):
        new_meter(key)
    listed = api.get("/v1/meters").json()["data"]
    assert [m["key"] for m in listed] == ["bytes", "calls", "tokens"]


def test_an_archived_meter_is_listed_only_on_request(api: httpx.Client, new_meter) -> None:
    new_meter("calls")
    new_meter("tokens", "sum", value_property="$.tokens")
    response = api.post("/v1/meters/calls/archive")
    assert response.status_code == 200
    assert response.json()["archived"] is True
    assert [m["key"] for m in api.get("/v1/meters").json()["data"]] == ["tokens"]
    everything = api.get("/v1/meters", params={"include_archived": "true"}).json()["data"]
    assert [(m["key"], m["archived"]) for m in everything] == [
        ("calls", True),
        ("tokens", False),
    ]
    assert api.get("/v1/meters/calls").json()["archived"] is True


def test_a_meter_without_events_can_be_deleted(api: httpx.Client, new_meter, problem) -> None:
    new_meter("calls")
    response = api.delete("/v1/meters/calls")
    assert response.status_code == 204
    assert response.content == b""
    problem(api.get("/v1/meters/calls"), 404, "not_found")


def test_a_meter_with_events_cannot_be_deleted(
    api: httpx.Client, new_meter, new_event, post_events, problem
) -> None:
    new_meter("calls")
    assert post_events([new_event("e1")]).json()["accepted"] == 1
    body = problem(api.delete("/v1/meters/calls"), 409, "in_use")
    assert [e["pointer"] for e in body["errors"]] == ["/key"]
    assert api.get("/v1/meters/calls").status_code == 200


def test_a_taken_meter_key_is_a_conflict_naming_the_key(
    api: httpx.Client, new_meter, problem
) -> None:
    new_meter("calls", name="First")
    again = {"key": "calls", "event_type": "other", "aggregation": "count"}
    body = problem(api.post("/v1/meters", json=again), 409, "already_exists")
    assert [e["pointer"] for e in body["errors"]] == ["/key"]
    assert api.get("/v1/meters/calls").json()["name"] == "First"


@pytest.mark.parametrize(
    ("change", "pointer"),
    [
        ({"aggregation": "median"}, "/aggregation"),
        ({"aggregation": None}, "/aggregation"),
        ({"aggregation": "sum"}, "/value_property"),
        ({"value_property": "$.tokens"}, "/value_property"),
        ({"aggregation": "sum", "value_property": "tokens"}, "/value_property"),
        ({"aggregation": "sum", "value_property": "$.items[0]"}, "/value_property"),
        ({"aggregation": "max", "value_property": 7}, "/value_property"),
        ({"group_by": {"model": "model"}}, "/group_by/model"),
        ({"group_by": {"model": "$.a.*"}}, "/group_by/model"),
        ({"group_by": {"Model": "$.model"}}, "/group_by/Model"),
        ({"group_by": ["model"]}, "/group_by"),
        ({"group_by": {f"g{i}": f"$.g{i}" for i in range(9)}}, "/group_by"),
        ({"key": "Calls"}, "/key"),
        ({"key": "9calls"}, "/key"),
        ({"key": "calls-per-day"}, "/key"),
        ({"key": None}, "/key"),
        ({"event_type": ""}, "/event_type"),
        ({"event_type": None}, "/event_type"),
        ({"unit": 5}, "/unit"),
    ],
)
def test_a_bad_meter_is_rejected_naming_the_field(
    api: httpx.Client, problem, change: dict[str, object], pointer: str
) -> None:
    sent = {"key": "calls", "event_type": "api.request", "aggregation": "count", **change}
    body = problem(api.post("/v1/meters", json=sent), 422, "invalid_input")
    assert [e["pointer"] for e in body["errors"]] == [pointer]
    assert api.get("/v1/meters").json()["data"] == []


def test_a_new_meter_counts_the_events_already_stored(
    api: httpx.Client, new_customer, new_event, post_events
) -> None:
    new_customer("acme")
    events = [new_event(f"e{i}", data={"tokens": i}) for i in range(1, 5)]
    assert post_events(events).json()["accepted"] == 4
    created = api.post(
        "/v1/meters",
        json={
            "key": "tokens",
            "event_type": "api.request",
            "aggregation": "sum",
            "value_property": "$.tokens",
        },
    ).json()
    assert created["backfilled_events"] == 4
    usage = api.get("/v1/meters/tokens/usage", params={"customer": "acme"}).json()
    assert [row["value"] for row in usage["data"]] == ["10"]


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/v1/meters/ghost"),
        ("POST", "/v1/meters/ghost/archive"),
        ("DELETE", "/v1/meters/ghost"),
        ("GET", "/v1/meters/ghost/usage"),
    ],
)
def test_an_unknown_meter_is_not_found(api: httpx.Client, problem, method: str, path: str) -> None:
    problem(api.request(method, path), 404, "not_found")
