"""Billing run throughput: N customers, 3 metered charges each, one month of rollups.

    .venv/bin/python bench/billing.py --customers 1000,10000,50000 --backend sqlite

Customers, subscriptions and rollups are inserted directly (not through ingest: this
measures billing, not ingest); each customer has `--buckets-per-day` rollup buckets per
meter and day. Then one billing run issues October's invoices (as of Nov 2, past the
grace period). Printed: the run's time and invoices per second, and the ratio to the time
it takes just to read the same rollups (SELECT and add them up per customer in Python)."""

from __future__ import annotations

import argparse
import random
import time
from datetime import UTC, datetime, timedelta

from rich.table import Table
from sqlalchemy import insert

from common import BACKENDS, fresh_database, machine, make_console, profile, rate, write_results
from fairmeter.config import Settings
from fairmeter.domain.meters import parse_meter
from fairmeter.domain.plans import parse_plan
from fairmeter.domain.windows import BUCKET_US, to_us
from fairmeter.services import catalog
from fairmeter.services.billing import run_billing
from fairmeter.services.clock import FixedClock
from fairmeter.services.plans import create_plan
from fairmeter.services.runtime import Runtime
from fairmeter.storage.catalog import Meters
from fairmeter.storage.tables import customers, subscription_segments, subscriptions
from fairmeter.storage.usage import Usage
from fairmeter.wiring import build

START = datetime(2026, 10, 1, tzinfo=UTC)
END = datetime(2026, 11, 1, tzinfo=UTC)
AS_OF = END + timedelta(days=1, hours=1)
METERS = (
    {"key": "requests", "event_type": "bench.requests", "aggregation": "count"},
    {"key": "tokens", "event_type": "bench.tokens", "aggregation": "sum", "value_property": "$.v"},
    {
        "key": "storage",
        "event_type": "bench.storage",
        "aggregation": "sum",
        "value_property": "$.v",
    },
)
PLAN = {
    "key": "pro",
    "currency": "USD",
    "base_fee": "49",
    "charges": [
        {"meter": "requests", "model": "per_unit", "unit_price": "0.002", "included": "1000000"},
        {
            "meter": "tokens",
            "model": "graduated",
            "tiers": [
                {"up_to": "100000", "unit_price": "0.0001"},
                {"up_to": None, "unit_price": "0.00005"},
            ],
        },
        {"meter": "storage", "model": "package", "package_price": "1.5", "package_size": "1000"},
    ],
}


def populate(rt: Runtime, count: int, buckets_per_day: int) -> int:
    """Customers, subscriptions, segments and rollups; returns the rollup rows written."""
    clock_us = to_us(START)
    for body in METERS:
        catalog.create_meter(rt.db, rt.clock, parse_meter(body))
    create_plan(rt.db, rt.clock, parse_plan(PLAN))
    keys = [f"customer-{n:06d}" for n in range(count)]
    step = 86_400_000_000 // buckets_per_day // BUCKET_US * BUCKET_US
    buckets = list(range(to_us(START), to_us(END), step))
    rng = random.Random(1)
    rows = 0
    with rt.db.write() as conn:
        meter_ids = [Meters(conn).by_key(str(b["key"])).id for b in METERS]  # type: ignore[union-attr]
        conn.execute(insert(customers), [_customer(k, clock_us) for k in keys])
        conn.execute(insert(subscriptions), [_subscription(k, clock_us) for k in keys])
        conn.execute(insert(subscription_segments), [_segment(k, clock_us) for k in keys])
        usage = Usage(conn)
        for start in range(0, count, 500):
            batch = []
            for key in keys[start : start + 500]:
                for meter_id in meter_ids:
                    for bucket in buckets:
                        value = rng.randint(1, 5000)
                        batch.append(
                            (meter_id, key, bucket, "{}", value, str(value), None, None, None)
                        )
            usage.add_rollups(batch)
            rows += len(batch)
    return rows


def _customer(key: str, now_us: int) -> dict[str, object]:
    return {
        "key": key,
        "name": key,
        "currency": "USD",
        "timezone": "UTC",
        "metadata": "{}",
        "created_us": now_us,
        "updated_us": now_us,
    }


def _subscription(key: str, now_us: int) -> dict[str, object]:
    return {
        "id": f"sub_{key}",
        "customer_key": key,
        "plan_key": "pro",
        "plan_version": 1,
        "status": "active",
        "interval": "month",
        "zone": "UTC",
        "anchor_local": "2026-10-01T00:00:00",
        "start_us": now_us,
        "created_us": now_us,
        "updated_us": now_us,
    }


def _segment(key: str, now_us: int) -> dict[str, object]:
    return {
        "subscription_id": f"sub_{key}",
        "plan_key": "pro",
        "plan_version": 1,
        "start_us": now_us,
        "reason": "start",
        "created_us": now_us,
    }


def read_rollups(rt: Runtime) -> float:
    """Seconds to read the month's rollups and add them up per customer and meter."""
    began = time.perf_counter()
    totals: dict[tuple[int, str], int] = {}
    with rt.db.read() as conn:
        cursor = conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
        cursor.execute(
            "SELECT meter_id, subject, count, total FROM usage_rollups WHERE bucket_us >= "
            + str(to_us(START))
            + " AND bucket_us < "
            + str(to_us(END))
        )
        for meter_id, subject, _count, total in cursor:
            totals[(meter_id, subject)] = totals.get((meter_id, subject), 0) + int(total)
        cursor.close()
    return time.perf_counter() - began


def measure(
    backend: str, count: int, buckets_per_day: int, show_profile: bool
) -> dict[str, object]:
    with fresh_database(backend) as url:
        rt = build(Settings(database_url=url), clock=FixedClock(START))
        began = time.perf_counter()
        rows = populate(rt, count, buckets_per_day)
        populated = time.perf_counter() - began
        read = read_rollups(rt)
        assert isinstance(rt.clock, FixedClock)
        rt.clock.at = AS_OF
        began = time.perf_counter()
        report = run_billing(rt)
        billed = time.perf_counter() - began
        assert len(report.finalized) == count, (len(report.finalized), count)
        if show_profile:
            print(profile(lambda: run_billing(rt)))  # a second run: nothing left to issue
        rt.close()
    return {
        "backend": backend,
        "customers": count,
        "rollup_rows": rows,
        "populate_s": round(populated, 2),
        "read_rollups_s": round(read, 3),
        "run_s": round(billed, 3),
        "invoices_per_s": round(rate(count, billed), 1),
        "run_to_read_ratio": round(billed / read, 2) if read else None,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--customers", default="1000", help="comma-separated sizes")
    parser.add_argument("--backend", default="sqlite", choices=[*BACKENDS, "both"])
    parser.add_argument("--buckets-per-day", type=int, default=24, choices=[1, 2, 4, 8, 24, 96])
    parser.add_argument("--profile", action="store_true", help="profile a repeated run")
    args = parser.parse_args()
    backends = BACKENDS if args.backend == "both" else (args.backend,)
    sizes = [int(n) for n in args.customers.split(",")]
    results = [measure(b, n, args.buckets_per_day, args.profile) for b in backends for n in sizes]
    grid = Table(title=f"Billing run, one month, {args.buckets_per_day} rollup buckets/meter/day")
    for name in results[0]:
        grid.add_column(name, justify="right")
    for result in results:
        grid.add_row(*(str(v) for v in result.values()))
    make_console().print(grid)
    path = write_results("billing", {"machine": machine(), "results": results})
    print(f"results: {path}")


if __name__ == "__main__":
    main()
