"""A count meter's admitted calls stored as one row (`events.copies`, ADR 13): every reader
of raw events counts the row `copies` times, exactly as it would count that many rows."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

from fairmeter.domain.customers import parse_customer
from fairmeter.domain.events import UsageEvent
from fairmeter.domain.meters import parse_meter
from fairmeter.domain.windows import BUCKET_US, Span, Window, from_us, to_us
from fairmeter.services import catalog
from fairmeter.services.billing_accounts import meters_by_key
from fairmeter.services.billing_usage import measure_usage
from fairmeter.services.hooks import Origin
from fairmeter.services.ingest import IngestRequest
from fairmeter.services.runtime import Runtime
from fairmeter.services.usage import UsageQuery, query_usage
from fairmeter.storage.alert_usage import UsageBatch

UTC = ZoneInfo("UTC")


def _event(event_id: str, time_us: int, tokens: int) -> UsageEvent:
    data = f'{{"tokens":{tokens}}}'.encode()
    return UsageEvent("fairmeter.entitlements", event_id, "api.call", "acme", time_us,
                      {"tokens": tokens}, data, bytes(16))  # fmt: skip


def _world(runtime: Runtime) -> tuple[int, int]:
    """A count and a sum meter on api.call; in one bucket, 7 minutes in: a run of 4 events
    (3 tokens each), then 2 minutes later a run of 1 and an ordinary event (2 tokens each).
    Returns the bucket's start and now."""
    catalog.create_customer(runtime.db, runtime.clock, parse_customer({"key": "acme"}))
    for body in (
        {"key": "calls", "event_type": "api.call", "aggregation": "count"},
        {"key": "tokens", "event_type": "api.call", "aggregation": "sum",
         "value_property": "$.tokens"},
    ):  # fmt: skip
        catalog.create_meter(runtime.db, runtime.clock, parse_meter(body))
    now_us = to_us(runtime.clock.now())
    bucket = now_us - now_us % BUCKET_US - 4 * BUCKET_US
    at = bucket + 7 * 60_000_000
    assert runtime.ingest.record_run(_event("run-a", at, 3), 4, now_us, Origin.ENTITLEMENTS)
    later = at + 120_000_000
    runtime.ingest.record_run(_event("run-b", later, 2), 1, now_us, Origin.ENTITLEMENTS)
    plain = _event("plain", later, 2)._replace(source="client")
    runtime.ingest.record(IngestRequest([(0, plain)], [], now_us, batch=True))
    return bucket, now_us


def test_usage_queries_read_a_runs_copies_at_the_edges(runtime: Runtime) -> None:
    bucket, now_us = _world(runtime)
    start = from_us(bucket + 5 * 60_000_000)  # inside the bucket: its events are read raw
    span = Span(start, from_us(now_us))
    for meter, expected in (("calls", Decimal(6)), ("tokens", Decimal(16))):
        rows = query_usage(runtime.db, UsageQuery(meter, "acme", span, Window.NONE, UTC))
        assert rows[0].value == expected, meter
    # A span starting after the run of 4 leaves it out, whole.
    after = Span(from_us(bucket + 8 * 60_000_000), from_us(now_us))
    rows = query_usage(runtime.db, UsageQuery("calls", "acme", after, Window.NONE, UTC))
    assert rows[0].value == Decimal(2)


def test_billing_and_alert_reads_count_a_runs_copies(runtime: Runtime) -> None:
    bucket, now_us = _world(runtime)
    start, end = bucket + 5 * 60_000_000, now_us
    with runtime.db.read() as conn:
        meters = meters_by_key(conn)
        span = Span(from_us(start), from_us(end))
        measured = measure_usage(conn, meters, [("acme", m, span) for m in ("calls", "tokens")])
        got = [(m.quantity, m.events) for m in measured.values()]
        assert sorted(got) == [(Decimal(6), 6), (Decimal(16), 6)]
        for now in (None, start + 1, now_us):
            reads = [("acme", meters[m], start, end) for m in ("calls", "tokens")]
            partials = UsageBatch(conn).read(reads, now)
            assert [p.count for p in partials] == [6, 6], now
            assert partials[1].total == Decimal(16), now


def test_a_meter_created_later_counts_a_runs_copies(runtime: Runtime) -> None:
    _bucket, now_us = _world(runtime)
    created, counted = catalog.create_meter(
        runtime.db, runtime.clock,
        parse_meter({"key": "later", "event_type": "api.call", "aggregation": "count"}),
    )  # fmt: skip
    assert counted == 6
    day = Span(from_us(now_us) - timedelta(days=1), from_us(now_us))
    rows = query_usage(runtime.db, UsageQuery(created.key, "acme", day, Window.NONE, UTC))
    assert rows[0].value == Decimal(6)
    body = {"key": "later_tokens", "event_type": "api.call", "aggregation": "sum",
            "value_property": "$.tokens"}  # fmt: skip
    catalog.create_meter(runtime.db, runtime.clock, parse_meter(body))
    rows = query_usage(runtime.db, UsageQuery("later_tokens", "acme", day, Window.NONE, UTC))
    assert rows[0].value == Decimal(16)
