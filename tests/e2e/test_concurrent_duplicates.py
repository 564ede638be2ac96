"""Submitters racing each other with overlapping batches: every event is counted once.

Threads and spawned processes post the same events, in overlapping batches and in
different orders, to a real server; the dedupe claim and the write must be one unit."""

from __future__ import annotations

import multiprocessing
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from typing import Any

import pytest
from sqlalchemy import text
from submitters import Outcome, encode, event, post_all, post_all_into

from fairmeter.storage.database import make_engine

pytestmark = pytest.mark.slow

EVENTS = 400
BATCH = 60
STEP = 40  # consecutive batches share BATCH - STEP events
THREADS = 6
PROCESSES = 2
ORDERS = 4


def _batches(start: datetime, submitter: int) -> list[list[dict[str, Any]]]:
    """Every event, in overlapping batches. Submitters start at one of ORDERS batches, so
    some post the very same batch at the same moment and others overlap at the edges."""
    events = [event("race", i, start, n=i % 10) for i in range(EVENTS)]
    batches = [events[i : i + BATCH] for i in range(0, EVENTS, STEP)]
    rotation = submitter % ORDERS * 3
    return batches[rotation:] + batches[:rotation]


def _bodies(start: datetime, submitter: int) -> list[bytes]:
    return [encode(batch) for batch in _batches(start, submitter)]


def _in_processes(url: str, key: str, start: datetime, barrier: Any) -> dict[int, Any]:
    """Run the process submitters (numbered THREADS, THREADS + 1, ...) to completion."""
    ctx = multiprocessing.get_context("spawn")
    results: Any = ctx.Queue()
    numbers = [THREADS + i for i in range(PROCESSES)]
    workers = [
        ctx.Process(target=post_all_into, args=(results, r, url, key, _bodies(start, r), barrier))
        for r in numbers
    ]
    for worker in workers:
        worker.start()
    try:
        found = dict(results.get(timeout=90) for _ in workers)
    finally:
        for worker in workers:
            worker.join(timeout=10)
    return found


def _stored_rows_and_identities(database_url: str) -> tuple[int, int]:
    engine = make_engine(database_url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(text("SELECT count(*) FROM events")).scalar_one()
            identities = conn.execute(
                text("SELECT count(*) FROM (SELECT DISTINCT source, id FROM events) AS d")
            ).scalar_one()
    finally:
        engine.dispose()
    return int(rows), int(identities)


def test_overlapping_concurrent_submissions_count_each_event_once(
    live_server, live_admin_key: str, usage_of, last_hour: tuple[datetime, datetime]
) -> None:
    start, end = last_hour
    url, key = live_server.url, live_admin_key
    barrier = multiprocessing.get_context("spawn").Barrier(THREADS + PROCESSES)
    with ThreadPoolExecutor(THREADS) as pool:
        threads = {
            r: pool.submit(post_all, url, key, _bodies(start, r), barrier) for r in range(THREADS)
        }
        try:
            outcomes: dict[int, Any] = _in_processes(url, key, start, barrier)
        finally:
            barrier.abort()  # a no-op once everyone passed; frees the threads otherwise
        outcomes.update({r: future.result(timeout=90) for r, future in threads.items()})

    failed = {r: found for r, found in outcomes.items() if isinstance(found, str)}
    assert not failed
    assert len(outcomes) == THREADS + PROCESSES
    for number, submitter in outcomes.items():
        sizes = [len(batch) for batch in _batches(start, number)]
        assert [(a + d, r) for a, d, r in submitter] == [(size, 0) for size in sizes]
    accepted: list[Outcome] = [o for submitter in outcomes.values() for o in submitter]
    assert sum(a for a, _, _ in accepted) == EVENTS
    assert usage_of("calls", start, end) == str(EVENTS)
    assert usage_of("units", start, end) == str(sum(i % 10 for i in range(EVENTS)))
    assert _stored_rows_and_identities(live_server.database_url) == (EVENTS, EVENTS)
