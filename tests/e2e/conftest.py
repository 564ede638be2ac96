"""A live server with a count meter, a sum meter and a customer, reached over real HTTP."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta

import httpx
import pytest

EVENT_TYPE = "api.request"
CUSTOMER = "acme"

UsageOf = Callable[[str, datetime, datetime], str]


@pytest.fixture
def live_api(live_server, live_admin_key: str) -> Iterator[httpx.Client]:
    headers = {"Authorization": f"Bearer {live_admin_key}"}
    with httpx.Client(base_url=live_server.url, headers=headers, timeout=30) as client:
        yield client


@pytest.fixture
def metered(live_api: httpx.Client) -> httpx.Client:
    """`calls` counts events of EVENT_TYPE, `units` sums their `$.n`; both for CUSTOMER."""
    meters = [
        {"key": "calls", "event_type": EVENT_TYPE, "aggregation": "count"},
        {"key": "units", "event_type": EVENT_TYPE, "aggregation": "sum", "value_property": "$.n"},
    ]
    for meter in meters:
        assert live_api.post("/v1/meters", json=meter).status_code == 201
    assert live_api.post("/v1/customers", json={"key": CUSTOMER}).status_code == 201
    return live_api


@pytest.fixture
def usage_of(metered: httpx.Client) -> UsageOf:
    """CUSTOMER's usage of one meter over [start, end), as the API reports it."""

    def query(meter: str, start: datetime, end: datetime) -> str:
        params = {
            "customer": CUSTOMER,
            "from": start.isoformat(),
            "to": end.isoformat(),
            "window": "none",
        }
        response = metered.get(f"/v1/meters/{meter}/usage", params=params)
        assert response.status_code == 200, response.text
        rows = response.json()["data"]
        assert len(rows) == 1
        value: str = rows[0]["value"]
        return value

    return query


@pytest.fixture
def last_hour() -> tuple[datetime, datetime]:
    """The last whole clock hour: in the past, and aligned so usage comes from rollups."""
    end = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    return end - timedelta(hours=1), end
