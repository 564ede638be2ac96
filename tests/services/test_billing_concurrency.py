"""Two billing runs at once on PostgreSQL (writers really run concurrently there): every
period is invoiced once, and the numbers of the series have no gap and no repeat."""

from __future__ import annotations

import threading
from collections import Counter
from datetime import UTC, datetime, timedelta

from tests.services.billing_world import World

from fairmeter.config import Settings
from fairmeter.services.billing import RunReport, run_billing
from fairmeter.services.clock import FixedClock
from fairmeter.services.invoices import list_invoices
from fairmeter.services.thresholds import check_thresholds
from fairmeter.wiring import build

SEP = datetime(2026, 9, 1, tzinfo=UTC)
CUSTOMERS = 12


def _race(url: str, at: datetime, work: object, times: int = 2) -> list[object]:
    results: list[object] = []
    barrier = threading.Barrier(times)
    runtimes = [build(Settings(database_url=url), clock=FixedClock(at)) for _ in range(times)]

    def go(index: int) -> None:
        barrier.wait()
        results.append(work(runtimes[index]))  # type: ignore[operator]

    threads = [threading.Thread(target=go, args=(i,)) for i in range(times)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for rt in runtimes:
        rt.close()
    return results


def test_concurrent_runs_invoice_each_period_once_with_gapless_numbers(pg_url: str) -> None:
    rt = build(Settings(database_url=pg_url), clock=FixedClock(SEP))
    world = World(rt).meter("tokens", "sum")
    world.plan(
        "base",
        base_fee="10",
        charges=[{"meter": "tokens", "model": "per_unit", "unit_price": "0.01"}],
    )
    for n in range(CUSTOMERS):
        world.customer(f"c{n:02d}")
        world.subscribe(f"c{n:02d}", "base", SEP)
        world.at(SEP + timedelta(days=3)).use(f"c{n:02d}", "tokens", SEP + timedelta(days=2), n)
        world.at(SEP)
    reports = _race(pg_url, datetime(2026, 11, 5, tzinfo=UTC), run_billing)
    invoices = list_invoices(rt, limit=1000)
    rt.close()
    assert len(invoices) == CUSTOMERS * 2  # September and October, once each
    keys = Counter((i.subscription_id, i.period_start_us) for i in invoices)
    assert set(keys.values()) == {1}
    numbers = sorted(i.number or "" for i in invoices)
    assert numbers == [f"FM-2026-{n:06d}" for n in range(1, CUSTOMERS * 2 + 1)]
    finalized = [i for r in reports if isinstance(r, RunReport) for i in r.finalized]
    assert len(finalized) == CUSTOMERS * 2  # between them, the runs issued each one once


def test_concurrent_threshold_checks_issue_one_invoice(pg_url: str) -> None:
    rt = build(Settings(database_url=pg_url), clock=FixedClock(SEP))
    world = World(rt).meter("tokens", "sum").customer("acme")
    world.plan(
        "base",
        invoice_threshold="1",
        charges=[{"meter": "tokens", "model": "per_unit", "unit_price": "0.01"}],
    )
    world.subscribe("acme", "base", SEP)
    at = SEP + timedelta(days=3)
    world.at(at).use("acme", "tokens", SEP + timedelta(days=2), 500)
    rt.close()
    issued = _race(pg_url, at, lambda r: check_thresholds(r, at), times=3)
    assert sorted(len(found) for found in issued) == [0, 0, 1]  # type: ignore[arg-type]
