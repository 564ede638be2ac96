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
        self.starts = starts = [w.start_us for w in windows]
        ends = [w.end_us for w in windows]
        self.raw: list[tuple[int, int]] = []
        self.first_bucket = first_bucket = bucket_of(starts[0])
        last = -(-ends[-1] // BUCKET_US) * BUCKET_US
        self.bucket_window = bucket_window = [-1] * ((last - first_bucket) // BUCKET_US)
        for index, (start, end) in enumerate(zip(starts, ends, strict=True)):
            inner_start = -(-start // BUCKET_US) * BUCKET_US
            inner_end = max(end - end % BUCKET_US, inner_start)
            if start < inner_start or inner_end < end:  # an unaligned edge
                self._raw(start, min(inner_start, end))
                self._raw(max(inner_end, start), end)
            first = (inner_start - first_bucket) // BUCKET_US
            count = (inner_end - inner_start) // BUCKET_US
            bucket_window[first : first + count] = [index] * count

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


def _add_count(cell: Partial, row: tuple[Any, ...], at: int) -> None:
    cell.count += row[at]


def _add_total(cell: Partial, row: tuple[Any, ...], at: int) -> None:
    cell.total = EXACT.add(cell.total, Decimal(row[at]))


def _add_max(cell: Partial, row: tuple[Any, ...], at: int) -> None:
    if row[at] is not None:
        cell.offer_max(Decimal(row[at]))


def _add_latest(cell: Partial, row: tuple[Any, ...], at: int) -> None:
    if row[at] is not None:
        cell.offer_latest(row[at], Decimal(row[at + 1]))


def _add_distinct(cell: Partial, row: tuple[Any, ...], at: int) -> None:
    cell.distinct.add(row[at])


# The rollup columns each aggregation needs, and how a cell takes them in.
READERS: dict[Aggregation, tuple[str, Callable[[Partial, tuple[Any, ...], int], None]]] = {
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

    def add_rows(
        self,
        aggregation: Aggregation,
        rows: list[tuple[Any, ...]],
        subject: str | None = None,
        by_group: bool = True,
    ) -> None:
        """Rows as storage returns them: ([subject,] bucket_us, [group_key,] *columns), the
        subject unless the query is for one (`subject`), the group key when `by_group`."""
        add = READERS[aggregation][1]
        windows, first, size = (
            self.plan.bucket_window,
            self.plan.first_bucket,
            len(self.plan.windows),
        )
        if subject is not None and not by_group:
            # One customer, no split: one row of cells (the common question, thousands of
            # rows a month, so this loop does nothing it can leave out).
            if not rows:
                return
            key = (subject, self._group("{}"))
            by_window = self.cells.setdefault(key, [None] * size)
            for row in rows:
                index = windows[(row[0] - first) // BUCKET_US]
                if index >= 0:
                    cell = by_window[index]
                    if cell is None:
                        cell = by_window[index] = Partial()
                    add(cell, row, 1)
            return
        at_bucket = 0 if subject is not None else 1
        at_value = at_bucket + 1 + by_group
        for row in rows:
            index = windows[(row[at_bucket] - first) // BUCKET_US]
            if index >= 0:
                group = self._group(row[at_bucket + 1] if by_group else "{}")
                who = subject if subject is not None else row[0]
                add(self.cell((who, group), index), row, at_value)

    def add_event(
        self, subject: str, group: Group, time_us: int, value: Decimal | str, copies: int = 1
    ) -> None:
        wanted = dict(group)
        key = (subject, tuple((name, wanted.get(name)) for name in self.group_by))
        self.cell(key, self.plan.window_of_instant(time_us)).add(value, time_us, copies)

    def _group(self, group_key: str) -> Group:
        found = self._groups.get(group_key)
        if found is None:
            group = json.loads(group_key)
            found = self._groups[group_key] = tuple((n, group.get(n)) for n in self.group_by)
        return found
