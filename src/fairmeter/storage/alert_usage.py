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
from collections.abc import Sequence
from contextlib import suppress
from decimal import Decimal

from sqlalchemy import select

from fairmeter.domain.aggregates import Partial
from fairmeter.domain.meters import Aggregation, EventNotMetered, Meter
from fairmeter.domain.windows import BUCKET_US, bucket_of
from fairmeter.storage.tables import events
from fairmeter.storage.usage_totals import UsageTotals

BATCHABLE = (Aggregation.COUNT, Aggregation.SUM)
Read = tuple[str, Meter, int, int]  # subject, meter, start_us, end_us
_SUM = {"postgresql": "SUM(total)", "sqlite": "fm_dec_sum(total)"}


class UsageBatch(UsageTotals):
    def read(self, reads: Sequence[Read]) -> list[Partial]:
        """What each read adds up to, in order (count and sum meters, not archived)."""
        partials = [Partial() for _ in reads]
        self._rollups(reads, partials)
        self._edges(reads, partials)
        return partials

    def _rollups(self, reads: Sequence[Read], partials: list[Partial]) -> None:
        parts: list[str] = []
        params: list[object] = []
        m = self.mark
        for index, (subject, meter, start_us, end_us) in enumerate(reads):
            inner_start, inner_end = _inner(start_us, end_us)
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

    def _edges(self, reads: Sequence[Read], partials: list[Partial]) -> None:
        wanted: dict[tuple[str, int, int], list[int]] = defaultdict(list)
        for index, (_, meter, start_us, end_us) in enumerate(reads):
            inner_start, inner_end = _inner(start_us, end_us)
            for edge in ((start_us, min(inner_start, end_us)), (max(inner_end, start_us), end_us)):
                if edge[0] < edge[1]:
                    wanted[(meter.event_type, *edge)].append(index)
        e = events.c
        for (event_type, start_us, end_us), indexes in wanted.items():
            subjects = sorted({reads[i][0] for i in indexes})
            query = select(e.subject, e.time_us, e.data).where(
                e.type == event_type,
                e.time_us >= start_us,
                e.time_us < end_us,
                e.subject.in_(subjects),
            )
            for subject, time_us, data_json in self.conn.execute(query):
                data = json.loads(data_json, parse_float=Decimal)
                for i in indexes:
                    if reads[i][0] == subject:
                        _add(partials[i], reads[i][1], data, time_us)


def _inner(start_us: int, end_us: int) -> tuple[int, int]:
    """The whole buckets of [start, end): rollups answer them; raw events the rest."""
    inner_start = -(-start_us // BUCKET_US) * BUCKET_US
    return inner_start, max(bucket_of(end_us), inner_start)


def _add(partial: Partial, meter: Meter, data: object, time_us: int) -> None:
    with suppress(EventNotMetered):  # an event without the meter's value counts nothing
        partial.add(meter.measure(data), time_us)  # type: ignore[arg-type]
