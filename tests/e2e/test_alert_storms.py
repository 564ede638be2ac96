"""Threshold storms: 10,000 events crossing 50/80/100% of a limit, from 4 concurrent
ingesters against real servers, tell exactly 3 notifications: in order or shuffled, from
one server process or from two sharing the database (SQLite or PostgreSQL)."""

from __future__ import annotations

import random
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

import httpx
import orjson
import pytest
from sqlalchemy import select
from tests.conftest import LiveServer

from fairmeter.config import Settings
from fairmeter.domain.customers import parse_customer
from fairmeter.domain.keys import Scope
from fairmeter.domain.meters import parse_meter
from fairmeter.domain.plans import parse_plan
from fairmeter.services import catalog
from fairmeter.services.keys import create_key
from fairmeter.services.plans import create_plan
from fairmeter.services.subscriptions import create_subscription
from fairmeter.storage.database import Database, make_engine
from fairmeter.storage.tables import notifications
from fairmeter.wiring import build

pytestmark = pytest.mark.slow

EVENTS = 10_000
INGESTERS = 4
BATCH = 50


def prepare(url: str) -> str:
    """A count meter limited to EVENTS a month on the customer's plan; an ingest key."""
    rt = build(Settings(database_url=url))
    try:
        meter = {"key": "api_calls", "event_type": "api.request", "aggregation": "count"}
        catalog.create_meter(rt.db, rt.clock, parse_meter(meter))
        catalog.create_customer(rt.db, rt.clock, parse_customer({"key": "acme"}))
        charge = {"meter": "api_calls", "model": "per_unit", "unit_price": "0.001"}
        plan = {"key": "pro", "name": "Pro", "currency": "USD"}
        plan["charges"] = [{**charge, "limit": str(EVENTS), "policy": "block"}]  # type: ignore[list-item]
        create_plan(rt.db, rt.clock, parse_plan(plan))
        start = rt.clock.now() - timedelta(hours=2)
        create_subscription(rt.db, rt.clock, "acme", "pro", start)
        return create_key(rt.db, rt.clock, Scope.INGEST, "storm")
    finally:
        rt.close()


def bodies(shuffled: bool) -> list[bytes]:
    """EVENTS events over the last hour, in batches: in time order, or shuffled."""
    now = datetime.now(UTC)
    moments = [now - timedelta(seconds=3600 * (EVENTS - i) / EVENTS) for i in range(EVENTS)]
    if shuffled:
        random.Random(11).shuffle(moments)
    events = [
        {
            "specversion": "1.0",
            "id": f"storm-{i}",
            "source": "storm",
            "type": "api.request",
            "subject": "acme",
            "time": moment,
            "data": {"endpoint": "/v1/search"},
        }
        for i, moment in enumerate(moments)
    ]
    return [
        orjson.dumps(events[i : i + BATCH], option=orjson.OPT_UTC_Z)
        for i in range(0, EVENTS, BATCH)
    ]


def storm(urls: list[str], key: str, batches: list[bytes]) -> None:
    """INGESTERS threads share the batches; ingester i posts to urls[i % len(urls)]."""
    headers = {
        "Authorization": f"Bearer {key}",
        "Content-Type": "application/cloudevents-batch+json",
    }

    def ingest(index: int) -> int:
        accepted = 0
        with httpx.Client(base_url=urls[index % len(urls)], headers=headers, timeout=60) as client:
            for body in batches[index::INGESTERS]:
                response = client.post("/v1/events", content=body)
                assert response.status_code == 200, response.text
                accepted += response.json()["accepted"]
        return accepted

    with ThreadPoolExecutor(INGESTERS) as pool:
        assert sum(pool.map(ingest, range(INGESTERS))) == EVENTS


def told(url: str, settle: float = 2.0) -> list[str]:
    """The thresholds told, once 3 are there (or 20 s passed), after `settle` more seconds
    in which a fourth would have shown up."""
    db = Database(make_engine(url))
    query = select(notifications.c.details).where(notifications.c.kind == "alert.usage_threshold")
    try:
        deadline = time.monotonic() + 20
        while True:
            with db.read() as conn:
                rows = conn.execute(query).all()
            if len(rows) >= 3 or time.monotonic() > deadline:
                break
            time.sleep(0.1)
        time.sleep(settle)
        with db.read() as conn:
            rows = conn.execute(query).all()
        return sorted((orjson.loads(r[0])["percent"] for r in rows), key=float)
    finally:
        db.dispose()


@pytest.fixture
def servers(database_url: str, request: pytest.FixtureRequest) -> Iterator[list[str]]:
    count = getattr(request, "param", 1)
    key = prepare(database_url)
    started = [LiveServer(database_url).start() for _ in range(count)]
    request.node.ingest_key = key
    yield [s.url for s in started]
    for server in started:
        server.stop()


@pytest.mark.parametrize("shuffled", [False, True], ids=["in_order", "out_of_order"])
def test_a_storm_of_10000_events_tells_exactly_3_thresholds(
    servers: list[str], request: pytest.FixtureRequest, database_url: str, shuffled: bool
) -> None:
    storm(servers, request.node.ingest_key, bodies(shuffled))
    assert told(database_url) == ["50", "80", "100"]


@pytest.mark.parametrize("servers", [2], indirect=True)
def test_two_server_processes_tell_each_threshold_once(
    servers: list[str], request: pytest.FixtureRequest, database_url: str
) -> None:
    storm(servers, request.node.ingest_key, bodies(shuffled=True))
    assert told(database_url) == ["50", "80", "100"]
