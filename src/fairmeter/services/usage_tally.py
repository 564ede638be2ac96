"""Adding rollup cells and raw events up into windows, per customer and group."""

from __future__ import annotations

import json
from bisect import bisect_right
from collections.abc import Callable, Sequence
from decimal import Decimal
from typing import Any

from fairmeter.domain.aggregates import Partial
from fairmeter.domain.meters import Aggregation
from fairmeter.domain.numbers import EXACT
from fairmeter.domain.windows import BUCKET_US, Span, bucket_of

Group = tuple[tuple[str, str | None], ...]
RowKey = tuple[str, Group]


class WindowPlan:
    """Which 15-minute buckets fall wholly inside which window; the rest of each window
    (unaligned edges) is read from raw events."""

    def __init__(self, windows: Sequence[Span]):
        self.windows = windows
        self.starts = [w.start_us for w in windows]
        self.raw: list[tuple[int, int]] = []
        self.first_bucket = bucket_of(windows[0].start_us)
        last = -(-windows[-1].end_us // BUCKET_US) * BUCKET_US
        self.bucket_window = [-1] * ((last - self.first_bucket) // BUCKET_US)
        for index, w in enumerate(windows):
            inner_start = -(-w.start_us // BUCKET_US) * BUCKET_US
            inner_end = max(bucket_of(w.end_us), inner_start)
            self._raw(w.start_us, min(inner_start, w.end_us))
            self._raw(max(inner_end, w.start_us), w.end_us)
            first = (inner_start - self.first_bucket) // BUCKET_US
            for slot in range(first, first + (inner_end - inner_start) // BUCKET_US):
                self.bucket_window[slot] = index

    def _raw(self, start: int, end: int) -> None:
        if start >= end:
            return
        if self.raw and self.raw[-1][1] == start:
            self.raw[-1] = (self.raw[-1][0], end)
        else:
            self.raw.append((start, end))

    def bucket_range(self) -> tuple[int, int]:
        return self.first_bucket, self.first_bucket + len(self.bucket_window) * BUCKET_US

    def window_of_instant(self, time_us: int) -> int:
        return bisect_right(self.starts, time_us) - 1


def _add_count(cell: Partial, row: tuple[Any, ...]) -> None:
    cell.count += row[3]


def _add_total(cell: Partial, row: tuple[Any, ...]) -> None:
    cell.total = EXACT.add(cell.total, Decimal(row[3]))


def _add_max(cell: Partial, row: tuple[Any, ...]) -> None:
    if row[3] is not None:
        cell.offer_max(Decimal(row[3]))


def _add_latest(cell: Partial, row: tuple[Any, ...]) -> None:
    if row[3] is not None:
        cell.offer_latest(row[3], Decimal(row[4]))


def _add_distinct(cell: Partial, row: tuple[Any, ...]) -> None:
    cell.distinct.add(row[3])


# The rollup columns each aggregation needs, and how a cell takes them in.
READERS: dict[Aggregation, tuple[str, Callable[[Partial, tuple[Any, ...]], None]]] = {
    Aggregation.COUNT: ("count", _add_count),
    Aggregation.SUM: ("total", _add_total),
    Aggregation.MAX: ("maximum", _add_max),
    Aggregation.LATEST: ("latest_us, latest", _add_latest),
    Aggregation.UNIQUE_COUNT: ("value", _add_distinct),
}


class Tally:
    """Partials per (customer, group) and window index."""

    def __init__(self, plan: WindowPlan, group_by: tuple[str, ...]):
        self.plan = plan
        self.group_by = group_by
        self.cells: dict[RowKey, list[Partial | None]] = {}
        self._groups: dict[str, Group] = {}

    def cell(self, key: RowKey, index: int) -> Partial:
        cells = self.cells.get(key)
        if cells is None:
            cells = self.cells[key] = [None] * len(self.plan.windows)
        found = cells[index]
        if found is None:
            found = cells[index] = Partial()
        return found

    def add_rows(self, aggregation: Aggregation, rows: list[tuple[Any, ...]]) -> None:
        """Rows of (subject, bucket_us, group_key, *columns), as storage returns them."""
        add = READERS[aggregation][1]
        windows, first = self.plan.bucket_window, self.plan.first_bucket
        for row in rows:
            index = windows[(row[1] - first) // BUCKET_US]
            if index >= 0:
                add(self.cell((row[0], self._group(row[2])), index), row)

    def add_event(self, subject: str, group: Group, time_us: int, value: Decimal | str) -> None:
        wanted = dict(group)
        key = (subject, tuple((name, wanted.get(name)) for name in self.group_by))
        self.cell(key, self.plan.window_of_instant(time_us)).add(value, time_us)

    def _group(self, group_key: str) -> Group:
        found = self._groups.get(group_key)
        if found is None:
            group = json.loads(group_key)
            found = self._groups[group_key] = tuple((n, group.get(n)) for n in self.group_by)
        return found
