"""Usage ranges far outside any plausible usage are refused, not crashed on."""

from __future__ import annotations

import httpx
import pytest


@pytest.mark.parametrize(
    ("start", "end", "window"),
    [
        ("9999-11-01T00:00:00Z", "9999-12-31T00:00:00Z", "month"),
        ("0001-01-01T00:00:00Z", "0001-01-02T00:00:00Z", "day"),
        ("1969-12-31T00:00:00Z", "1970-01-02T00:00:00Z", "hour"),
    ],
)
def test_a_range_outside_1970_to_2999_is_a_422_naming_the_bound(
    api: httpx.Client, start: str, end: str, window: str
) -> None:
    api.post("/v1/meters", json={"key": "calls", "event_type": "t", "aggregation": "count"})
    params = {"from": start, "to": end, "window": window, "timezone": "America/New_York"}
    response = api.get("/v1/meters/calls/usage", params=params)
    assert response.status_code == 422
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["errors"][0]["pointer"] in ("/from", "/to")
