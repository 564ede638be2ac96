"""Concurrent writers of overlapping batches: every event is stored and counted once."""

from __future__ import annotations

import random
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

import msgspec

from fairmeter.api.codec import parse_batch
from fairmeter.domain.customers import parse_customer
from fairmeter.domain.events import IngestResult
from fairmeter.domain.meters import parse_meter
from fairmeter.domain.windows import Span, Window, from_us, to_us
from fairmeter.services import catalog
from fairmeter.services.ingest import record_events
from fairmeter.services.runtime import Runtime
from fairmeter.services.usage import UsageQuery, query_usage

_JSON = msgspec.json.Encoder(decimal_format="number")
THREADS = 4
EVENTS = 90
BATCH, STRIDE = 45, 15
Batch = list[dict[str, object]]


def _events(rt: Runtime, rng: random.Random) -> Batch:
    now_us = to_us(rt.clock.now())
    return [
        {
            "specversion": "1.0",
            "id": f"e{i}",
            "source": "load",
            "type": "api.request",
            "subject": rng.choice(["acme", "globex"]),
            # Microsecond times spread over a day: rollups and raw edges both get events.
            "time": from_us(now_us - rng.randrange(1, 86_400_000_000)).isoformat(),
            "data": {"tokens": Decimal(rng.randrange(1, 10**6)).scaleb(-rng.randrange(0, 4))},
        }
        for i in range(EVENTS)
    ]


def _overlapping(events: Batch) -> list[Batch]:
    return [events[start : start + BATCH] for start in range(0, EVENTS - BATCH + 1, STRIDE)]


def _race(rt: Runtime, plans: list[list[Batch]]) -> list[tuple[int, IngestResult]]:
    """Each thread records its batches in turn; all threads start at the same instant."""
    start = threading.Barrier(len(plans))
    received_us = to_us(rt.clock.now())

    def run(plan: list[Batch]) -> list[tuple[int, IngestResult]]:
        # Parsed before the barrier so that the threads meet in the database, not in Python.
        parsed = [parse_batch(_JSON.encode(batch), rt.clock.now(), rt.policy) for batch in plan]
        start.wait()
        return [
            (len(items) + len(rejected), record_events(rt.db, items, rejected, received_us))
            for items, rejected in parsed
        ]

    with ThreadPoolExecutor(len(plans)) as pool:
        return [outcome for done in pool.map(run, plans) for outcome in done]


def _usage(rt: Runtime, key: str) -> dict[str, Decimal | None]:
    now = rt.clock.now()
    # An unaligned start makes the query read raw events as well as rollups.
    span = Span(now - timedelta(days=2, microseconds=-7), now + timedelta(hours=1))
    rows = query_usage(rt.db, UsageQuery(key, None, span, Window.NONE, ZoneInfo("UTC")))
    return {row.customer: row.value for row in rows}


def _expected(events: Batch) -> dict[str, dict[str, Decimal]]:
    calls: dict[str, Decimal] = {}
    tokens: dict[str, Decimal] = {}
    for e in events:
        subject, data = str(e["subject"]), e["data"]
        assert isinstance(data, dict)
        calls[subject] = calls.get(subject, Decimal(0)) + 1
        tokens[subject] = tokens.get(subject, Decimal(0)) + data["tokens"]
    return {"calls": calls, "tokens": tokens}


def _prepare(rt: Runtime) -> None:
    for key in ("acme", "globex"):
        catalog.create_customer(rt.db, rt.clock, parse_customer({"key": key}))
    for body in (
        {"key": "calls", "event_type": "api.request", "aggregation": "count"},
        {
            "key": "tokens",
            "event_type": "api.request",
            "aggregation": "sum",
            "value_property": "$.tokens",
        },
    ):
        catalog.create_meter(rt.db, rt.clock, parse_meter(body))


Shuffle = Callable[[random.Random, list[Batch]], list[Batch]]


def _same_order(rng: random.Random, batches: list[Batch]) -> list[Batch]:
    return list(batches)


def _any_order(rng: random.Random, batches: list[Batch]) -> list[Batch]:
    """Clients retry batches in any order, with items in any order."""
    return [rng.sample(batch, len(batch)) for batch in rng.sample(batches, len(batches))]


def _check_race(runtime: Runtime, shuffle: Shuffle, seed: int) -> None:
    rng = random.Random(seed)
    _prepare(runtime)
    events = _events(runtime, rng)
    plans = [shuffle(rng, _overlapping(events)) for _ in range(THREADS)]
    outcomes = _race(runtime, plans)
    assert all(r.rejected == () for _, r in outcomes)
    assert all(r.accepted + r.duplicates == size for size, r in outcomes)
    assert sum(r.accepted for _, r in outcomes) == EVENTS
    expected = _expected(events)
    assert _usage(runtime, "calls") == expected["calls"]
    assert _usage(runtime, "tokens") == expected["tokens"]


def test_concurrent_overlapping_batches_count_each_event_once(runtime: Runtime) -> None:
    _check_race(runtime, _same_order, seed=7)


def test_concurrent_batches_in_any_order_count_each_event_once(runtime: Runtime) -> None:
    _check_race(runtime, _any_order, seed=11)


def test_racing_the_same_batch_stores_it_once(runtime: Runtime) -> None:
    rng = random.Random(3)
    _prepare(runtime)
    events = _events(runtime, rng)
    outcomes = _race(runtime, [[events] for _ in range(THREADS)])
    assert sorted(r.accepted for _, r in outcomes) == [0] * (THREADS - 1) + [EVENTS]
    assert _usage(runtime, "calls") == _expected(events)["calls"]
