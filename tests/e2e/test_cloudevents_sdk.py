"""Events made by the official CloudEvents Python SDK reach a real server in every HTTP
content mode (structured, binary, batch) and are metered once."""

from __future__ import annotations

from datetime import datetime, timedelta

import httpx
import pytest
from cloudevents.core.bindings.http import HTTPMessage, to_binary, to_structured
from cloudevents.core.formats.json import JSONFormat
from cloudevents.core.v1.event import CloudEvent

pytestmark = pytest.mark.slow

FORMAT = JSONFormat()
BATCH = "application/cloudevents-batch+json"


def _event(event_id: str, at: datetime, n: int) -> CloudEvent:
    attributes = {
        "id": event_id,
        "source": "/sdk/tests",
        "type": "api.request",
        "subject": "acme",
        "time": at,
        "datacontenttype": "application/json",
    }
    return CloudEvent(attributes, {"n": n})


def _send(client: httpx.Client, message: HTTPMessage) -> dict[str, object]:
    response = client.post("/v1/events", content=message.body, headers=message.headers)
    assert response.status_code == 200, response.text
    outcome: dict[str, object] = response.json()
    return outcome


def _batch(events: list[CloudEvent]) -> HTTPMessage:
    # The SDK has no batch binding: the batch format is a JSON array of structured events.
    body = b"[" + b",".join(FORMAT.write(e) for e in events) + b"]"
    return HTTPMessage(headers={"content-type": BATCH}, body=body)


def test_sdk_events_in_every_content_mode_are_metered_once(
    metered: httpx.Client, usage_of, last_hour: tuple[datetime, datetime]
) -> None:
    start, end = last_hour
    at = start + timedelta(minutes=20)
    structured = _event("structured-1", at, 1)
    binary = _event("binary-1", at, 10)
    batch = [_event(f"batch-{i}", at + timedelta(seconds=i), 100) for i in range(5)]

    ok = {"accepted": 1, "duplicates": 0, "rejected": []}
    assert _send(metered, to_structured(structured, FORMAT)) == ok
    assert _send(metered, to_binary(binary, FORMAT)) == ok
    assert _send(metered, _batch(batch)) == {"accepted": 5, "duplicates": 0, "rejected": []}
    assert usage_of("calls", start, end) == "7"
    assert usage_of("units", start, end) == "511"

    # The SDK resends everything, in the other modes: nothing more is counted.
    assert _send(metered, to_binary(structured, FORMAT))["duplicates"] == 1
    assert _send(metered, _batch([binary, *batch]))["duplicates"] == 6
    assert usage_of("calls", start, end) == "7"


def test_an_sdk_event_with_a_space_in_its_id_is_the_same_event_in_both_modes(
    metered: httpx.Client, usage_of, last_hour: tuple[datetime, datetime]
) -> None:
    start, end = last_hour
    event = _event("order 17", start + timedelta(minutes=5), 1)
    assert to_binary(event, FORMAT).headers["ce-id"] == "order%2017"
    _send(metered, to_binary(event, FORMAT))
    _send(metered, to_structured(event, FORMAT))
    assert usage_of("calls", start, end) == "1"
