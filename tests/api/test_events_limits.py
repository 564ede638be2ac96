"""Bodies that cannot be read as events are refused whole, before anything is stored."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text

from fairmeter.api.app import create_app
from fairmeter.config import Settings
from fairmeter.domain.keys import Scope
from fairmeter.services.clock import FixedClock
from fairmeter.services.keys import create_key
from fairmeter.services.runtime import Runtime
from fairmeter.storage.database import Database
from fairmeter.wiring import build

MAX_BODY = 2000
MAX_EVENTS = 3


@pytest.fixture
def small_runtime(database_url: str, clock: FixedClock) -> Iterator[Runtime]:
    settings = Settings(
        database_url=database_url, max_body_bytes=MAX_BODY, max_batch_events=MAX_EVENTS
    )
    rt = build(settings, clock=clock)
    yield rt
    rt.close()


@pytest.fixture
def small_api(small_runtime: Runtime) -> Iterator[TestClient]:
    """An app whose limits are small enough to cross in a test."""
    key = create_key(small_runtime.db, small_runtime.clock, Scope.INGEST, "limits")
    with TestClient(create_app(small_runtime)) as client:
        client.headers["Authorization"] = f"Bearer {key}"
        yield client


def _stored_count(rt: Runtime) -> int:
    return _count(rt.db)


def _count(db: Database) -> int:
    with db.read() as conn:
        return int(conn.execute(text("SELECT count(*) FROM events")).scalar_one())


def _post(client: TestClient, content: Any, content_type: str) -> httpx.Response:
    return client.post("/v1/events", content=content, headers={"content-type": content_type})


def test_a_body_over_the_limit_is_too_large(
    small_api: TestClient, small_runtime: Runtime, new_event, problem
) -> None:
    event = new_event("e1", data={"padding": "x" * MAX_BODY})
    body = json.dumps(event).encode()
    assert len(body) > MAX_BODY
    problem(_post(small_api, body, "application/cloudevents+json"), 413, "payload_too_large")
    assert _stored_count(small_runtime) == 0


def test_a_streamed_body_over_the_limit_is_too_large(
    small_api: TestClient, small_runtime: Runtime, new_event, problem
) -> None:
    events = [new_event(f"e{i}", data={"padding": "x" * 700}) for i in range(MAX_EVENTS)]
    raw = json.dumps(events).encode()
    assert len(raw) > MAX_BODY

    def chunks() -> Iterator[bytes]:
        # No Content-Length: the server must count the bytes as they arrive.
        for start in range(0, len(raw), 500):
            yield raw[start : start + 500]

    response = _post(small_api, chunks(), "application/cloudevents-batch+json")
    problem(response, 413, "payload_too_large")
    assert _stored_count(small_runtime) == 0


def test_a_body_at_the_limit_is_read(small_api: TestClient, new_event) -> None:
    event = new_event("e1", data={"padding": ""})
    size = len(json.dumps(event).encode())
    event["data"]["padding"] = "x" * (MAX_BODY - size)
    body = json.dumps(event).encode()
    assert len(body) == MAX_BODY
    assert _post(small_api, body, "application/json").json()["accepted"] == 1


def test_a_batch_over_the_event_limit_is_too_large(
    small_api: TestClient, small_runtime: Runtime, new_event, problem
) -> None:
    batch = [new_event(f"e{i}") for i in range(MAX_EVENTS + 1)]
    response = _post(small_api, json.dumps(batch), "application/cloudevents-batch+json")
    problem(response, 413, "payload_too_large")
    assert _stored_count(small_runtime) == 0


def test_a_batch_at_the_event_limit_is_accepted(small_api: TestClient, new_event) -> None:
    batch = [new_event(f"e{i}") for i in range(MAX_EVENTS)]
    response = _post(small_api, json.dumps(batch), "application/cloudevents-batch+json")
    assert response.json()["accepted"] == MAX_EVENTS


def test_a_mixed_batch_over_the_event_limit_is_too_large(
    small_api: TestClient, new_event, problem
) -> None:
    # The count holds even when some items are bad (the slower, per-item decoding path).
    batch = [new_event(f"e{i}", time="yesterday") for i in range(MAX_EVENTS + 1)]
    response = _post(small_api, json.dumps(batch), "application/json")
    problem(response, 413, "payload_too_large")


@pytest.mark.parametrize(
    "content_type", ["text/plain", "application/xml", "application/x-www-form-urlencoded"]
)
def test_an_unsupported_content_type_is_refused(
    post_events, new_event, problem, content_type: str
) -> None:
    problem(post_events(new_event("e1"), content_type), 415, "unsupported_media_type")


@pytest.mark.parametrize(
    ("body", "content_type"),
    [
        (b'{"specversion": "1.0", "id": ', "application/cloudevents+json"),
        (b"[{}, ", "application/cloudevents-batch+json"),
        (b"not json", "application/json"),
        (b"", "application/json"),
        (b"\xff\xfe{}", "application/json"),
        (b'{"id": "e1"}', "application/cloudevents-batch+json"),
        (b'[{"id": "e1"}]', "application/cloudevents+json"),
        (b'"just a string"', "application/json"),
    ],
)
def test_a_body_that_is_not_the_declared_json_is_malformed(
    post_events, problem, body: bytes, content_type: str
) -> None:
    problem(post_events(body, content_type), 400, "malformed_body")


@pytest.fixture
def tolerant(api: TestClient) -> TestClient:
    """The same app and key, answering server errors instead of raising them in the test."""
    client = TestClient(api.app, raise_server_exceptions=False)
    client.headers.update(api.headers)
    return client


DEEP = b"[" * 1000 + b"]" * 1000
BATCH = "application/cloudevents-batch+json"
# How the body reaches the deep item: alone, in the fast batch path, in the per-item path
# (an earlier neighbour fails typed decoding) or the lenient path (an earlier one has NaN).
SHAPES = {
    "single": (b"%s", "application/cloudevents+json"),
    "batch": (b"[%s]", BATCH),
    "batch-per-item": (b'[{"time":7},%s]', BATCH),
    "batch-lenient": (b'[{"data":{"x":NaN}},%s]', BATCH),
}


@pytest.mark.parametrize(("shape", "content_type"), SHAPES.values(), ids=SHAPES.keys())
def test_a_deeply_nested_body_is_a_client_error_not_a_crash(
    tolerant: TestClient, new_event, problem, db: Database, shape: bytes, content_type: str
) -> None:
    event = _raw(new_event("deep")).replace(b"}", b',"data":{"a":%s}}' % DEEP)
    body = problem(_post(tolerant, shape % event, content_type), 400, "malformed_body")
    assert "nested too deeply" in body["detail"]
    assert _count(db) == 0


def test_a_deeply_nested_binary_mode_body_is_a_client_error(
    tolerant: TestClient, problem, db: Database
) -> None:
    headers = {
        "ce-specversion": "1.0",
        "ce-id": "deep",
        "ce-source": "tests",
        "ce-type": "api.request",
        "ce-subject": "acme",
        "content-type": "application/json",
    }
    response = tolerant.post("/v1/events", content=b'{"a":%s}' % DEEP, headers=headers)
    assert "nested too deeply" in problem(response, 400, "malformed_body")["detail"]
    assert _count(db) == 0


def test_a_nested_body_within_reason_is_accepted(post_events, new_event) -> None:
    nested = b"[" * 20 + b"]" * 20
    event = _raw(new_event("deep")).replace(b"}", b',"data":{"a":%s}}' % nested)
    assert post_events(event, "application/json").json()["accepted"] == 1


@pytest.fixture
def sqlite_admin(sqlite_url: str, clock: FixedClock) -> Iterator[TestClient]:
    """An admin client on SQLite only: on PostgreSQL the failing usage query below also
    leaks a server-side cursor (storage/usage.py raw_events), whose ResourceWarning at exit
    would fail the whole session."""
    rt = build(Settings(database_url=sqlite_url), clock=clock)
    key = create_key(rt.db, rt.clock, Scope.ADMIN, "deep")
    with TestClient(create_app(rt), raise_server_exceptions=False) as client:
        client.headers["Authorization"] = f"Bearer {key}"
        yield client
    rt.close()


def test_data_nested_at_the_cap_is_metered_and_deeper_data_is_refused(
    sqlite_admin: TestClient, new_event
) -> None:
    from fairmeter.api.codec import MAX_DATA_DEPTH

    meter = {"key": "calls", "event_type": "api.request", "aggregation": "count"}
    assert sqlite_admin.post("/v1/meters", json=meter).status_code == 201
    assert sqlite_admin.post("/v1/customers", json={"key": "acme"}).status_code == 201
    for depth in (MAX_DATA_DEPTH - 1, MAX_DATA_DEPTH):  # data itself is one level
        event = _raw(new_event(f"d{depth}", time="2026-11-15T10:07:00Z"))
        nested = b"[" * depth + b"]" * depth
        body = event.replace(b"}", b',"data":{"a":%s}}' % nested)
        response = _post(sqlite_admin, body, "application/cloudevents+json")
        if depth < MAX_DATA_DEPTH:
            assert response.status_code == 200, response.text
        else:
            assert response.status_code == 422
            assert response.json()["rejected"][0]["errors"][0]["code"] == "too_deep"
    # 10:05-10:10 is off the 15-minute rollup grid: usage reads the stored data back.
    edge = {"from": "2026-11-15T10:05:00Z", "to": "2026-11-15T10:10:00Z", "window": "none"}
    response = sqlite_admin.get("/v1/meters/calls/usage", params=edge)
    assert response.status_code == 200, response.text
    assert [row["value"] for row in response.json()["data"]] == ["1"]


def _raw(event: dict[str, Any]) -> bytes:
    return json.dumps(event, separators=(",", ":")).encode()
