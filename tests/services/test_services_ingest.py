"""record_events on every backend: each event counts once, bad items never sink a batch."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

import msgspec
import pytest

from fairmeter.api.codec import parse_batch
from fairmeter.domain.customers import parse_customer
from fairmeter.domain.errors import AlreadyExists, InUse, NotFound
from fairmeter.domain.events import IngestResult
from fairmeter.domain.meters import parse_meter
from fairmeter.domain.windows import Span, Window, to_us
from fairmeter.services import catalog
from fairmeter.services.ingest import record_events
from fairmeter.services.runtime import Runtime
from fairmeter.services.usage import UsageQuery, query_usage

_JSON = msgspec.json.Encoder(decimal_format="number")


def event(number: int, subject: str = "acme", **data: object) -> dict[str, object]:
    return {
        "specversion": "1.0",
        "id": f"e{number}",
        "source": "tests",
        "type": "api.request",
        "subject": subject,
        "time": f"2026-11-15T10:{number % 60:02d}:00Z",
        "data": data,
    }


def send(rt: Runtime, events: list[dict[str, object]]) -> IngestResult:
    """The path POST /v1/events takes: parse the JSON batch, then record it."""
    now = rt.clock.now()
    items, rejected = parse_batch(_JSON.encode(events), now, rt.policy)
    return record_events(rt.db, items, rejected, received_us=to_us(now))


def meter(rt: Runtime, aggregation: str = "sum", key: str = "tokens") -> int:
    body: dict[str, object] = {"key": key, "event_type": "api.request", "aggregation": aggregation}
    if aggregation != "count":
        body["value_property"] = "$.tokens"
    return catalog.create_meter(rt.db, rt.clock, parse_meter(body))[1]


def customer(rt: Runtime, key: str = "acme") -> None:
    catalog.create_customer(rt.db, rt.clock, parse_customer({"key": key}))


def usage(
    rt: Runtime, key: str = "tokens", end: datetime | None = None
) -> dict[str, Decimal | None]:
    """Total per customer over the last day (up to `end`, which may split a rollup bucket)."""
    now = rt.clock.now()
    span = Span(now - timedelta(days=1), end or now + timedelta(hours=1))
    rows = query_usage(rt.db, UsageQuery(key, None, span, Window.NONE, ZoneInfo("UTC")))
    return {row.customer: row.value for row in rows}


def codes(result: IngestResult) -> list[tuple[int, str, str]]:
    return [(r.index, e.pointer, e.code) for r in result.rejected for e in r.errors]


def test_a_resent_event_is_counted_once(runtime: Runtime) -> None:
    meter(runtime)
    customer(runtime)
    batch = [event(1, tokens=5), event(2, tokens=7), event(3, tokens=Decimal("0.5"))]
    first, second = send(runtime, batch), send(runtime, batch)
    assert (first.accepted, first.duplicates, first.rejected) == (3, 0, ())
    assert (second.accepted, second.duplicates, second.rejected) == (0, 3, ())
    assert usage(runtime) == {"acme": Decimal("12.5")}


def test_same_identity_with_different_content_is_a_conflict(runtime: Runtime) -> None:
    meter(runtime)
    customer(runtime)
    send(runtime, [event(1, tokens=5)])
    result = send(runtime, [event(2, tokens=1), event(1, tokens=6)])
    assert (result.accepted, result.duplicates) == (1, 0)
    assert codes(result) == [(1, "/1", "event_conflict")]
    assert usage(runtime) == {"acme": Decimal(6)}


def test_a_changed_subject_or_time_is_a_conflict_too(runtime: Runtime) -> None:
    send(runtime, [event(1, tokens=5)])
    moved = {**event(1, tokens=5), "time": "2026-11-15T10:01:00.000001Z"}
    result = send(runtime, [event(1, subject="other", tokens=5), moved])
    assert [c[2] for c in codes(result)] == ["event_conflict", "event_conflict"]


def test_a_duplicate_inside_one_batch_counts_once(runtime: Runtime) -> None:
    meter(runtime)
    customer(runtime)
    result = send(runtime, [event(1, tokens=5), event(2, tokens=1), event(1, tokens=5)])
    assert (result.accepted, result.duplicates, result.rejected) == (2, 1, ())
    clash = send(runtime, [event(3, tokens=1), event(3, tokens=2)])
    assert (clash.accepted, clash.duplicates) == (1, 0)
    assert codes(clash) == [(1, "/1", "event_conflict")]
    assert usage(runtime) == {"acme": Decimal(7)}


def test_events_for_an_unknown_subject_count_once_the_customer_exists(runtime: Runtime) -> None:
    meter(runtime)
    result = send(runtime, [event(1, subject="later", tokens=4), event(2, "later", tokens=5)])
    assert result.accepted == 2
    assert usage(runtime) == {}
    customer(runtime, "later")
    assert usage(runtime) == {"later": Decimal(9)}


def test_a_meter_created_later_backfills_the_stored_events(runtime: Runtime) -> None:
    customer(runtime)
    stored = [event(1, tokens=3), event(2, tokens=Decimal("1.25")), event(3, tokens="many")]
    assert send(runtime, stored).accepted == 3
    assert meter(runtime, "sum") == 2
    assert meter(runtime, "count", key="calls") == 3
    assert usage(runtime) == {"acme": Decimal("4.25")}
    assert usage(runtime, "calls") == {"acme": Decimal(3)}


def test_a_sum_meter_rejects_a_non_numeric_value_and_keeps_the_rest(runtime: Runtime) -> None:
    meter(runtime)
    customer(runtime)
    batch = [event(1, tokens=2), event(2, tokens="three"), event(3, tokens=4), event(4)]
    result = send(runtime, batch)
    assert result.accepted == 2
    assert codes(result) == [
        (1, "/1/data/tokens", "invalid_value"),
        (3, "/3/data/tokens", "invalid_value"),
    ]
    assert usage(runtime) == {"acme": Decimal(6)}
    # The rejected events were not stored: fixed, they are accepted rather than conflicts.
    assert send(runtime, [event(2, tokens=3)]).accepted == 1


def test_an_archived_meter_stops_counting_new_events(runtime: Runtime) -> None:
    meter(runtime)
    customer(runtime)
    send(runtime, [event(1, tokens=2)])
    catalog.archive_meter(runtime.db, runtime.clock, "tokens")
    assert (
        send(runtime, [event(2, tokens="not metered any more"), event(3, tokens=5)]).accepted == 2
    )
    assert usage(runtime) == {"acme": Decimal(2)}
    assert catalog.get_meter(runtime.db, "tokens").archived
    assert [m.key for m in catalog.list_meters(runtime.db)] == []


def test_an_archived_meter_ignores_new_events_at_unaligned_edges_too(runtime: Runtime) -> None:
    meter(runtime)
    customer(runtime)
    send(runtime, [event(1, tokens=2)])
    catalog.archive_meter(runtime.db, runtime.clock, "tokens")
    send(runtime, [event(3, tokens=5)])
    # Ending just after event 3 splits its 15-minute bucket: that part is read from raw events.
    assert usage(runtime, end=datetime(2026, 11, 15, 10, 3, 0, 1, tzinfo=UTC)) == {
        "acme": Decimal(2)
    }


def test_a_meter_with_events_cannot_be_deleted(runtime: Runtime) -> None:
    meter(runtime)
    send(runtime, [event(1, tokens=1)])
    with pytest.raises(InUse):
        catalog.delete_meter(runtime.db, "tokens")
    assert catalog.get_meter(runtime.db, "tokens").key == "tokens"


def test_a_meter_no_event_refers_to_can_be_deleted(runtime: Runtime) -> None:
    catalog.create_meter(
        runtime.db,
        runtime.clock,
        parse_meter({"key": "idle", "event_type": "never.sent", "aggregation": "count"}),
    )
    send(runtime, [event(1, tokens=1)])
    catalog.delete_meter(runtime.db, "idle")
    with pytest.raises(NotFound):
        catalog.get_meter(runtime.db, "idle")


def test_a_customer_or_meter_key_is_taken_once(runtime: Runtime) -> None:
    customer(runtime)
    with pytest.raises(AlreadyExists):
        customer(runtime)
    meter(runtime)
    with pytest.raises(AlreadyExists):
        meter(runtime, "count")
    assert [c.key for c in catalog.list_customers(runtime.db)] == ["acme"]
