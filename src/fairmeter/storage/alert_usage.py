"""Many customers' usage at once, in two round trips: what an alert pass asks.

An alert pass needs a few numbers (one per customer, meter and span) for the customers that
just recorded usage. Asked one by one they cost a query each (rollups) plus one per
unaligned edge (raw events); on a busy server every query waits its turn for the
interpreter, so a pass of forty queries takes far longer than its work. Here the rollup
sums of every wanted span are one UNION ALL statement, and the raw events at unaligned
edges one statement per distinct edge and event type, for all the subjects at once.
Exactly what `billing_usage.measure_usage` answers, for count and sum meters that are not
archived (the callers send the others there)."""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterator, Sequence
from contextlib import suppress
from decimal import Decimal
from typing import NamedTuple

from sqlalchemy import select

from fairmeter.domain.aggregates import Partial
from fairmeter.domain.meters import Aggregation, EventNotMetered, Meter
from fairmeter.domain.numbers import EXACT
from fairmeter.domain.windows import BUCKET_US, bucket_of
from fairmeter.storage.tables import events
from fairmeter.storage.usage_totals import UsageTotals

BATCHABLE = (Aggregation.COUNT, Aggregation.SUM)
Read = tuple[str, Meter, int, int]  # subject, meter, start_us, end_us
_SUM = {"postgresql": "SUM(total)", "sqlite": "fm_dec_sum(total)"}


class UsageBatch(UsageTotals):
    def read(self, reads: Sequence[Read], now_us: int | None = None) -> list[Partial]:
        """What each read adds up to, in order (count and sum meters, not archived).

        A span that starts inside a bucket (a period that began at 14:37) needs the raw
        events of that partial bucket. They are read on the cheaper side: the events from
        the start to the bucket's end, added, or the whole bucket's rollup less the events
        from the bucket's start to the span's start, whichever covers less time (up to
        `now_us`, past which no event is stored yet but future-dated ones). A new period
        thus reads no raw event at all however busy its first bucket, and a later one at
        most half a bucket's worth."""
        partials = [Partial() for _ in reads]
        heads = [_head(start_us, end_us, now_us) for _, _, start_us, end_us in reads]
        self._rollups(reads, heads, partials)
        self._edges(reads, heads, partials)
        return partials

    def _rollups(
        self, reads: Sequence[Read], heads: Sequence[_Head], partials: list[Partial]
    ) -> None:
        parts: list[str] = []
        params: list[object] = []
        m = self.mark
        for index, ((subject, meter, start_us, end_us), head) in enumerate(
            zip(reads, heads, strict=True)
        ):
            inner_start, inner_end = _inner(start_us, end_us)
            if head.subtract:
                inner_start = head.start_us
            if inner_start >= inner_end:
                continue
            parts.append(
                f"SELECT {index}, SUM(count), {_SUM[self.dialect]} FROM usage_rollups "
                f"WHERE meter_id = {m} AND subject = {m} AND bucket_us >= {m} AND bucket_us < {m}"
            )
            params += [meter.id, subject, inner_start, inner_end]
        for start in range(0, len(parts), 200):  # bounded statements, whatever the pass
            chunk = parts[start : start + 200]
            chunk_params = params[start * 4 : (start + len(chunk)) * 4]
            for index, count, total in self._fetch(" UNION ALL ".join(chunk), chunk_params):
                partial = partials[int(index)]
                partial.count += int(count or 0)
                if total is not None:
                    partial.total = Decimal(total)

    def _edges(
        self, reads: Sequence[Read], heads: Sequence[_Head], partials: list[Partial]
    ) -> None:
        # (event type, start, end, subtract) -> the reads that want those raw events
        wanted: dict[tuple[str, int, int, bool], list[int]] = defaultdict(list)
        for index, ((_, meter, start_us, end_us), head) in enumerate(
            zip(reads, heads, strict=True)
        ):
            inner_end = _inner(start_us, end_us)[1]
            if head.start_us < head.end_us:
                wanted[(meter.event_type, head.start_us, head.end_us, head.subtract)].append(index)
            tail = (max(inner_end, start_us), end_us)
            if tail[0] < tail[1]:
                wanted[(meter.event_type, *tail, False)].append(index)
        for (event_type, start_us, end_us, subtract), indexes in wanted.items():
            subjects = sorted({reads[i][0] for i in indexes})
            for subject, time_us, data in self._raw(event_type, start_us, end_us, subjects):
                for i in indexes:
                    if reads[i][0] == subject:
                        _add(partials[i], reads[i][1], data, time_us, subtract)

    def _raw(
        self, event_type: str, start_us: int, end_us: int, subjects: list[str]
    ) -> Iterator[tuple[str, int, object]]:
        e = events.c
        query = select(e.subject, e.time_us, e.data).where(
            e.type == event_type,
            e.time_us >= start_us,
            e.time_us < end_us,
            e.subject.in_(subjects),
        )
        for subject, time_us, data_json in self.conn.execute(query):
            yield subject, time_us, json.loads(data_json, parse_float=Decimal)


class _Head(NamedTuple):
    """The raw events a read takes at its start: [start_us, end_us), added or subtracted."""

    start_us: int
    end_us: int
    subtract: bool


def _head(start_us: int, end_us: int, now_us: int | None) -> _Head:
    inner_start, inner_end = _inner(start_us, end_us)
    edge_end = min(inner_start, end_us)
    if start_us % BUCKET_US == 0 or (inner_start >= inner_end and edge_end < inner_start):
        # Aligned, or the whole span inside one bucket: the raw events themselves.
        return _Head(start_us, edge_end, False)
    bucket_start = bucket_of(start_us)
    stored_until = edge_end if now_us is None else min(edge_end, now_us)
    if start_us - bucket_start < stored_until - start_us:
        return _Head(bucket_start, start_us, True)  # the bucket's rollup, less its head
    return _Head(start_us, edge_end, False)


def _inner(start_us: int, end_us: int) -> tuple[int, int]:
    """The whole buckets of [start, end): rollups answer them; raw events the rest."""
    inner_start = -(-start_us // BUCKET_US) * BUCKET_US
    return inner_start, max(bucket_of(end_us), inner_start)


def _add(partial: Partial, meter: Meter, data: object, time_us: int, subtract: bool) -> None:
    with suppress(EventNotMetered):  # an event without the meter's value counts nothing
        value = meter.measure(data)  # type: ignore[arg-type]
        if not subtract:
            partial.add(value, time_us)
        else:  # count and sum only: a total and a count can be taken back
            assert isinstance(value, Decimal)
            partial.count -= 1
            partial.total = EXACT.subtract(partial.total, value)
