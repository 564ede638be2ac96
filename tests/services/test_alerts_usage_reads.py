"""An alert pass reads many customers' usage in a few statements: it must answer exactly
what billing's one-by-one reads answer, edges and negative values included."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from tests.services.alerts_world import AlertWorld

from fairmeter.domain.aggregates import Partial
from fairmeter.domain.windows import Span
from fairmeter.services.alert_evaluation import measure_reads
from fairmeter.services.billing_accounts import meters_by_key
from fairmeter.services.billing_usage import measure_usage
from fairmeter.services.runtime import Runtime

DAY = datetime(2026, 11, 15, tzinfo=UTC)


def test_batched_reads_answer_exactly_what_measure_usage_answers(runtime: Runtime) -> None:
    world = AlertWorld(runtime).meter("calls").meter("tokens", "sum").meter("peak", "max")
    rng = random.Random(3)
    customers = ["acme", "globex", "initech"]
    for key in customers:
        world.customer(key)
    usages = [
        (
            rng.choice(customers),
            rng.choice(["calls", "tokens", "peak"]),
            DAY - timedelta(seconds=rng.randrange(2 * 24 * 3600)),
            rng.choice([1, 7, -3, Decimal("2.5"), Decimal("0.000000000001")]),
        )
        for _ in range(400)
    ]
    world.use_many(usages)
    spans = [
        Span(DAY - timedelta(days=2), DAY),
        Span(DAY - timedelta(hours=30, minutes=7, seconds=3), DAY - timedelta(minutes=22)),
        Span(DAY - timedelta(hours=5, minutes=1), DAY - timedelta(hours=5)),
    ]
    wanted = [
        (c, m, s)
        for c in [*customers, "nobody"]
        for m in ["calls", "tokens", "peak"]
        for s in spans
    ]
    with runtime.db.read() as conn:
        meters = meters_by_key(conn)
        batched = measure_reads(conn, meters, wanted)
        one_by_one = measure_usage(conn, meters, wanted)
    assert {k: v.quantity for k, v in batched.items()} == {
        k: v.quantity for k, v in one_by_one.items()
    }
    assert any(v.quantity != 0 for v in batched.values())


def test_a_start_inside_a_bucket_reads_either_side_of_it_exactly(runtime: Runtime) -> None:
    """A span starting inside a bucket is read as its raw events from the start, or as the
    bucket's rollup less the raw events before the start (whichever covers less time up
    to `now_us`): both answer exactly what measure_usage answers, for count and sum meters,
    with events on both sides of the start, at it and at the bucket's edges."""
    from fairmeter.domain.windows import BUCKET_US, to_us
    from fairmeter.storage.alert_usage import UsageBatch

    world = AlertWorld(runtime).meter("calls").meter("tokens", "sum").customer("acme")
    bucket = DAY + timedelta(hours=3)  # a bucket boundary
    offsets = [0, 1, 59, 60, 61, 299, 300, 301, 599, 899]  # seconds into the bucket
    world.use_many(
        [
            (
                "acme",
                meter,
                bucket + timedelta(seconds=s),
                Decimal("1.25") if meter == "tokens" else 1,
            )
            for s in offsets
            for meter in ("calls", "tokens")
        ]
    )
    end = bucket + timedelta(hours=2, minutes=3)
    with runtime.db.read() as conn:
        meters = meters_by_key(conn)
        for start_s in (1, 60, 300, 450, 600, 899):
            start = bucket + timedelta(seconds=start_s)
            for now in (start + timedelta(seconds=2), bucket + timedelta(minutes=20), None):
                reads = [("acme", meters[m], to_us(start), to_us(end)) for m in ("calls", "tokens")]
                now_us = None if now is None else to_us(now)
                got = UsageBatch(conn).read(reads, now_us)
                expected = measure_usage(
                    conn, meters, [("acme", m, Span(start, end)) for m in ("calls", "tokens")]
                )
                kept = [s for s in offsets if s >= start_s]
                assert [p.count for p in got] == [len(kept), len(kept)], (start_s, now)
                assert got[1].total == Decimal("1.25") * len(kept)
                assert [v.quantity for v in expected.values()] == [len(kept), got[1].total]
    assert BUCKET_US == 15 * 60 * 1_000_000  # the offsets above assume 15-minute buckets


def test_kept_heads_answer_exactly_and_a_late_event_in_one_is_heard_of(runtime: Runtime) -> None:
    """With `heads`, a span starting inside a bucket is the bucket's rollup less the kept
    events before its start. A late event recorded before the start (it belongs to the
    period before) must not leak into the span: the cache forgets that head; an event
    after the start counts. A head read while such an event lands is not kept."""
    from fairmeter.domain.windows import to_us
    from fairmeter.storage.alert_usage import UsageBatch

    world = AlertWorld(runtime).meter("calls").meter("tokens", "sum").customer("acme")
    heads = runtime.heads
    bucket = DAY + timedelta(hours=3)
    world.use_many(
        [("acme", "calls", bucket + timedelta(seconds=s), 1) for s in (10, 299, 300, 700)]
        + [("acme", "tokens", bucket + timedelta(seconds=s), 2) for s in (10, 299, 300, 700)]
    )
    start, end, now = bucket + timedelta(seconds=300), bucket + timedelta(hours=5), bucket
    now += timedelta(minutes=40)
    spans = [("acme", m, Span(start, end)) for m in ("calls", "tokens")]

    def read() -> list[Decimal]:
        with runtime.db.read() as conn:
            meters = meters_by_key(conn)
            reads = [("acme", meters[m], to_us(start), to_us(end)) for m in ("calls", "tokens")]
            got = UsageBatch(conn).read(reads, to_us(now), heads)
            truth = measure_usage(conn, meters, spans)
        values = [Decimal(got[0].count), got[1].total]
        assert values == [v.quantity for v in truth.values()]
        return values

    assert read() == [2, 4]
    assert len(heads._heads) == 2  # the events from 3:00 to 3:05, per meter
    assert read() == [2, 4]  # from the kept heads
    world.use_many([("acme", "calls", bucket + timedelta(seconds=100), 1),
                    ("acme", "tokens", bucket + timedelta(seconds=100), 5)])  # fmt: skip
    assert len(heads._heads) == 0  # late, before the start: forgotten
    assert read() == [2, 4]
    world.use_many([("acme", "tokens", bucket + timedelta(seconds=400), 5)])
    assert read() == [2, 9]
    generation, kept = heads.generation(), next(iter(heads._heads))
    world.use_many([("acme", "calls", bucket + timedelta(seconds=1), 1)])  # late again
    heads.put(kept, Partial(count=99), generation)  # as a read begun before it would
    assert kept not in heads._heads
    assert read() == [2, 9]
