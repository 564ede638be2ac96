"""Usage query latency as stored events grow: one customer-month, hour/day/none windows.

    .venv/bin/python bench/query.py --events 1000000,10000000 --backend sqlite --runs 20

Events are loaded without HTTP but through the real storage code (record_events, so the
rollups exist), spread over one month across many customers; one target customer gets
about 1% of them. At each size the same question is timed through services.query_usage,
through HTTP on a live server, and as a brute-force SQL aggregate over raw events."""

from __future__ import annotations

import argparse
import hashlib
import random
import time
import uuid
from datetime import UTC, datetime
from decimal import Decimal
from zoneinfo import ZoneInfo

import httpx
import msgspec
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from common import (
    EVENT_TYPE,
    MODELS,
    Server,
    fresh_database,
    machine,
    make_console,
    percentiles,
    prepare,
    profile,
    write_results,
)
from fairmeter.domain.events import UsageEvent
from fairmeter.domain.windows import Span, Window, to_us
from fairmeter.services.clock import FixedClock
from fairmeter.services.ingest import record_events
from fairmeter.services.runtime import Runtime
from fairmeter.services.usage import UsageQuery, query_usage

MONTH = Span(datetime(2026, 10, 1, tzinfo=UTC), datetime(2026, 11, 1, tzinfo=UTC))
TARGET = "customer-0000"
TARGET_SHARE = 0.01
TARGET_HOUR_MS = 20
METER = "tokens"
WINDOWS = (Window.HOUR, Window.DAY, Window.NONE)
HOURLY = UsageQuery(METER, TARGET, MONTH, Window.HOUR, ZoneInfo("UTC"))
# The codec's canonical form: sorted keys, so the digest matches what HTTP would store.
CANONICAL = msgspec.json.Encoder(order="sorted")
RAW_SQL = {
    "sqlite": "SELECT time_us / 3600000000, count(*),"
    " sum(CAST(json_extract(data, '$.tokens') AS INTEGER)) FROM events"
    " WHERE type = ? AND subject = ? AND time_us >= ? AND time_us < ? GROUP BY 1",
    "postgresql": "SELECT time_us / 3600000000, count(*), sum((data::jsonb ->> 'tokens')::numeric)"
    " FROM events WHERE type = %s AND subject = %s AND time_us >= %s AND time_us < %s"
    " GROUP BY 1",
}

console = make_console()


def customers(count: int) -> list[str]:
    return [f"customer-{i:04d}" for i in range(count)]


def make_batch(rng: random.Random, names: list[str], count: int) -> list[tuple[int, UsageEvent]]:
    """Events as codec.parse_batch would build them (same canonical JSON and digest)."""
    start, span = MONTH.start_us, MONTH.end_us - MONTH.start_us
    batch = []
    for index in range(count):
        subject = TARGET if rng.random() < TARGET_SHARE else names[rng.randrange(1, len(names))]
        time_us = start + rng.randrange(span)
        data = {"tokens": rng.randint(1, 4000), "model": rng.choice(MODELS)}
        data_json = CANONICAL.encode(data)
        digest = hashlib.blake2b(digest_size=16)
        for part in (EVENT_TYPE, subject, str(time_us)):
            digest.update(part.encode() + b"\x00")
        digest.update(data_json)
        event = UsageEvent(
            "bench",
            uuid.uuid4().hex,
            EVENT_TYPE,
            subject,
            time_us,
            data,
            data_json,
            digest.digest(),
        )
        batch.append((index, event))
    return batch


def load(rt: Runtime, rng: random.Random, names: list[str], count: int, batch: int) -> float:
    """Store `count` more events in batches; returns events per second."""
    received_us = to_us(MONTH.end)
    columns = (TextColumn("loading"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
    started = time.perf_counter()
    with Progress(*columns, console=console, transient=True) as progress:
        task = progress.add_task("load", total=count)
        for done in range(0, count, batch):
            items = make_batch(rng, names, min(batch, count - done))
            result = record_events(rt.db, items, [], received_us=received_us)
            if result.accepted != len(items):
                raise SystemExit(f"expected {len(items)} accepted, got {result}")
            progress.advance(task, len(items))
    return count / (time.perf_counter() - started)


def time_service(rt: Runtime, window: Window, runs: int) -> tuple[dict[str, float], Decimal]:
    query = UsageQuery(METER, TARGET, MONTH, window, ZoneInfo("UTC"))
    total = sum((r.value or Decimal(0) for r in query_usage(rt.db, query)), Decimal(0))
    samples = []
    for _ in range(runs):
        started = time.perf_counter()
        query_usage(rt.db, query)
        samples.append(time.perf_counter() - started)
    return percentiles(samples), total


def time_http(client: httpx.Client, window: Window, runs: int) -> dict[str, float]:
    params = {
        "customer": TARGET,
        "window": window.value,
        "from": MONTH.start.isoformat(),
        "to": MONTH.end.isoformat(),
    }
    path = f"/v1/meters/{METER}/usage"
    client.get(path, params=params).raise_for_status()
    samples = []
    for _ in range(runs):
        started = time.perf_counter()
        response = client.get(path, params=params)
        samples.append(time.perf_counter() - started)
        response.raise_for_status()
    return percentiles(samples)


def time_raw(rt: Runtime, runs: int) -> tuple[dict[str, float], Decimal]:
    """The same customer-month per hour, straight from raw events (no rollups)."""
    args = (EVENT_TYPE, TARGET, MONTH.start_us, MONTH.end_us)
    samples, total = [], Decimal(0)
    for _ in range(runs):
        started = time.perf_counter()
        with rt.db.read() as conn:
            rows = conn.exec_driver_sql(RAW_SQL[rt.db.dialect], args).all()
        samples.append(time.perf_counter() - started)
        total = sum((Decimal(row[2]) for row in rows), Decimal(0))
    return percentiles(samples), total


def measure(
    rt: Runtime, url: str, admin: str, stored: int, args: argparse.Namespace
) -> dict[str, object]:
    figures: dict[str, object] = {"stored_events": stored}
    table = Table(title=f"{stored:,} stored events: customer {TARGET}, one month ({METER})")
    for name in ("path", "window", "median ms", "p95 ms"):
        table.add_column(name, justify="left" if name in ("path", "window") else "right")
    with Server(url) as server, httpx.Client(base_url=server.url, timeout=300) as client:
        client.headers["Authorization"] = f"Bearer {admin}"
        for window in WINDOWS:
            service, total = time_service(rt, window, args.runs)
            http = time_http(client, window, args.runs)
            figures[f"service_{window.value}"] = service
            figures[f"http_{window.value}"] = http
            figures[f"total_{window.value}"] = str(total)
            table.add_row("query_usage", window.value, *_ms(service))
            table.add_row("HTTP", window.value, *_ms(http))
    raw, raw_total = time_raw(rt, args.raw_runs)
    figures["raw_sql_hour"], figures["raw_total"] = raw, str(raw_total)
    table.add_row("raw SQL aggregate", "hour", *_ms(raw))
    agree = {str(raw_total)} == {figures[f"total_{w.value}"] for w in WINDOWS}
    table.caption = (
        f"target: hour windows < {TARGET_HOUR_MS} ms median at 10M events; "
        f"rollups and raw events agree: {'yes' if agree else 'NO'} (total {raw_total})"
    )
    figures["totals_agree"] = agree
    console.print(table)
    return figures


def _ms(figures: dict[str, float]) -> tuple[str, str]:
    return f"{figures['median_ms']:.1f}", f"{figures['p95_ms']:.1f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", default="1000000,10000000", help="sizes, ascending")
    parser.add_argument("--backend", default="sqlite", choices=("sqlite", "postgresql"))
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--raw-runs", type=int, default=5, help="runs of the raw SQL aggregate")
    parser.add_argument("--customers", type=int, default=1000)
    parser.add_argument("--batch", type=int, default=10_000, help="events per record_events")
    parser.add_argument("--profile", action="store_true", help="profile query_usage (hour)")
    args = parser.parse_args()
    sizes = sorted(int(s.replace("_", "")) for s in args.events.split(","))
    names, rng, results, stored = customers(args.customers), random.Random(11), [], 0
    console.print(
        f"{args.backend}: sizes {', '.join(f'{s:,}' for s in sizes)}; "
        f"load average {machine()['load_average_1m_at_start']}"
    )
    with fresh_database(args.backend) as url:
        rt, _, admin = prepare(url, FixedClock(MONTH.end), names)
        for size in sizes:
            events_s = load(rt, rng, names, size - stored, args.batch)
            console.print(f"loaded {size - stored:,} events at {events_s:,.0f} events/s")
            stored = size
            results.append({**measure(rt, url, admin, stored, args), "load_events_s": events_s})
            if args.profile:
                console.print(profile(lambda: query_usage(rt.db, HOURLY), repeat=args.runs))
        rt.close()
    payload = {"arguments": vars(args), "machine": machine(), "results": results}
    console.print(f"figures written to {write_results('query', payload)}")


if __name__ == "__main__":
    main()
