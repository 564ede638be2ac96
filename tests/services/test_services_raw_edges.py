"""An event counts the same whether a query reads it from rollups or from raw events.

Rollups cover whole 15-minute buckets; a query bound inside a bucket (and a meter created
after its events) reads the stored event JSON instead. Both paths must agree to the digit."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

import msgspec
import pytest

from fairmeter.api.codec import parse_batch
from fairmeter.domain.customers import parse_customer
from fairmeter.domain.meters import parse_meter
from fairmeter.domain.windows import Span, Window, to_us
from fairmeter.services import catalog
from fairmeter.services.ingest import record_events
from fairmeter.services.runtime import Runtime
from fairmeter.services.usage import UsageQuery, query_usage

_JSON = msgspec.json.Encoder(decimal_format="number")
AT = datetime(2026, 11, 15, 10, 5, tzinfo=UTC)
ALIGNED_END = datetime(2026, 11, 15, 11, 0, tzinfo=UTC)
# Ends one microsecond after the events: their bucket is read from raw events.
SPLIT_END = AT + timedelta(microseconds=1)
PRECISE = Decimal("698560149051801.3")


def _send(rt: Runtime, values: list[object]) -> None:
    events = [
        {
            "specversion": "1.0",
            "id": f"e{i}",
            "source": "tests",
            "type": "api.request",
            "subject": "acme",
            "time": AT.isoformat(),
            "data": {"v": value},
        }
        for i, value in enumerate(values)
    ]
    items, rejected = parse_batch(_JSON.encode(events), rt.clock.now(), rt.policy)
    assert record_events(rt.db, items, rejected, to_us(rt.clock.now())).accepted == len(values)


def _meter(rt: Runtime, aggregation: str, **extra: object) -> int:
    body = {"key": "m", "event_type": "api.request", "aggregation": aggregation, **extra}
    return catalog.create_meter(rt.db, rt.clock, parse_meter(body))[1]


def _usage(
    rt: Runtime, end: datetime, group_by: tuple[str, ...] = ()
) -> list[tuple[dict[str, str | None], Decimal | None]]:
    span = Span(AT - timedelta(hours=1), end)
    query = UsageQuery("m", None, span, Window.NONE, ZoneInfo("UTC"), group_by)
    return [(r.group, r.value) for r in query_usage(rt.db, query)]


@pytest.fixture
def acme(runtime: Runtime) -> Runtime:
    catalog.create_customer(runtime.db, runtime.clock, parse_customer({"key": "acme"}))
    return runtime


def test_aligned_queries_keep_every_digit(acme: Runtime) -> None:
    _meter(acme, "sum", value_property="$.v")
    _send(acme, [PRECISE, Decimal("0.000000000001")])
    assert _usage(acme, ALIGNED_END) == [({}, PRECISE + Decimal("0.000000000001"))]


def test_a_split_bucket_keeps_every_digit_of_a_sum(acme: Runtime) -> None:
    _meter(acme, "sum", value_property="$.v")
    _send(acme, [PRECISE])
    assert _usage(acme, SPLIT_END) == _usage(acme, ALIGNED_END) == [({}, PRECISE)]


def test_a_split_bucket_counts_decimal_unique_values(acme: Runtime) -> None:
    _meter(acme, "unique_count", value_property="$.v")
    _send(acme, [Decimal("1.5"), Decimal("2.5"), Decimal("1.50")])
    assert _usage(acme, SPLIT_END) == _usage(acme, ALIGNED_END) == [({}, Decimal(2))]


def test_a_split_bucket_spells_a_decimal_group_value_as_rollups_do(acme: Runtime) -> None:
    _meter(acme, "count", group_by={"size": "$.v"})
    _send(acme, [Decimal("100.0")])
    by_rollup = _usage(acme, ALIGNED_END, ("size",))
    assert by_rollup == [({"size": "100"}, Decimal(1))]
    assert _usage(acme, SPLIT_END, ("size",)) == by_rollup


def test_a_meter_created_later_backfills_decimal_values_exactly(acme: Runtime) -> None:
    _send(acme, [PRECISE, Decimal("2.5")])
    assert _meter(acme, "unique_count", value_property="$.v") == 2
    assert _usage(acme, ALIGNED_END) == [({}, Decimal(2))]
