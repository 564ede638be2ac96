"""Every issued invoice of a generated month can be recomputed from the stored events, the
plan version and the rounding rule alone, and the result is the same lines.

The recomputation here shares nothing with the billing run's usage path: it reads the raw
events table and adds the values up itself (periods start at 10:07, inside rollup buckets)."""

from __future__ import annotations

import json
import random
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from sqlalchemy import select
from tests.services.billing_world import EVENT_TYPE, World

from fairmeter.domain.invoices import Invoice, InvoiceKind
from fairmeter.domain.invoicing import SegmentUsage, bill_remainder, covered_by, rate_cumulative
from fairmeter.domain.windows import Span, from_us
from fairmeter.services.billing import run_billing
from fairmeter.services.invoices import list_invoices
from fairmeter.services.runtime import Runtime
from fairmeter.services.thresholds import check_thresholds
from fairmeter.storage.billing import Plans, Segments, Subscriptions
from fairmeter.storage.invoices import billing_order
from fairmeter.storage.tables import events

START = datetime(2026, 9, 1, 10, 7, tzinfo=UTC)
PLAN = {
    "base_fee": "19.99",
    "invoice_threshold": "40",
    "charges": [
        {"meter": "calls", "model": "package", "package_price": "0.75", "package_size": "100"},
        {
            "meter": "tokens",
            "model": "volume",
            "included": "5000",
            "tiers": [
                {"up_to": "20000", "unit_price": "0.00125"},
                {"up_to": None, "unit_price": "0.001", "flat_fee": "2"},
            ],
        },
    ],
}


def _generate_month(rt: Runtime) -> None:
    world = World(rt).at(START).meter("calls", "count").meter("tokens", "sum")
    world.plan("pro", **PLAN)
    for n in range(4):
        world.customer(f"c{n}", threshold="15" if n == 3 else None)
        world.subscribe(f"c{n}", "pro", START)
    rng = random.Random(7)
    for day in range(31):
        world.at(START + timedelta(days=day, hours=23))
        batch: list[tuple[str, str, datetime, object]] = []
        for n in range(4):
            for _ in range(rng.randint(0, 4)):
                when = START + timedelta(days=day, minutes=rng.randint(0, 1380))
                batch.append((f"c{n}", "calls", when, 1))
                batch.append((f"c{n}", "tokens", when, Decimal(rng.randint(0, 900_000)) / 100))
        if batch:
            world.use_many(batch)
        if day % 3 == 0:
            check_thresholds(rt)
    world.at(START + timedelta(days=33))
    run_billing(rt)


def _usage(rt: Runtime, customer: str, meter: str, span: Span) -> tuple[Decimal, int]:
    e = events.c
    query = select(e.data).where(
        e.subject == customer,
        e.type == f"{EVENT_TYPE}.{meter}",
        e.time_us >= span.start_us,
        e.time_us < span.end_us,
    )
    with rt.db.read() as conn:
        rows = conn.execute(query).all()
    if meter == "calls":
        return Decimal(len(rows)), len(rows)
    values = [Decimal(str(json.loads(row[0], parse_float=Decimal)["value"])) for row in rows]
    return sum(values, Decimal(0)), len(rows)


def _recompute(rt: Runtime, invoice: Invoice, before: Sequence[Invoice]) -> list[object]:
    with rt.db.read() as conn:
        subscription = Subscriptions(conn).by_id(invoice.subscription_id)
        segments = Segments(conn).of(invoice.subscription_id)
        plans = Plans(conn)
        assert subscription is not None
        period = Span(from_us(invoice.period_start_us), from_us(invoice.period_end_us))
        usages = []
        for segment in segments:
            span = segment.within(period)
            plan = plans.version(segment.plan_key, segment.plan_version)
            if span is None or plan is None:
                continue
            until = Span(span.start, from_us(min(span.end_us, invoice.covers_until_us)))
            measured = {m: _usage(rt, invoice.customer_key, m, until) for m in plan.meters}
            quantities = {m: q for m, (q, _) in measured.items()}
            counts = {m: c for m, (_, c) in measured.items()}
            usages.append(SegmentUsage(span, plan, quantities, counts))
    calendar = subscription.calendar_period_at(period.start)
    base = invoice.kind is InvoiceKind.PERIOD
    lines = rate_cumulative(calendar, period, usages, base_fee=base)
    earlier = [line for i in before for line in i.lines]
    return list(bill_remainder(lines, covered_by(earlier, invoice.period_start_us)))


def test_every_issued_invoice_is_recomputed_identically_from_stored_events(
    runtime: Runtime,
) -> None:
    _generate_month(runtime)
    invoices = sorted(list_invoices(runtime, limit=1000), key=billing_order)
    kinds = {i.kind for i in invoices}
    assert kinds == {InvoiceKind.PERIOD, InvoiceKind.THRESHOLD}
    assert len([i for i in invoices if i.kind is InvoiceKind.PERIOD]) == 4
    for invoice in invoices:
        assert invoice.number is not None
        before = [
            i
            for i in invoices
            if i.subscription_id == invoice.subscription_id
            and billing_order(i) < billing_order(invoice)
        ]
        assert _recompute(runtime, invoice, before) == list(invoice.lines), invoice.number
