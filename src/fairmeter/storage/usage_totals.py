"""Usage totals per customer over whole rollup buckets: what billing asks, for many at once.

A billing run needs one number per (customer, meter, period), not a series of windows, so
the database adds the buckets up (GROUP BY subject). SQLite has no exact decimal type:
its totals are decimal text, added by exact aggregate functions registered here."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from sqlalchemy.engine import Connection

from fairmeter.domain.aggregates import Partial
from fairmeter.domain.meters import Aggregation, Meter
from fairmeter.domain.numbers import EXACT


class _DecSum:
    """Exact sum of decimal text; whole numbers (most totals) take a fast integer path."""

    def __init__(self) -> None:
        self.whole = 0
        self.total = Decimal(0)

    def step(self, value: str | int | None) -> None:
        if isinstance(value, int):
            self.whole += value
        elif value is not None:
            if value.isdigit():
                self.whole += int(value)
            else:
                self.total = EXACT.add(self.total, Decimal(value))

    def finalize(self) -> str:
        return str(EXACT.add(self.total, Decimal(self.whole)))


class _DecMax:
    def __init__(self) -> None:
        self.best: Decimal | None = None

    def step(self, value: str | None) -> None:
        if value is not None and (self.best is None or Decimal(value) > self.best):
            self.best = Decimal(value)

    def finalize(self) -> str | None:
        return None if self.best is None else str(self.best)


# The SELECT list per aggregation (after subject and the event count).
_COLUMNS = {
    "postgresql": {Aggregation.SUM: ", SUM(total)", Aggregation.MAX: ", MAX(maximum)"},
    "sqlite": {Aggregation.SUM: ", fm_dec_sum(total)", Aggregation.MAX: ", fm_dec_max(maximum)"},
}


class UsageTotals:
    def __init__(self, conn: Connection):
        self.conn = conn
        self.dialect = conn.dialect.name
        self.mark = "%s" if self.dialect == "postgresql" else "?"

    def _cursor(self) -> Any:
        raw = self.conn.connection.dbapi_connection
        assert raw is not None
        if self.dialect == "sqlite":
            raw.create_aggregate("fm_dec_sum", 1, _DecSum)
            raw.create_aggregate("fm_dec_max", 1, _DecMax)
        return raw.cursor()

    def _fetch(self, sql: str, params: list[object]) -> list[tuple[Any, ...]]:
        cursor = self._cursor()
        try:
            cursor.execute(sql, params)
            return list(cursor.fetchall())
        finally:
            cursor.close()

    def bucket_totals(
        self, meter: Meter, subjects: tuple[str, str], start_us: int, end_us: int
    ) -> dict[str, Partial]:
        """Per subject from `subjects[0]` to `subjects[1]` (inclusive; one customer when
        both are the same), the rollups of buckets in [start, end). Rollups are keyed by
        (meter, subject, bucket): a range of subjects is one contiguous read."""
        m = self.mark
        where = (
            f"meter_id = {m} AND subject >= {m} AND subject <= {m}"
            f" AND bucket_us >= {m} AND bucket_us < {m}"
        )
        params: list[object] = [meter.id, subjects[0], subjects[1], start_us, end_us]
        aggregation = meter.aggregation
        if aggregation is Aggregation.LATEST:
            return self._latest(where, params)
        extra = _COLUMNS[self.dialect].get(aggregation, "")
        sql = f"SELECT subject, SUM(count){extra} FROM usage_rollups WHERE {where} GROUP BY subject"
        found: dict[str, Partial] = {}
        for row in self._fetch(sql, params):
            partial = found[row[0]] = Partial(count=int(row[1]))
            if aggregation is Aggregation.SUM and row[2] is not None:
                partial.total = Decimal(row[2])
            elif aggregation is Aggregation.MAX and row[2] is not None:
                partial.maximum = Decimal(row[2])
        if aggregation is Aggregation.UNIQUE_COUNT:
            self._distinct(where, params, found)
        return found

    def _latest(self, where: str, params: list[object]) -> dict[str, Partial]:
        sql = f"SELECT subject, count, latest_us, latest FROM usage_rollups WHERE {where}"
        found: dict[str, Partial] = {}
        for subject, count, latest_us, latest in self._fetch(sql, params):
            partial = found.get(subject)
            if partial is None:
                partial = found[subject] = Partial()
            partial.count += int(count)
            if latest_us is not None and latest is not None:
                partial.offer_latest(latest_us, Decimal(latest))
        return found

    def _distinct(self, where: str, params: list[object], found: dict[str, Partial]) -> None:
        sql = f"SELECT DISTINCT subject, value FROM usage_distinct WHERE {where}"
        for subject, value in self._fetch(sql, params):
            partial = found.get(subject)
            if partial is None:
                partial = found[subject] = Partial()
            partial.distinct.add(value)
