"""Everything that differs between SQLite and PostgreSQL lives here."""

from __future__ import annotations

import functools
import sqlite3
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import msgspec
from sqlalchemy import Engine, event
from sqlalchemy.engine import Connection

from fairmeter.domain.numbers import EXACT
from fairmeter.storage import postgres


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
        # Checkpoint every ~40 MB of WAL rather than 4 MB: index pages that random ids
        # scatter are then copied to the database once per many commits, not every time.
        cursor.execute("PRAGMA wal_autocheckpoint=10000")
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


# SQLite has no exact decimal type: totals are decimal text added by dec_add/dec_max.
_SQLITE_ROLLUPS = """
INSERT INTO usage_rollups AS r
  (meter_id, subject, bucket_us, group_key, count, total, maximum, latest_us, latest)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (meter_id, subject, bucket_us, group_key) DO UPDATE SET
  count = r.count + excluded.count,
  total = dec_add(r.total, excluded.total),
  maximum = dec_max(r.maximum, excluded.maximum),
  latest = CASE WHEN r.latest_us IS NULL OR excluded.latest_us > r.latest_us THEN excluded.latest
                WHEN excluded.latest_us = r.latest_us THEN dec_max(r.latest, excluded.latest)
                ELSE r.latest END,
  latest_us = CASE WHEN r.latest_us IS NULL OR excluded.latest_us > r.latest_us
                THEN excluded.latest_us ELSE r.latest_us END
"""
_SQLITE_DISTINCT = (
    "INSERT INTO usage_distinct (meter_id, subject, bucket_us, group_key, value) "
    "VALUES (?, ?, ?, ?, ?) ON CONFLICT DO NOTHING"
)
_EVENT_COLUMNS = "source, id, type, subject, time_us, received_us, data, digest"

EventRow = tuple[str, str, str, str, int, int, str, bytes]
_JSON_ROWS = msgspec.json.Decoder(list[tuple[str, str, str]])


# One multi-row INSERT per chunk rather than executemany: executemany gives the GIL up
# and takes it back around every row, and a writer competing with request threads for it
# then waits at each row (measured: 17 µs per event instead of 5 under four threads).
# 8 parameters a row stays under SQLite's 32,766-parameter limit.
_ROWS_PER_INSERT = 1000


@functools.lru_cache(maxsize=64)
def _sqlite_insert(rows: int) -> str:
    values = ",".join(["(?, ?, ?, ?, ?, ?, ?, ?)"] * rows)
    return (
        f"INSERT INTO events ({_EVENT_COLUMNS}) VALUES {values} ON CONFLICT (source, id) DO NOTHING"
    )


def _cursor(conn: Connection) -> Any:
    return conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]


def insert_events(conn: Connection, rows: list[EventRow]) -> set[tuple[str, str]] | None:
    """Insert rows whose identity was not seen; returns the identities actually written, or
    None when every row was (the common case, told without building a set).

    On SQLite the writer holds the database lock since BEGIN IMMEDIATE, so every row the
    caller found new is written. PostgreSQL writers run concurrently: ON CONFLICT decides
    which transaction stores an event (see postgres.py)."""
    if not rows:
        return set()
    cursor = _cursor(conn)
    try:
        if conn.dialect.name == "postgresql":
            return postgres.insert_events(cursor, rows)
        # The caller checked these identities before taking the lock; another writer may
        # have stored some since. Conflicts are skipped, and in the rare case the count
        # says some were, the rows past the sequence seen before tell which were written.
        before = cursor.execute("SELECT coalesce(max(seq), 0) FROM events").fetchone()[0]
        inserted = 0
        for start in range(0, len(rows), _ROWS_PER_INSERT):
            chunk = rows[start : start + _ROWS_PER_INSERT]
            cursor.execute(_sqlite_insert(len(chunk)), [v for row in chunk for v in row])
            inserted += cursor.rowcount
        if inserted == len(rows):
            return None
        cursor.execute("SELECT source, id FROM events WHERE seq > ?", (before,))
        return {(source, id_) for source, id_ in cursor.fetchall()}
    finally:
        cursor.close()


def insert_run(conn: Connection, row: EventRow, count: int) -> int:
    """Insert `count` events that differ only by id (a count meter's admitted calls,
    written in a batch) as one row: `row` with `copies` = count, standing for ids `id`,
    "<id>:2" .. "<id>:<count>" (ADR 13). Returns how many events were written: `count`,
    or 0 when the row's identity is stored already (skipped, as in `insert_events`)."""
    if count < 1:
        return 0
    cursor = _cursor(conn)
    try:
        cursor.execute(_INSERT_RUN[conn.dialect.name == "postgresql"], (*row, count))
        inserted: int = cursor.rowcount
        if inserted not in (0, 1):
            raise RuntimeError("the database did not say whether it inserted the run")
        return count * inserted
    finally:
        cursor.close()


# One row standing for the run: the event's columns, then `copies`; with the parameter
# marks of SQLite's driver, then psycopg's.
_RUN_VALUES = _EVENT_COLUMNS.count(",") + 2
_INSERT_RUN = tuple(
    f"INSERT INTO events ({_EVENT_COLUMNS}, copies) VALUES ({', '.join([mark] * _RUN_VALUES)})"
    " ON CONFLICT (source, id) DO NOTHING"
    for mark in ("?", "%s")
)


def count_stored(conn: Connection, keys: list[tuple[str, str, bytes]]) -> tuple[int, int]:
    """Of these (source, id, digest), how many are stored, and how many with that digest.

    Tells the two common cases apart in one step without sending anything back per event:
    none stored (new events) and all stored alike (a batch sent again)."""
    cursor = _cursor(conn)
    try:
        if conn.dialect.name == "postgresql":
            return postgres.count_stored(cursor, keys)
        stored = same = 0
        for start in range(0, len(keys), 4000):
            chunk = keys[start : start + 4000]
            cursor.execute(
                "SELECT count(*), count(*) FILTER (WHERE e.digest = k.column3)"
                f" FROM (VALUES {','.join(['(?,?,?)'] * len(chunk))}) AS k"
                " JOIN events AS e ON e.source = k.column1 AND e.id = k.column2",
                [part for key in chunk for part in key],
            )
            found, alike = cursor.fetchone()
            stored, same = stored + found, same + alike
        return stored, same
    finally:
        cursor.close()


def find_identities(conn: Connection, keys: list[tuple[str, str]]) -> dict[tuple[str, str], bytes]:
    """The digests of the events already stored under these identities."""
    cursor = _cursor(conn)
    try:
        if conn.dialect.name == "postgresql":
            return postgres.find_identities(cursor, keys)
        found: dict[tuple[str, str], bytes] = {}
        for start in range(0, len(keys), 4000):
            chunk = keys[start : start + 4000]
            marks = ",".join(["(?,?)"] * len(chunk))
            flat = [part for key in chunk for part in key]
            # A join, not `(source, id) IN (VALUES ...)`: SQLite scans the table for the latter.
            # The matches come back as one JSON value: fetching a row is a step of its own,
            # which gives the GIL up and waits to take it back from the busy request threads.
            cursor.execute(
                "SELECT json_group_array(json_array(e.source, e.id, hex(e.digest)))"
                f" FROM (VALUES {marks}) AS k"
                " JOIN events AS e ON e.source = k.column1 AND e.id = k.column2",
                flat,
            )
            for source, id_, digest in _JSON_ROWS.decode(cursor.fetchone()[0]):
                found[(source, id_)] = bytes.fromhex(digest)
        return found
    finally:
        cursor.close()


def upsert_rollups(conn: Connection, rows: list[tuple[object, ...]]) -> None:
    _write_many(conn, rows, postgres.upsert_rollups, _SQLITE_ROLLUPS)


def insert_distinct(conn: Connection, rows: list[tuple[object, ...]]) -> None:
    _write_many(conn, rows, postgres.insert_distinct, _SQLITE_DISTINCT)


def _write_many(
    conn: Connection,
    rows: list[tuple[object, ...]],
    postgres_way: Callable[[Any, list[tuple[object, ...]]], None],
    sqlite_sql: str,
) -> None:
    if not rows:
        return
    cursor = _cursor(conn)
    try:
        if conn.dialect.name == "postgresql":
            postgres_way(cursor, rows)
        else:
            cursor.executemany(sqlite_sql, rows)
    finally:
        cursor.close()
