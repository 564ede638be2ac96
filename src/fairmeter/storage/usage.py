"""Events and their rollups: writing a batch, and reading usage back."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from sqlalchemy import Select, select
from sqlalchemy.engine import Connection

from fairmeter.storage import dialect
from fairmeter.storage.dialect import EventRow
from fairmeter.storage.tables import events, usage_distinct

RollupRow = tuple[int, str, int, str, int, str, str | None, int | None, str | None]
DistinctRow = tuple[int, str, int, str, str]
# (subject, time_us, data JSON, copies): a stored row, which stands for `copies` events.
RawEvent = tuple[str, int, str, int]


class Usage:
    def __init__(self, conn: Connection):
        self.conn = conn
        self.dialect = conn.dialect.name

    # --- writes -------------------------------------------------------------------------
    def stored_digests(self, keys: list[tuple[str, str]]) -> dict[tuple[str, str], bytes]:
        return dialect.find_identities(self.conn, keys) if keys else {}

    def active_meter_rows(self) -> tuple[tuple[object, ...], ...]:
        """Every column of the active meters, by id: tells whether meters read before are
        still the ones in force (ingest compares it on every transaction, so it is raw SQL)."""
        cursor = self.conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
        try:
            cursor.execute(
                "SELECT id, key, name, event_type, aggregation, value_property, group_by, unit,"
                " archived_us, archived_seq FROM meters WHERE archived_us IS NULL ORDER BY id"
            )
            return tuple(tuple(row) for row in cursor.fetchall())
        finally:
            cursor.close()

    def count_stored(self, keys: list[tuple[str, str, bytes]]) -> tuple[int, int]:
        """(stored, stored with the same digest) among these (source, id, digest)."""
        return dialect.count_stored(self.conn, keys) if keys else (0, 0)

    def insert_events(self, rows: list[EventRow]) -> set[tuple[str, str]] | None:
        """The identities written, or None when every row was."""
        return dialect.insert_events(self.conn, rows)

    def insert_run(self, row: EventRow, count: int) -> int:
        """`count` events like `row` but for their ids (`id`, `id:2`, ...), as one row
        (ADR 13); how many were written: `count`, or 0 if the run was stored already."""
        return dialect.insert_run(self.conn, row, count)

    def add_rollups(self, rows: list[RollupRow]) -> None:
        # Sorted so that concurrent PostgreSQL writers lock rollup rows in one order.
        dialect.upsert_rollups(self.conn, sorted(rows))

    def add_distinct(self, rows: list[DistinctRow]) -> None:
        dialect.insert_distinct(self.conn, sorted(rows))

    # --- reads --------------------------------------------------------------------------
    def rollup_cells(
        self,
        meter_id: int,
        subject: str | None,
        start_us: int,
        end_us: int,
        columns: str,
        by_group: bool = True,
    ) -> list[tuple[Any, ...]]:
        """([subject,] bucket_us, [group_key,] *columns) of the rollups in [start, end):
        the subject only when not filtering on one, the group key only when `by_group`.

        Read through the driver's cursor, leaving out what the caller does not need: a
        customer-month is thousands of rows, and each column read costs per row."""
        mark = "%s" if self.dialect == "postgresql" else "?"
        keys = ("subject, " if subject is None else "") + "bucket_us, "
        keys += "group_key, " if by_group else ""
        sql = (
            f"SELECT {keys}{columns} FROM usage_rollups"
            f" WHERE meter_id = {mark} AND bucket_us >= {mark} AND bucket_us < {mark}"
        )
        params: list[object] = [meter_id, start_us, end_us]
        if subject is not None:
            sql += f" AND subject = {mark}"
            params = [*params, subject]
        cursor = self.conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
        try:
            cursor.execute(sql, params)
            return list(cursor.fetchall())
        finally:
            cursor.close()

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
    ) -> Iterator[RawEvent]:
        """(subject, time_us, data JSON, copies) of stored events, streamed in batches:
        a row may stand for `copies` identical events (a count meter's run, ADR 13)."""
        e = events.c
        query = select(e.subject, e.time_us, e.data, e.copies).where(
            e.type == event_type, e.time_us >= start_us, e.time_us < end_us
        )
        if subject is not None:
            query = query.where(e.subject == subject)
        if up_to_seq is not None:
            query = query.where(e.seq <= up_to_seq)
        yield from _stream(self.conn, query)

    def all_raw_events(self, event_type: str) -> Iterator[RawEvent]:
        e = events.c
        query = select(e.subject, e.time_us, e.data, e.copies).where(e.type == event_type)
        yield from _stream(self.conn, query)


def _stream(conn: Connection, query: Select[Any]) -> Iterator[RawEvent]:
    # Closed even when the caller stops early or raises: an open server-side cursor would
    # outlive the transaction on PostgreSQL.
    result = conn.execution_options(yield_per=5000).execute(query)
    try:
        for row in result:
            yield row[0], row[1], row[2], row[3]
    finally:
        result.close()
