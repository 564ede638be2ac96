"""Everything that differs between SQLite and PostgreSQL lives here."""

from __future__ import annotations

import sqlite3
from decimal import Decimal
from typing import Any

from sqlalchemy import Engine, event
from sqlalchemy.engine import Connection

from fairmeter.domain.numbers import EXACT


def install_sqlite_hooks(engine: Engine) -> None:
    """WAL with synchronous=FULL: an acknowledged event survives a crash or power loss.

    Transactions start with BEGIN IMMEDIATE so that a writer holds the lock from its first
    read: the dedupe check and the write are one serialized unit."""

    @event.listens_for(engine, "connect")
    def _connect(dbapi_conn: sqlite3.Connection, _record: Any) -> None:
        dbapi_conn.isolation_level = None
        cursor = dbapi_conn.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=FULL")
        cursor.execute("PRAGMA busy_timeout=60000")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA cache_size=-65536")
        cursor.close()
        dbapi_conn.create_function("dec_add", 2, _dec_add, deterministic=True)
        dbapi_conn.create_function("dec_max", 2, _dec_max, deterministic=True)

    @event.listens_for(engine, "begin")
    def _begin(conn: Connection) -> None:
        read_only = conn.get_execution_options().get("fairmeter_read_only", False)
        conn.exec_driver_sql("BEGIN" if read_only else "BEGIN IMMEDIATE")


def _dec_add(a: str | None, b: str | None) -> str | None:
    if a is None or b is None:
        return a if b is None else b
    return str(EXACT.add(Decimal(a), Decimal(b)))


def _dec_max(a: str | None, b: str | None) -> str | None:
    if a is None or b is None:
        return a if b is None else b
    return a if Decimal(a) >= Decimal(b) else b


_ROLLUP_UPSERT = """
INSERT INTO usage_rollups AS r
  (meter_id, subject, bucket_us, group_key, count, total, maximum, latest_us, latest)
VALUES ({params})
ON CONFLICT (meter_id, subject, bucket_us, group_key) DO UPDATE SET
  count = r.count + excluded.count,
  total = {add},
  maximum = {greatest}(r.maximum, excluded.maximum),
  latest = CASE WHEN r.latest_us IS NULL OR excluded.latest_us > r.latest_us THEN excluded.latest
                WHEN excluded.latest_us = r.latest_us THEN {greatest}(r.latest, excluded.latest)
                ELSE r.latest END,
  latest_us = CASE WHEN r.latest_us IS NULL OR excluded.latest_us > r.latest_us
                THEN excluded.latest_us ELSE r.latest_us END
"""

_EVENT_COLUMNS = "source, id, type, subject, time_us, received_us, data, digest"


def rollup_upsert_sql(dialect: str) -> str:
    if dialect == "postgresql":
        return _ROLLUP_UPSERT.format(
            params="%s, %s, %s, %s, %s, %s::numeric, %s::numeric, %s, %s::numeric",
            add="r.total + excluded.total",
            greatest="GREATEST",
        )
    return _ROLLUP_UPSERT.format(
        params="?, ?, ?, ?, ?, ?, ?, ?, ?",
        add="dec_add(r.total, excluded.total)",
        greatest="dec_max",
    )


def distinct_insert_sql(dialect: str) -> str:
    marks = "%s, %s, %s, %s, %s" if dialect == "postgresql" else "?, ?, ?, ?, ?"
    return (
        "INSERT INTO usage_distinct (meter_id, subject, bucket_us, group_key, value) "
        f"VALUES ({marks}) ON CONFLICT DO NOTHING"
    )


EventRow = tuple[str, str, str, str, int, int, str, bytes]


def insert_events(conn: Connection, rows: list[EventRow]) -> set[tuple[str, str]]:
    """Insert rows whose identity was not seen; returns the identities actually written.

    On SQLite the writer holds the database lock since BEGIN IMMEDIATE, so every row the
    caller found new is written. PostgreSQL writers run concurrently: ON CONFLICT decides
    and RETURNING tells which rows this transaction won."""
    if not rows:
        return set()
    cursor = conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
    try:
        if conn.dialect.name == "postgresql":
            # Identity order: concurrent batches that overlap then wait on each other's rows
            # in the same order instead of deadlocking.
            columns = list(zip(*sorted(rows), strict=True))
            cursor.execute(
                f"INSERT INTO events ({_EVENT_COLUMNS}) SELECT * FROM unnest("
                "%b::text[], %b::text[], %b::text[], %b::text[], %b::bigint[], %b::bigint[],"
                " %b::text[], %b::bytea[]) ON CONFLICT (source, id) DO NOTHING"
                " RETURNING source, id",
                # %b: binary arrays skip psycopg's per-element text quoting (most of the cost).
                [list(c) for c in columns],
            )
            return {(s, i) for s, i in cursor.fetchall()}
        cursor.executemany(
            f"INSERT INTO events ({_EVENT_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?)", rows
        )
        return {(r[0], r[1]) for r in rows}
    finally:
        cursor.close()


def find_identities(conn: Connection, keys: list[tuple[str, str]]) -> dict[tuple[str, str], bytes]:
    """The digests of the events already stored under these identities."""
    found: dict[tuple[str, str], bytes] = {}
    cursor = conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
    try:
        if conn.dialect.name == "postgresql":
            sources, ids = zip(*keys, strict=True) if keys else ((), ())
            cursor.execute(
                "SELECT e.source, e.id, e.digest FROM events e JOIN unnest(%b::text[], %b::text[])"
                " AS k(source, id) ON e.source = k.source AND e.id = k.id",
                [list(sources), list(ids)],
            )
            for source, id_, digest in cursor.fetchall():
                found[(source, id_)] = bytes(digest)
            return found
        for start in range(0, len(keys), 4000):
            chunk = keys[start : start + 4000]
            marks = ",".join(["(?,?)"] * len(chunk))
            flat = [part for key in chunk for part in key]
            # A join, not `(source, id) IN (VALUES ...)`: SQLite scans the table for the latter.
            cursor.execute(
                f"SELECT e.source, e.id, e.digest FROM (VALUES {marks}) AS k"
                " JOIN events AS e ON e.source = k.column1 AND e.id = k.column2",
                flat,
            )
            for source, id_, digest in cursor.fetchall():
                found[(source, id_)] = bytes(digest)
        return found
    finally:
        cursor.close()


def execute_many(conn: Connection, sql: str, rows: list[tuple[object, ...]]) -> None:
    if not rows:
        return
    cursor = conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
    try:
        cursor.executemany(sql, rows)
    finally:
        cursor.close()
