"""query_usage: usage per window, from rollups, with raw events only at unaligned edges."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from zoneinfo import ZoneInfo

from fairmeter.domain.aggregates import Partial
from fairmeter.domain.errors import FieldError, InvalidInput, NotFound
from fairmeter.domain.meters import Aggregation, EventNotMetered, Meter
from fairmeter.domain.windows import Span, Window, estimate_windows, tile
from fairmeter.services.usage_tally import READERS, RowKey, Tally, WindowPlan
from fairmeter.storage.catalog import Customers, Meters
from fairmeter.storage.database import Database
from fairmeter.storage.usage import Usage

MAX_WINDOWS = 10_000


@dataclass(frozen=True)
class UsageRow:
    span: Span
    customer: str
    group: dict[str, str | None]
    value: Decimal | None


@dataclass(frozen=True)
class UsageQuery:
    meter: str
    customer: str | None
    span: Span
    window: Window
    zone: ZoneInfo
    group_by: tuple[str, ...] = ()


def query_usage(db: Database, query: UsageQuery) -> list[UsageRow]:
    windows = _windows(query)
    tally = Tally(WindowPlan(windows), query.group_by)
    with db.read() as conn:
        meter = _meter(Meters(conn), query)
        if query.customer is not None and Customers(conn).by_key(query.customer) is None:
            raise NotFound(f"no customer with key {query.customer!r}")
        usage = Usage(conn)
        _add_rollups(usage, meter, query, tally)
        _add_raw_edges(usage, meter, query, tally)
        known = _known_customers(Customers(conn), query, tally)
    return _rows(meter, query, windows, tally, known)


def _windows(query: UsageQuery) -> list[Span]:
    # Tiling millions of windows only to refuse them costs seconds: a lower bound first.
    if estimate_windows(query.span, query.window) <= MAX_WINDOWS:
        windows = tile(query.span, query.window, query.zone)
        if len(windows) <= MAX_WINDOWS:
            return windows
    raise InvalidInput(
        f"the range holds more than {MAX_WINDOWS} windows, the most one query returns",
        errors=(FieldError("/window", "choose a larger window or a shorter range"),),
    )


def _meter(meters: Meters, query: UsageQuery) -> Meter:
    meter = meters.by_key(query.meter)
    if meter is None:
        raise NotFound(f"no meter with key {query.meter!r}")
    names = {name for name, _ in meter.group_by}
    unknown = [g for g in query.group_by if g not in names]
    if unknown:
        raise InvalidInput(
            f"meter {meter.key!r} does not group by {', '.join(unknown)}",
            errors=(FieldError("/group_by", f"must be among: {', '.join(sorted(names))}"),),
        )
    return meter


def _add_rollups(usage: Usage, meter: Meter, query: UsageQuery, tally: Tally) -> None:
    start, end = tally.plan.bucket_range()
    columns = READERS[meter.aggregation][0]
    if meter.aggregation is Aggregation.UNIQUE_COUNT:
        rows = usage.distinct_values(meter.id, query.customer, start, end)
        tally.add_rows(meter.aggregation, rows)
    else:
        by_group = bool(query.group_by)
        rows = usage.rollup_cells(meter.id, query.customer, start, end, columns, by_group)
        tally.add_rows(meter.aggregation, rows, query.customer, by_group)


def _add_raw_edges(usage: Usage, meter: Meter, query: UsageQuery, tally: Tally) -> None:
    for start, end in tally.plan.raw:
        # An archived meter counts only the events stored before it was archived.
        events = usage.raw_events(meter.event_type, query.customer, start, end, meter.archived_seq)
        for subject, time_us, data_json, copies in events:
            data = json.loads(data_json, parse_float=Decimal)
            try:
                value = meter.measure(data)
            except EventNotMetered:
                continue
            tally.add_event(subject, meter.group_of(data), time_us, value, copies)


def _known_customers(customers: Customers, query: UsageQuery, tally: Tally) -> set[str]:
    if query.customer is not None:
        return {query.customer}
    return customers.existing({subject for subject, _ in tally.cells})


def _rows(
    meter: Meter, query: UsageQuery, windows: Sequence[Span], tally: Tally, known: set[str]
) -> list[UsageRow]:
    cells = tally.cells
    if query.customer is not None and not cells and not query.group_by:
        cells = {(query.customer, ()): [None] * len(windows)}
    rows: list[UsageRow] = []
    empty = Partial()
    for (subject, group), by_window in sorted(cells.items(), key=lambda kv: _sort_key(kv[0])):
        if subject not in known:
            continue
        for span, cell in zip(windows, by_window, strict=True):
            value = (cell or empty).value(meter.aggregation)
            rows.append(UsageRow(span, subject, dict(group), value))
    return rows


def _sort_key(key: RowKey) -> tuple[str, tuple[tuple[str, str], ...]]:
    subject, group = key
    return subject, tuple((n, v or "") for n, v in group)
