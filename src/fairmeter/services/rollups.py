"""Turning metered events into rollup rows: shared by ingest and meter backfill."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from decimal import Decimal

from fairmeter.domain.aggregates import Partial
from fairmeter.domain.meters import Aggregation, Meter
from fairmeter.domain.numbers import EXACT, format_optional, format_quantity
from fairmeter.domain.windows import BUCKET_US
from fairmeter.storage.usage import DistinctRow, RollupRow, Usage

Group = tuple[tuple[str, str | None], ...]
# (subject, meter, time_us, value, group, origin): the shape of hooks.Recorded.
Contribution = tuple[str, Meter, int, "Decimal | str", Group, object]


def group_key(group: Group) -> str:
    return json.dumps(dict(group), sort_keys=True, separators=(",", ":")) if group else "{}"


class RollupBatch:
    """Accumulates one transaction's contributions, then writes them in two statements."""

    def __init__(self) -> None:
        self.partials: dict[tuple[int, str, int, str], Partial] = {}
        self.distinct: set[DistinctRow] = set()
        self._group_keys: dict[Group, str] = {}

    def add_recorded(self, items: Iterable[Contribution], times: int = 1) -> None:
        """Add each contribution (a `hooks.Recorded`, whose origin is not read here), in one
        loop: ingest calls it for every event. `times`: that many events made each of them
        (a run of events that differ only by id).

        Only what the meter's aggregation reads back is kept (see usage_tally.READERS):
        the hot path skips the arithmetic nobody will ask for."""
        partials = self.partials
        group_keys = self._group_keys
        # Looked up once: an Enum member costs several plain attribute lookups on 3.11.
        counting, summing, maximizing = Aggregation.COUNT, Aggregation.SUM, Aggregation.MAX
        for subject, meter, time_us, value, group, _origin in items:
            key_text = group_keys.get(group)
            if key_text is None:
                key_text = group_keys[group] = group_key(group)
            slot = (meter.id, subject, time_us - time_us % BUCKET_US, key_text)  # bucket_of
            partial = partials.get(slot)
            if partial is None:
                partial = partials[slot] = Partial()
            partial.count += times
            aggregation = meter.aggregation
            if aggregation is counting:
                continue
            if isinstance(value, str):
                self.distinct.add((meter.id, subject, slot[2], key_text, value))
            elif aggregation is summing:
                if times != 1:
                    value = EXACT.multiply(value, Decimal(times))
                partial.total = EXACT.add(partial.total, value)
            elif aggregation is maximizing:
                partial.offer_max(value)
            else:
                partial.offer_latest(time_us, value)

    def merge(self, other: RollupBatch) -> None:
        """Add `other` in; `other` is left as it was (a failed transaction retries it)."""
        for slot, partial in other.partials.items():
            mine = self.partials.get(slot)
            if mine is None:
                mine = self.partials[slot] = Partial()
            mine.merge(partial)
        self.distinct |= other.distinct

    def add_event(
        self,
        meter: Meter,
        subject: str,
        time_us: int,
        data: Mapping[str, object],
        copies: int = 1,
    ) -> None:
        """A stored event's contribution, `copies` times (a row standing for a run)."""
        contribution = (subject, meter, time_us, meter.measure(data), meter.group_of(data), None)
        self.add_recorded((contribution,), times=copies)

    def write(self, usage: Usage) -> None:
        rows: list[RollupRow] = []
        for (meter_id, subject, bucket, key_text), p in self.partials.items():
            rows.append(
                (
                    meter_id,
                    subject,
                    bucket,
                    key_text,
                    p.count,
                    format_quantity(p.total),
                    format_optional(p.maximum),
                    p.latest_us,
                    format_optional(p.latest),
                )
            )
        usage.add_rollups(rows)
        usage.add_distinct(list(self.distinct))
