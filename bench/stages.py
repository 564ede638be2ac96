"""Where an ingested event's time goes: per-event cost of each stage of the ingest path.

    .venv/bin/python bench/stages.py --events 50000 --backends sqlite,postgresql

Runs the same batches as bench/ingest.py in-process (codec.parse_batch, then
record_events) with timers around the storage calls, then once more over HTTP with one
client, so the difference is what the HTTP layer (body read, routing, auth, response,
client) costs. --profile adds a pyinstrument profile of the in-process loop."""

from __future__ import annotations

import argparse
import functools
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from rich.table import Table

from common import Server, fresh_database, make_console, prepare, profile
from fairmeter.api import codec
from fairmeter.domain.windows import to_us
from fairmeter.services import ingest as ingest_service
from fairmeter.services.clock import SystemClock
from fairmeter.services.rollups import RollupBatch
from fairmeter.services.runtime import Runtime
from fairmeter.storage.catalog import Meters
from fairmeter.storage.usage import Usage
from ingest import SUBJECTS, Workload, make_workload, send_all

console = make_console()
SPENT: dict[str, float] = defaultdict(float)

# (owner, attribute, stage): the storage calls record_events makes, timed where they are.
TIMED = (
    (Usage, "active_meter_rows", "meters lookup (SQL)"),
    (Meters, "active_for_types", "meters lookup (SQL)"),
    (Usage, "stored_digests", "dedupe lookup (SQL)"),
    (Usage, "insert_events", "insert events (SQL)"),
    (RollupBatch, "add_recorded", "rollups: accumulate (Python)"),
    (RollupBatch, "write", "rollups: upsert (SQL)"),
)


def _timed(stage: str, function: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(function)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        started = time.perf_counter()
        try:
            return function(*args, **kwargs)
        finally:
            SPENT[stage] += time.perf_counter() - started

    return wrapper


@contextmanager
def instrumented(rt: Runtime) -> Iterator[None]:
    """Timers around the storage calls and the commit, removed afterwards."""
    saved = [(owner, name, getattr(owner, name)) for owner, name, _ in TIMED]
    dialect = rt.db.engine.dialect
    for owner, name, stage in TIMED:
        setattr(owner, name, _timed(stage, getattr(owner, name)))
    dialect.do_commit = _timed("commit", dialect.do_commit)  # type: ignore[method-assign]
    try:
        yield
    finally:
        for owner, name, original in saved:
            setattr(owner, name, original)
        del dialect.do_commit


def in_process(rt: Runtime, work: Workload) -> None:
    """parse_batch then record_events for every batch, as the route's worker thread does."""
    for body in work.bodies:
        now = rt.clock.now()
        started = time.perf_counter()
        codec._BATCH.decode(body)
        SPENT["JSON decode (msgspec, measured apart)"] += time.perf_counter() - started
        started = time.perf_counter()
        items, rejected = codec.parse_batch(body, now, rt.policy)
        parsed = time.perf_counter()
        ingest_service.record_events(rt.db, items, rejected, received_us=to_us(now))
        SPENT["codec.parse_batch (total)"] += parsed - started
        SPENT["record_events (total)"] += time.perf_counter() - parsed


ORDER = (
    "JSON decode (msgspec, measured apart)",
    "codec.parse_batch (total)",
    "meters lookup (SQL)",
    "dedupe lookup (SQL)",
    "insert events (SQL)",
    "rollups: accumulate (Python)",
    "rollups: upsert (SQL)",
    "commit",
    "record_events: Python outside the timed calls",
    "record_events (total)",
    "in-process total",
)


def report(title: str, events: int, http_s: float | None) -> Table:
    table = Table(title=title)
    table.add_column("stage")
    table.add_column("µs / event", justify="right")
    sql = sum(v for k, v in SPENT.items() if k.endswith("(SQL)") or k == "commit")
    rows = defaultdict(float, SPENT)
    rows["record_events: Python outside the timed calls"] = (
        SPENT["record_events (total)"] - sql - SPENT["rollups: accumulate (Python)"]
    )
    rows["in-process total"] = SPENT["codec.parse_batch (total)"] + SPENT["record_events (total)"]
    stages = list(ORDER)
    if http_s is not None:
        rows["HTTP, 1 client (wall)"] = http_s
        rows["HTTP layer = HTTP - in-process"] = http_s - rows["in-process total"]
        stages += ["HTTP, 1 client (wall)", "HTTP layer = HTTP - in-process"]
    for stage in stages:
        table.add_row(stage, f"{rows[stage] / events * 1e6:.1f}")
    return table


def run(backend: str, args: argparse.Namespace) -> None:
    work = make_workload(args.events, args.batch)
    warmup = make_workload(args.batch * 2, args.batch, seed=1)
    with fresh_database(backend) as url, Server(url) as server:
        rt, key, _ = prepare(url, SystemClock(), SUBJECTS)
        send_all(server.url, key, warmup, 1, replay=False)
        http_s: float | None = send_all(server.url, key, work, 1, replay=False)
        rt.close()
    with fresh_database(backend) as url:
        rt, _, _ = prepare(url, SystemClock(), SUBJECTS)
        in_process(rt, warmup)
        for kind in ("first insert", "replay (all duplicates)"):
            SPENT.clear()
            with instrumented(rt):
                in_process(rt, work)
            console.print(report(f"{backend}: {kind}", work.events, http_s))
            http_s = None
        if args.profile:
            extra = make_workload(args.events, args.batch, seed=3)
            console.print(profile(lambda: in_process(rt, extra)))
        rt.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=50_000)
    parser.add_argument("--batch", type=int, default=1000)
    parser.add_argument("--backends", default="sqlite,postgresql")
    parser.add_argument("--profile", action="store_true", help="add a pyinstrument profile")
    args = parser.parse_args()
    for backend in args.backends.split(","):
        run(backend.strip(), args)


if __name__ == "__main__":
    main()
