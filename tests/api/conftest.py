"""Factories for the HTTP API tests: events, meters and customers made through the API.

They are fixtures (not importable helpers) so every test module gets them the same way."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

BATCH = "application/cloudevents-batch+json"
SINGLE = "application/cloudevents+json"

EventFactory = Callable[..., dict[str, Any]]
Poster = Callable[..., httpx.Response]
Maker = Callable[..., dict[str, Any]]


def assert_problem(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    """Every error is RFC 9457 problem+json with the stable members filled in."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body: dict[str, Any] = response.json()
    assert body["status"] == status
    assert body["code"] == code
    assert body["type"].endswith("/" + code)
    assert body["title"] and body["detail"]
    return body


@pytest.fixture
def problem() -> Callable[[httpx.Response, int, str], dict[str, Any]]:
    return assert_problem


@pytest.fixture
def anonymous(api: TestClient) -> TestClient:
    """The same app, reached without an API key."""
    return TestClient(api.app)


@pytest.fixture
def new_event() -> EventFactory:
    def make(
        event_id: str,
        subject: str = "acme",
        type: str = "api.request",
        time: str | None = "2026-11-15T10:00:00Z",
        data: Any = None,
        source: str = "tests",
    ) -> dict[str, Any]:
        event: dict[str, Any] = {
            "specversion": "1.0",
            "id": event_id,
            "source": source,
            "type": type,
            "subject": subject,
        }
        if time is not None:
            event["time"] = time
        if data is not None:
            event["data"] = data
        return event

    return make


@pytest.fixture
def post_events(api: httpx.Client) -> Poster:
    """POST a body (any JSON value, or raw bytes) to /v1/events."""

    def post(body: Any, content_type: str = BATCH, **headers: str) -> httpx.Response:
        content = body if isinstance(body, bytes) else json.dumps(body).encode()
        return api.post(
            "/v1/events", content=content, headers={"content-type": content_type, **headers}
        )

    return post


@pytest.fixture
def new_meter(api: httpx.Client) -> Maker:
    def make(key: str, aggregation: str = "count", **fields: Any) -> dict[str, Any]:
        body = {"key": key, "event_type": "api.request", "aggregation": aggregation, **fields}
        response = api.post("/v1/meters", json=body)
        assert response.status_code == 201, response.text
        created: dict[str, Any] = response.json()
        return created

    return make


@pytest.fixture
def new_customer(api: httpx.Client) -> Maker:
    def make(key: str, **fields: Any) -> dict[str, Any]:
        response = api.post("/v1/customers", json={"key": key, **fields})
        assert response.status_code == 201, response.text
        created: dict[str, Any] = response.json()
        return created

    return make
