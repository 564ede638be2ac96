"""An alert pass reads many customers' usage in a few statements: it must answer exactly
what billing's one-by-one reads answer, edges and negative values included."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from tests.services.alerts_world import AlertWorld

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
