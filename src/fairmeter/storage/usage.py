"""Events and their rollups: writing a batch, and reading usage back."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal

from sqlalchemy import select
from sqlalchemy.engine import Connection

from fairmeter.storage import dialect
from fairmeter.storage.dialect import EventRow
from fairmeter.storage.tables import events, usage_distinct, usage_rollups

RollupRow = tuple[int, str, int, str, int, str, str | None, int | None, str | None]
DistinctRow = tuple[int, str, int, str, str]


@dataclass(frozen=True, slots=True)
class StoredRollup:
    subject: str
    bucket_us: int
    group_key: str
    count: int
    total: Decimal
    maximum: Decimal | None
    latest_us: int | None
    latest: Decimal | None


class Usage:
    def __init__(self, conn: Connection):
        self.conn = conn
        self.dialect = conn.dialect.name

    # --- writes -------------------------------------------------------------------------
    def stored_digests(self, keys: list[tuple[str, str]]) -> dict[tuple[str, str], bytes]:
        return dialect.find_identities(self.conn, keys) if keys else {}

    def insert_events(self, rows: list[EventRow]) -> set[tuple[str, str]]:
        return dialect.insert_events(self.conn, rows)

    def add_rollups(self, rows: list[RollupRow]) -> None:
        # Sorted so that concurrent PostgreSQL writers lock rollup rows in one order.
        dialect.upsert_rollups(self.conn, sorted(rows))

    def add_distinct(self, rows: list[DistinctRow]) -> None:
        dialect.insert_distinct(self.conn, sorted(rows))

    # --- reads --------------------------------------------------------------------------
    def rollups(
        self, meter_id: int, subject: str | None, start_us: int, end_us: int
    ) -> list[StoredRollup]:
        r = usage_rollups.c
        query = select(
            r.subject, r.bucket_us, r.group_key, r.count, r.total, r.maximum, r.latest_us, r.latest
        ).where(r.meter_id == meter_id, r.bucket_us >= start_us, r.bucket_us < end_us)
        if subject is not None:
            query = query.where(r.subject == subject)
        return [
            StoredRollup(
                row[0], row[1], row[2], row[3], Decimal(row[4]), _dec(row[5]), row[6], _dec(row[7])
            )
            for row in self.conn.execute(query)
        ]

    def distinct_values(
        self, meter_id: int, subject: str | None, start_us: int, end_us: int
    ) -> list[tuple[str, int, str, str]]:
        d = usage_distinct.c
        query = select(d.subject, d.bucket_us, d.group_key, d.value).where(
            d.meter_id == meter_id, d.bucket_us >= start_us, d.bucket_us < end_us
        )
        if subject is not None:
            query = query.where(d.subject == subject)
        return [(row[0], row[1], row[2], row[3]) for row in self.conn.execute(query)]

    def raw_events(
        self,
        event_type: str,
        subject: str | None,
        start_us: int,
        end_us: int,
        up_to_seq: int | None = None,
    ) -> Iterator[tuple[str, int, str]]:
        """(subject, time_us, data JSON) of stored events, streamed in batches."""
        e = events.c
        query = select(e.subject, e.time_us, e.data).where(
            e.type == event_type, e.time_us >= start_us, e.time_us < end_us
        )
        if subject is not None:
            query = query.where(e.subject == subject)
        if up_to_seq is not None:
            query = query.where(e.seq <= up_to_seq)
        result = self.conn.execution_options(yield_per=5000).execute(query)
        for row in result:
            yield row[0], row[1], row[2]

    def all_raw_events(self, event_type: str) -> Iterator[tuple[str, int, str]]:
        e = events.c
        query = select(e.subject, e.time_us, e.data).where(e.type == event_type)
        result = self.conn.execution_options(yield_per=5000).execute(query)
        for row in result:
            yield row[0], row[1], row[2]


def _dec(value: str | Decimal | None) -> Decimal | None:
    return None if value is None else Decimal(value)
