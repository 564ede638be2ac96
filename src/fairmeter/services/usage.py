"""query_usage: usage per window, from rollups, with raw events only at unaligned edges."""

from __future__ import annotations

import json
from bisect import bisect_right
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from zoneinfo import ZoneInfo

from fairmeter.domain.aggregates import Partial
from fairmeter.domain.errors import FieldError, InvalidInput, NotFound
from fairmeter.domain.meters import EventNotMetered, Meter
from fairmeter.domain.windows import BUCKET_US, Span, Window, bucket_of, estimate_windows, tile
from fairmeter.storage.catalog import Customers, Meters
from fairmeter.storage.database import Database
from fairmeter.storage.usage import Usage

MAX_WINDOWS = 10_000
RowKey = tuple[str, tuple[tuple[str, str | None], ...]]


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


class _Plan:
    """Which part of each window comes from whole buckets, and which from raw events."""

    def __init__(self, windows: Sequence[Span]):
        self.windows = windows
        self.inner: list[tuple[int, int]] = []
        self.raw: list[tuple[int, int]] = []
        for w in windows:
            start, end = w.start_us, w.end_us
            inner_start = -(-start // BUCKET_US) * BUCKET_US
            inner_end = bucket_of(end)
            if inner_start >= inner_end:
                self._raw(start, end)
                self.inner.append((start, start))
                continue
            self._raw(start, inner_start)
            self._raw(inner_end, end)
            self.inner.append((inner_start, inner_end))
        self.starts = [w.start_us for w in windows]

    def _raw(self, start: int, end: int) -> None:
        if start >= end:
            return
        if self.raw and self.raw[-1][1] == start:
            self.raw[-1] = (self.raw[-1][0], end)
        else:
            self.raw.append((start, end))

    def window_of_bucket(self, bucket_us: int) -> int | None:
        index = bisect_right(self.starts, bucket_us) - 1
        if index < 0:
            return None
        inner_start, inner_end = self.inner[index]
        return index if inner_start <= bucket_us < inner_end else None

    def window_of_instant(self, time_us: int) -> int:
        return bisect_right(self.starts, time_us) - 1


def query_usage(db: Database, query: UsageQuery) -> list[UsageRow]:
    # Tiling millions of windows only to refuse them costs seconds: estimate first.
    estimate = estimate_windows(query.span, query.window)
    windows = tile(query.span, query.window, query.zone) if estimate <= MAX_WINDOWS else []
    if not windows or len(windows) > MAX_WINDOWS:
        count = len(windows) or f"about {estimate}"
        raise InvalidInput(
            f"the range holds {count} windows; at most {MAX_WINDOWS} per query",
            errors=(FieldError("/window", "choose a larger window or a shorter range"),),
        )
    plan = _Plan(windows)
    with db.read() as conn:
        meter = _meter(Meters(conn), query)
        if query.customer is not None and Customers(conn).by_key(query.customer) is None:
            raise NotFound(f"no customer with key {query.customer!r}")
        partials = _from_rollups(Usage(conn), meter, query, plan)
        _add_raw_edges(Usage(conn), meter, query, plan, partials)
        known = _known_customers(Customers(conn), query, partials)
    return _rows(meter, query, windows, partials, known)


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


Partials = dict[RowKey, dict[int, Partial]]


def _project(
    cache: dict[str, tuple[tuple[str, str | None], ...]], key: str, names: tuple[str, ...]
) -> tuple[tuple[str, str | None], ...]:
    found = cache.get(key)
    if found is None:
        group = json.loads(key)
        found = cache[key] = tuple((n, group.get(n)) for n in names)
    return found


def _from_rollups(usage: Usage, meter: Meter, query: UsageQuery, plan: _Plan) -> Partials:
    partials: Partials = defaultdict(dict)
    spans = [s for s in plan.inner if s[0] < s[1]]
    if not spans:
        return partials
    start, end = spans[0][0], spans[-1][1]
    cache: dict[str, tuple[tuple[str, str | None], ...]] = {}
    if meter.aggregation.value == "unique_count":
        for subject, bucket, key, value in usage.distinct_values(
            meter.id, query.customer, start, end
        ):
            index = plan.window_of_bucket(bucket)
            if index is not None:
                slot = _slot(partials, (subject, _project(cache, key, query.group_by)), index)
                slot.distinct.add(value)
        return partials
    for r in usage.rollups(meter.id, query.customer, start, end):
        index = plan.window_of_bucket(r.bucket_us)
        if index is None:
            continue
        slot = _slot(partials, (r.subject, _project(cache, r.group_key, query.group_by)), index)
        slot.merge(Partial(r.count, r.total, r.maximum, r.latest_us, r.latest))
    return partials


def _add_raw_edges(
    usage: Usage, meter: Meter, query: UsageQuery, plan: _Plan, partials: Partials
) -> None:
    for start, end in plan.raw:
        # An archived meter counts only the events stored before it was archived.
        events = usage.raw_events(meter.event_type, query.customer, start, end, meter.archived_seq)
        for subject, time_us, data_json in events:
            data = json.loads(data_json, parse_float=Decimal)
            try:
                value = meter.measure(data)
            except EventNotMetered:
                continue
            group = dict(meter.group_of(data))
            key = (subject, tuple((n, group.get(n)) for n in query.group_by))
            _slot(partials, key, plan.window_of_instant(time_us)).add(value, time_us)


def _slot(partials: Partials, key: RowKey, index: int) -> Partial:
    by_window = partials[key]
    slot = by_window.get(index)
    if slot is None:
        slot = by_window[index] = Partial()
    return slot


def _known_customers(customers: Customers, query: UsageQuery, partials: Partials) -> set[str]:
    if query.customer is not None:
        return {query.customer}
    return customers.existing({subject for subject, _ in partials})


def _rows(
    meter: Meter, query: UsageQuery, windows: Sequence[Span], partials: Partials, known: set[str]
) -> list[UsageRow]:
    if query.customer is not None and not partials:
        partials = {(query.customer, ()): {}} if not query.group_by else {}
    rows: list[UsageRow] = []
    for (subject, group), by_window in sorted(partials.items(), key=lambda kv: _sort_key(kv[0])):
        if subject not in known:
            continue
        for index, span in enumerate(windows):
            partial = by_window.get(index) or Partial()
            rows.append(UsageRow(span, subject, dict(group), partial.value(meter.aggregation)))
    return rows


def _sort_key(key: RowKey) -> tuple[str, tuple[tuple[str, str], ...]]:
    subject, group = key
    return subject, tuple((n, v or "") for n, v in group)
