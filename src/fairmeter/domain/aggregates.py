"""Partial aggregates that merge: the same arithmetic for rollups, queries and checks."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from decimal import Decimal

from fairmeter.domain.meters import Aggregation
from fairmeter.domain.numbers import EXACT


@dataclass
class Partial:
    """What a set of events adds up to; merging two partials equals aggregating both sets."""

    count: int = 0
    total: Decimal = Decimal(0)
    maximum: Decimal | None = None
    latest_us: int | None = None
    latest: Decimal | None = None
    distinct: set[str] = field(default_factory=set)

    def add(self, value: Decimal | str, time_us: int, copies: int = 1) -> None:
        """One event, or `copies` identical ones (a stored run)."""
        self.count += copies
        if isinstance(value, str):
            self.distinct.add(value)
            return
        self.total = EXACT.add(
            self.total, value if copies == 1 else EXACT.multiply(value, Decimal(copies))
        )
        self.offer_max(value)
        self.offer_latest(time_us, value)

    def merge(self, other: Partial) -> None:
        self.count += other.count
        self.total = EXACT.add(self.total, other.total)
        if other.maximum is not None:
            self.offer_max(other.maximum)
        if other.latest_us is not None and other.latest is not None:
            self.offer_latest(other.latest_us, other.latest)
        self.distinct |= other.distinct

    def offer_max(self, value: Decimal) -> None:
        if self.maximum is None or value > self.maximum:
            self.maximum = value

    def offer_latest(self, time_us: int, value: Decimal) -> None:
        if _is_later(time_us, value, self.latest_us, self.latest):
            self.latest_us, self.latest = time_us, value

    def value(self, aggregation: Aggregation) -> Decimal | None:
        if aggregation is Aggregation.COUNT:
            return Decimal(self.count)
        if aggregation is Aggregation.SUM:
            return self.total
        if aggregation is Aggregation.MAX:
            return self.maximum
        if aggregation is Aggregation.LATEST:
            return self.latest
        return Decimal(len(self.distinct))


def _is_later(time_us: int, value: Decimal, than_us: int | None, than: Decimal | None) -> bool:
    # Ties on time keep the larger value so that merging is order-independent.
    if than_us is None or than is None:
        return True
    return time_us > than_us or (time_us == than_us and value > than)


def aggregate(values: Iterable[tuple[Decimal | str, int]]) -> Partial:
    partial = Partial()
    for value, time_us in values:
        partial.add(value, time_us)
    return partial
