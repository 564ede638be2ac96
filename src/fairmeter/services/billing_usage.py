"""Usage as billing needs it: one quantity and one event count per (customer, meter, span).

Whole 15-minute buckets come from the rollups, added up by the database; the unaligned
edges of a span (a period starting at 10:07) come from the raw events, exactly as
`query_usage` does. Spans shared by many customers (subscriptions with the same anchor)
are read for everyone at once."""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from decimal import Decimal

from sqlalchemy.engine import Connection

from fairmeter.domain.aggregates import Partial
from fairmeter.domain.meters import EventNotMetered, Meter
from fairmeter.domain.windows import BUCKET_US, Span, bucket_of
from fairmeter.storage.usage import Usage
from fairmeter.storage.usage_totals import UsageTotals

# From this many customers on one span, one query reads the buckets of every customer
# from the first to the last of them (callers bill customers in key order, in chunks).
BULK = 16


@dataclass(frozen=True)
class Measure:
    quantity: Decimal
    events: int


NONE = Measure(Decimal(0), 0)
MeasureKey = tuple[str, str, int, int]  # subject, meter key, start_us, end_us


def measure_key(subject: str, meter: str, span: Span) -> MeasureKey:
    return subject, meter, span.start_us, span.end_us


def measure_usage(
    conn: Connection, meters: Mapping[str, Meter], wanted: Iterable[tuple[str, str, Span]]
) -> dict[MeasureKey, Measure]:
    """The usage of each wanted (subject, meter key, span); an unknown meter measures 0."""
    groups: dict[tuple[str, int, int], set[str]] = defaultdict(set)
    for subject, meter_key, span in wanted:
        groups[(meter_key, span.start_us, span.end_us)].add(subject)
    found: dict[MeasureKey, Measure] = {}
    for (meter_key, start_us, end_us), subjects in groups.items():
        meter = meters.get(meter_key)
        partials = _partials(conn, meter, subjects, start_us, end_us) if meter else {}
        for subject in subjects:
            partial = partials.get(subject)
            if partial is None or meter is None:
                found[(subject, meter_key, start_us, end_us)] = NONE
                continue
            value = partial.value(meter.aggregation) or Decimal(0)
            found[(subject, meter_key, start_us, end_us)] = Measure(value, partial.count)
    return found


def _partials(
    conn: Connection, meter: Meter, subjects: set[str], start_us: int, end_us: int
) -> dict[str, Partial]:
    inner_start = -(-start_us // BUCKET_US) * BUCKET_US
    inner_end = max(bucket_of(end_us), inner_start)
    ordered = sorted(subjects)
    bulk = len(subjects) >= BULK
    ranges = [(ordered[0], ordered[-1])] if bulk else [(s, s) for s in ordered]
    who: list[str | None] = [None] if bulk else list(ordered)
    partials: dict[str, Partial] = {}
    if inner_start < inner_end:
        totals = UsageTotals(conn)
        for subject_range in ranges:
            partials.update(totals.bucket_totals(meter, subject_range, inner_start, inner_end))
    edges = [(start_us, min(inner_start, end_us)), (max(inner_end, start_us), end_us)]
    usage = Usage(conn)
    for edge_start, edge_end in edges:
        if edge_start < edge_end:
            for subject in who:
                _add_raw(usage, meter, subject, edge_start, edge_end, partials)
    return partials


def _add_raw(
    usage: Usage,
    meter: Meter,
    subject: str | None,
    start_us: int,
    end_us: int,
    partials: dict[str, Partial],
) -> None:
    events = usage.raw_events(meter.event_type, subject, start_us, end_us, meter.archived_seq)
    for event_subject, time_us, data_json, copies in events:
        try:
            value = meter.measure(json.loads(data_json, parse_float=Decimal))
        except EventNotMetered:
            continue
        partial = partials.get(event_subject)
        if partial is None:
            partial = partials[event_subject] = Partial()
        partial.add(value, time_us, copies)
