"""Ingest throughput: POST /v1/events on the real server, against a naive insert loop.

    .venv/bin/python bench/ingest.py --events 200000 --batch 1000 --clients 2

For each backend: a fresh database, the real server as a child process, K concurrent
HTTP clients sending pre-serialized batches of unique events; then the same batches again
(all duplicates); then the same rows through a bare executemany loop with no server, which
is the ceiling the server is compared with. Figures go to stdout and bench/results/."""

from __future__ import annotations

import argparse
import hashlib
import http.client
import itertools
import random
import threading
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from urllib.parse import urlsplit

import orjson
from rich.table import Table

from common import (
    EVENT_TYPE,
    MODELS,
    Server,
    fresh_database,
    machine,
    make_console,
    prepare,
    rate,
    write_results,
)
from fairmeter.domain.windows import to_us
from fairmeter.services.clock import SystemClock
from naive import Row, naive_postgresql, naive_sqlite

TARGET_EVENTS_S = 40_000
TARGET_SHARE_OF_NAIVE = 0.60
TARGET_REPLAY_COST = 0.25
SUBJECTS = tuple(f"customer-{i}" for i in range(8))
ORDERED = itertools.count(int(time.time() * 1000) << 16)
console = make_console()


@dataclass
class Workload:
    bodies: list[bytes] = field(default_factory=list)
    sizes: list[int] = field(default_factory=list)
    rows: list[list[Row]] = field(default_factory=list)

    @property
    def events(self) -> int:
        return sum(self.sizes)


def make_workload(
    count: int, batch: int, seed: int = 7, spread_hours: float = 3, ordered_ids: bool = False
) -> Workload:
    """Unique events over the last hours, serialized before any timing.

    Ids are uuid4 hex (random, as most clients send) or, with ordered_ids, time-ordered
    like UUIDv7/ULID, which keeps inserts into the identity index local."""
    rng = random.Random(seed)
    spread_us = max(1, int(spread_hours * 3600 * 1_000_000))
    now = datetime.now(UTC)
    received_us = to_us(now)
    work = Workload()
    for start in range(0, count, batch):
        events, rows = [], []
        for _ in range(min(batch, count - start)):
            moment = now - timedelta(microseconds=rng.randrange(spread_us))
            data = {"tokens": rng.randint(1, 4000), "model": rng.choice(MODELS)}
            event = {
                "specversion": "1.0",
                "id": _ordered_id() if ordered_ids else uuid.uuid4().hex,
                "source": "bench",
                "type": EVENT_TYPE,
                "subject": rng.choice(SUBJECTS),
                "time": moment,
                "data": data,
            }
            events.append(event)
            rows.append(_row(event, to_us(moment), received_us))
        work.bodies.append(orjson.dumps(events, option=orjson.OPT_UTC_Z))
        work.sizes.append(len(events))
        work.rows.append(rows)
    return work


def _ordered_id() -> str:
    return f"{next(ORDERED):014x}{uuid.uuid4().hex[14:]}"


def _row(event: dict[str, object], time_us: int, received_us: int) -> Row:
    data = orjson.dumps(event["data"], option=orjson.OPT_SORT_KEYS)
    digest = hashlib.blake2b(data + str(time_us).encode(), digest_size=16).digest()
    return (
        "bench",
        str(event["id"]),
        EVENT_TYPE,
        str(event["subject"]),
        time_us,
        received_us,
        data.decode(),
        digest,
    )


def send_all(url: str, key: str, work: Workload, clients: int, replay: bool) -> float:
    """Seconds to POST every batch with `clients` concurrent keep-alive connections.

    The clients are the standard library's `http.client`: on this 2-core machine the load
    generator shares the CPU with the server, and httpx spent about 1.2 ms of Python per
    request (its pool checks each idle connection's socket), a fifth of a replay's CPU."""
    pending: Iterator[int] = iter(range(len(work.bodies)))
    lock = threading.Lock()
    address = urlsplit(url)
    headers = {
        "Authorization": f"Bearer {key}",
        "Content-Type": "application/cloudevents-batch+json",
    }

    def sender() -> None:
        connection = http.client.HTTPConnection(address.hostname, address.port, timeout=300)
        try:
            while True:
                with lock:
                    index = next(pending, None)
                if index is None:
                    return
                connection.request("POST", "/v1/events", body=work.bodies[index], headers=headers)
                response = connection.getresponse()
                _check(response.status, response.read(), work.sizes[index], replay)
        finally:
            connection.close()

    started = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        for future in [pool.submit(sender) for _ in range(clients)]:
            future.result()
    return time.perf_counter() - started


def _check(status: int, content: bytes, size: int, replay: bool) -> None:
    if status != 200:
        raise SystemExit(f"POST /v1/events answered {status}: {content[:500]!r}")
    body = orjson.loads(content)
    expected = {"accepted": 0 if replay else size, "duplicates": size if replay else 0}
    got = {"accepted": body["accepted"], "duplicates": body["duplicates"]}
    if got != expected or body["rejected"]:
        raise SystemExit(f"expected {expected}, got {got}, rejected {body['rejected'][:3]}")


def naive_figures(backend: str, url: str, work: Workload) -> tuple[float, dict[str, float]]:
    """Seconds for the bare executemany loop, and reference rates for the variants."""
    if backend == "sqlite":
        naive = naive_sqlite(work.rows)
        indexed = naive_sqlite(work.rows, indexed=True)
        extra = {}
    else:
        naive = naive_postgresql(url, work.rows)
        indexed = naive_postgresql(url, work.rows, indexed=True)
        copy = naive_postgresql(url, work.rows, copy=True)
        extra = {"copy_rows_s": rate(work.events, copy)}
        _say("naive COPY (reference)", work.events, copy, "rows/s")
    _say("naive executemany", work.events, naive, "rows/s")
    _say("naive executemany, server's indexes (reference)", work.events, indexed, "rows/s")
    extra["naive_indexed_rows_s"] = rate(work.events, indexed)
    return naive, extra


def run_backend(backend: str, args: argparse.Namespace) -> dict[str, object]:
    console.rule(f"[bold]{backend}")
    shape = {"spread_hours": args.spread_hours, "ordered_ids": args.ordered_ids}
    work = make_workload(args.events, args.batch, **shape)
    warmup = make_workload(args.batch, args.batch, seed=1, **shape)
    with fresh_database(backend) as url:
        rt, ingest_key, _ = prepare(url, SystemClock(), SUBJECTS)
        rt.close()
        with Server(url, args.workers) as server:
            send_all(server.url, ingest_key, warmup, 1, replay=False)
            first = send_all(server.url, ingest_key, work, args.clients, replay=False)
            _say("HTTP first insert", work.events, first, "events/s", TARGET_EVENTS_S)
            again = send_all(server.url, ingest_key, work, args.clients, replay=True)
            _say("HTTP replay (all duplicates)", work.events, again, "events/s")
        console.print(
            f"  replay / first insert time: {again / first:.2f} "
            f"[dim](target <= {TARGET_REPLAY_COST})[/]"
        )
        figures: dict[str, object] = {
            "backend": backend,
            "http_events_s": rate(work.events, first),
            "replay_events_s": rate(work.events, again),
            "replay_cost_ratio": again / first,
        }
        naive, extra = naive_figures(backend, url, work)
    figures.update(extra)
    figures["naive_rows_s"] = rate(work.events, naive)
    figures["http_share_of_naive"] = naive / first
    console.print(f"  HTTP / naive: {naive / first:.0%}")
    return figures


def _say(label: str, count: int, seconds: float, unit: str, target: int | None = None) -> None:
    goal = f" [dim](target >= {target:,})[/]" if target else ""
    console.print(f"  {label}: {count / seconds:,.0f} {unit} ({seconds:.2f} s){goal}")


def summary(results: list[dict[str, object]]) -> Table:
    table = Table(
        title="Ingest: events of 8 subjects, 2 meters with rollups",
        caption=(
            f"targets: HTTP >= {TARGET_EVENTS_S:,} events/s on both backends; SQLite HTTP >= "
            f"{TARGET_SHARE_OF_NAIVE:.0%} of naive; replay/first time <= {TARGET_REPLAY_COST}. "
            "naive+idx: the naive loop into a table with the server's indexes (reference)"
        ),
    )
    table.add_column("backend")
    for name in (
        "HTTP ev/s",
        "naive rows/s",
        "HTTP/naive",
        "naive+idx",
        "replay ev/s",
        "replay/first",
    ):
        table.add_column(name, justify="right")
    for r in results:
        table.add_row(
            str(r["backend"]),
            f"{r['http_events_s']:,.0f}",
            f"{r['naive_rows_s']:,.0f}",
            f"{r['http_share_of_naive']:.0%}",
            f"{r['naive_indexed_rows_s']:,.0f}",
            f"{r['replay_events_s']:,.0f}",
            f"{r['replay_cost_ratio']:.2f}",
        )
    return table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--batch", type=int, default=1000)
    parser.add_argument("--backends", default="sqlite,postgresql")
    parser.add_argument("--clients", type=int, default=2, help="concurrent HTTP senders")
    parser.add_argument("--workers", type=int, default=1, help="uvicorn worker processes")
    parser.add_argument(
        "--spread-hours",
        type=float,
        default=3,
        help="event times are spread at random over this many past hours (index locality)",
    )
    parser.add_argument(
        "--ordered-ids", action="store_true", help="time-ordered ids instead of uuid4 hex"
    )
    args = parser.parse_args()
    setup = machine()
    console.print(
        f"{args.events:,} events in batches of {args.batch}, {args.clients} clients, "
        f"{args.workers} worker(s); load average {setup['load_average_1m_at_start']}"
    )
    results = [run_backend(b.strip(), args) for b in args.backends.split(",") if b.strip()]
    console.print(summary(results))
    path = write_results("ingest", {"arguments": vars(args), "machine": setup, "results": results})
    console.print(f"figures written to {path}")


if __name__ == "__main__":
    main()
