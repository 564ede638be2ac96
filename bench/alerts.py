"""Alert evaluation's cost to ingest, and how fast a crossing is queued, on the real server.

    .venv/bin/python bench/alerts.py --events 100000 --rounds 2 --backends sqlite,postgresql

For each backend and round, two runs, each on a fresh database with the bench meters, 8
customers subscribed to a plan (no limits, so no default rules) and 40 probe customers:
- "no rules": nothing for the evaluator to check;
- "3 rules": every customer has a usage_threshold on `requests` (25/50/90% of what it
  will send), a forecast on `tokens` and a spend_threshold (100 and 200 USD), all of
  which cross during the run; every probe customer has a usage_threshold at 1 request.
The same pre-serialized batches are POSTed by K clients; meanwhile a probe thread sends
one event for one probe customer every 1/4 s (in both runs). Latency = the probe's
notification `created_us` (queued) minus the wall time just before its POST (so it
includes the request and waiting for the commit), and minus the time its acknowledgement
arrived (sent after the commit: from the commit, give or take the response's trip).
Slowdown = 3-rules time / no-rules time - 1 (wall time), and the same ratio of the server
process's CPU time (steadier on a busy machine).
"""

from __future__ import annotations

import argparse
import os
import statistics
import threading
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import orjson
from rich.table import Table
from sqlalchemy import select

from common import (
    EVENT_TYPE,
    Server,
    fresh_database,
    machine,
    make_console,
    percentiles,
    prepare,
    rate,
    write_results,
)
from fairmeter.domain.customers import Customer
from fairmeter.domain.plans import parse_plan
from fairmeter.domain.windows import to_us
from fairmeter.services import alerts, catalog
from fairmeter.services.clock import SystemClock
from fairmeter.services.plans import create_plan
from fairmeter.services.subscriptions import create_subscription
from fairmeter.storage.tables import notifications
from ingest import SUBJECTS, Workload, make_workload, send_all

TARGET_SLOWDOWN = 0.15
TARGET_P95_S = 1.0
PROBES = tuple(f"probe-{i}" for i in range(40))
console = make_console()


def setup(url: str, with_rules: bool, per_customer: int) -> str:
    clock = SystemClock()
    rt, ingest_key, _ = prepare(url, clock, SUBJECTS)
    charges = [
        {"meter": "requests", "model": "per_unit", "unit_price": "0"},
        {"meter": "tokens", "model": "per_unit", "unit_price": "0.00001"},
    ]
    create_plan(rt.db, clock, parse_plan({"key": "api", "currency": "USD", "charges": charges}))
    start = clock.now() - timedelta(days=10)  # forecasts need a day of the period behind
    for key in PROBES:
        catalog.create_customer(rt.db, clock, Customer(key, key, None, "USD", "UTC"))
    for key in (*SUBJECTS, *PROBES):
        create_subscription(rt.db, clock, key, "api", start)
    if with_rules:
        for key in SUBJECTS:
            for body in _rules(key, per_customer):
                alerts.create_rule(rt.db, clock, body)
        for key in PROBES:
            probe = {"customer": key, "kind": "usage_threshold", "meter": "requests"}
            alerts.create_rule(rt.db, clock, {**probe, "measure": "quantity", "thresholds": ["1"]})
    rt.close()
    return ingest_key


def _rules(key: str, per_customer: int) -> list[dict[str, object]]:
    marks = [str(max(1, int(per_customer * share))) for share in (0.25, 0.5, 0.9)]
    return [
        {
            "customer": key,
            "kind": "usage_threshold",
            "meter": "requests",
            "measure": "quantity",
            "thresholds": marks,
        },
        {
            "customer": key,
            "kind": "forecast",
            "meter": "tokens",
            "measure": "quantity",
            "thresholds": [str(per_customer * 2000 * 2)],
        },
        {
            "customer": key,
            "kind": "spend_threshold",
            "measure": "amount",
            "thresholds": ["100", "200"],
        },
    ]


def probe_loop(url: str, key: str, stop: threading.Event, sent: dict[str, int]) -> None:
    headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/cloudevents+json"}
    with httpx.Client(base_url=url, headers=headers, timeout=60) as client:
        for customer in PROBES:
            if stop.wait(0.25):
                return
            event = {
                "specversion": "1.0",
                "id": uuid.uuid4().hex,
                "source": "probe",
                "type": EVENT_TYPE,
                "subject": customer,
                "time": datetime.now(UTC),
                "data": {"tokens": 1, "model": "small"},
            }
            body = orjson.dumps(event, option=orjson.OPT_UTC_Z)
            sent_us = to_us(datetime.now(UTC))
            assert client.post("/v1/events", content=body).status_code == 200
            sent[customer] = (sent_us, to_us(datetime.now(UTC)))


def latencies(url: str, sent: dict[str, tuple[int, int]]) -> list[tuple[float, float]]:
    """Per probe: seconds from before its POST, and from its acknowledgement (after the
    commit), to its notification being queued."""
    from fairmeter.storage.database import Database, make_engine

    db = Database(make_engine(url))
    time.sleep(1.5)  # the last probes' notifications
    with db.read() as conn:
        rows = conn.execute(
            select(notifications.c.customer_key, notifications.c.created_us).where(
                notifications.c.customer_key.in_(list(sent))
            )
        ).all()
    db.dispose()
    queued = dict(rows)
    missing = sorted(set(sent) - set(queued))
    if missing:
        console.print(f"  [red]{len(missing)} probe(s) never notified: {missing[:5]}[/]")
    return [
        ((queued[c] - sent[c][0]) / 1e6, (queued[c] - sent[c][1]) / 1e6)
        for c in sent
        if c in queued
    ]


def one_run(backend: str, work: Workload, with_rules: bool, args: argparse.Namespace) -> dict:
    per_customer = work.events // len(SUBJECTS)
    with fresh_database(backend) as url:
        key = setup(url, with_rules, per_customer)
        with Server(url, args.workers) as server:
            stop, sent = threading.Event(), {}
            prober = threading.Thread(target=probe_loop, args=(server.url, key, stop, sent))
            prober.start()
            cpu_before = server_cpu(server)
            seconds = send_all(server.url, key, work, args.clients, replay=False)
            cpu = server_cpu(server) - cpu_before
            stop.set()
            prober.join()
            waits = latencies(url, sent) if with_rules else []
    label = "3 rules" if with_rules else "no rules"
    console.print(
        f"  {label}: {rate(work.events, seconds):,.0f} events/s ({seconds:.2f} s), server CPU "
        f"{cpu:.2f} s = {cpu / work.events * 1e6:.1f} µs/event"
    )
    return {"rules": with_rules, "seconds": seconds, "cpu_s": cpu, "latencies_s": waits}


def server_cpu(server: Server) -> float:
    """CPU seconds (user + system) the server process has used: unlike wall time, barely
    moved by other programs on a busy machine."""
    assert server.process is not None
    fields = Path(f"/proc/{server.process.pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def run_backend(backend: str, args: argparse.Namespace) -> dict[str, object]:
    console.rule(f"[bold]{backend}")
    work = make_workload(args.events, args.batch, spread_hours=args.spread_hours)
    runs = []
    for _ in range(args.rounds):
        runs.append(one_run(backend, work, False, args))
        runs.append(one_run(backend, work, True, args))
    plain = statistics.median(r["seconds"] for r in runs if not r["rules"])
    ruled = statistics.median(r["seconds"] for r in runs if r["rules"])
    plain_cpu = statistics.median(r["cpu_s"] for r in runs if not r["rules"])
    ruled_cpu = statistics.median(r["cpu_s"] for r in runs if r["rules"])
    waits = [w for r in runs for w in r["latencies_s"]]
    none = {"median_ms": 0, "p95_ms": 0, "runs": 0}
    latency = percentiles([w[0] for w in waits]) if waits else none
    after_ack = percentiles([w[1] for w in waits]) if waits else none
    return {
        "backend": backend,
        "no_rules_events_s": rate(work.events, plain),
        "rules_events_s": rate(work.events, ruled),
        "slowdown": ruled / plain - 1,
        "cpu_overhead": ruled_cpu / plain_cpu - 1,
        "latency": latency,
        "latency_after_ack": after_ack,
        "runs": runs,
    }


def summary(results: list[dict[str, object]]) -> Table:
    table = Table(
        title="Ingest with and without 3 alert rules per customer (medians of the rounds)",
        caption=f"targets: slowdown <= {TARGET_SLOWDOWN:.0%}; event-to-queued p95 < "
        f"{TARGET_P95_S:.0f} s",
    )
    for name in (
        "backend",
        "no rules ev/s",
        "3 rules ev/s",
        "slowdown",
        "CPU/event",
        "latency p50",
        "latency p95",
        "p95 from ack",
        "probes",
    ):
        table.add_column(name, justify="left" if name == "backend" else "right")
    for r in results:
        latency, after_ack = r["latency"], r["latency_after_ack"]
        assert isinstance(latency, dict) and isinstance(after_ack, dict)
        table.add_row(
            str(r["backend"]),
            f"{r['no_rules_events_s']:,.0f}",
            f"{r['rules_events_s']:,.0f}",
            f"{r['slowdown']:+.1%}",
            f"{r['cpu_overhead']:+.1%}",
            f"{latency['median_ms']:.0f} ms",
            f"{latency['p95_ms']:.0f} ms",
            f"{after_ack['p95_ms']:.0f} ms",
            str(latency["runs"]),
        )
    return table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--batch", type=int, default=1000)
    parser.add_argument("--backends", default="sqlite,postgresql")
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--rounds", type=int, default=2, help="no-rules/rules pairs per backend")
    parser.add_argument("--spread-hours", type=float, default=3)
    args = parser.parse_args()
    setup_info = machine()
    console.print(
        f"{args.events:,} events in batches of {args.batch}, {args.clients} clients, "
        f"{args.rounds} round(s); load average {setup_info['load_average_1m_at_start']}"
    )
    results = [run_backend(b.strip(), args) for b in args.backends.split(",") if b.strip()]
    console.print(summary(results))
    path = write_results(
        "alerts", {"arguments": vars(args), "machine": setup_info, "results": results}
    )
    console.print(f"figures written to {path}")


if __name__ == "__main__":
    main()
