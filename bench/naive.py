"""The ceiling the server is compared with: the same rows through a bare insert loop.

No server, no parsing, no dedupe lookup, no rollups: executemany (or COPY) of prepared rows,
one commit per batch, with the server's durability (SQLite: WAL + synchronous=FULL)."""

from __future__ import annotations

import sqlite3
import tempfile
import time

import psycopg

from common import libpq_url

Row = tuple[str, str, str, str, int, int, str, bytes]
COLUMNS = "source, id, type, subject, time_us, received_us, data, digest"
ROW_COLUMNS = """source TEXT NOT NULL, id TEXT NOT NULL, type TEXT NOT NULL,
  subject TEXT NOT NULL, time_us BIGINT NOT NULL, received_us BIGINT NOT NULL,
  data TEXT NOT NULL, digest {blob} NOT NULL"""


def naive_table(name: str, backend: str, indexed: bool) -> list[str]:
    """The bare table of the brief, or (indexed) one shaped like the server's events table:
    an arrival-order key, the unique identity and the (type, subject, time) index."""
    columns = ROW_COLUMNS.format(blob="BLOB" if backend == "sqlite" else "BYTEA")
    if not indexed:
        return [f"CREATE TABLE {name} ({columns}, PRIMARY KEY (source, id))"]
    seq = "seq INTEGER PRIMARY KEY" if backend == "sqlite" else "seq BIGSERIAL PRIMARY KEY"
    return [
        f"CREATE TABLE {name} ({seq}, {columns}, UNIQUE (source, id))",
        f"CREATE INDEX ix_{name} ON {name} (type, subject, time_us)",
    ]


def naive_sqlite(batches: list[list[Row]], indexed: bool = False) -> float:
    """Bare sqlite3 executemany, one commit per batch, WAL + synchronous=FULL like the server."""
    with tempfile.TemporaryDirectory(prefix="fm_naive_") as tmp:
        conn = sqlite3.connect(f"{tmp}/naive.db", isolation_level=None)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=FULL")
        for statement in naive_table("naive_events", "sqlite", indexed):
            conn.execute(statement)
        sql = f"INSERT INTO naive_events ({COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
        started = time.perf_counter()
        for rows in batches:
            conn.execute("BEGIN")
            conn.executemany(sql, rows)
            conn.execute("COMMIT")
        elapsed = time.perf_counter() - started
        conn.close()
    return elapsed


def naive_postgresql(
    url: str, batches: list[list[Row]], copy: bool = False, indexed: bool = False
) -> float:
    """psycopg executemany (or COPY), one commit per batch, into a table of its own."""
    table = f"naive_{'copy' if copy else 'many'}{'_indexed' if indexed else ''}"
    with psycopg.connect(libpq_url(url)) as conn:
        for statement in naive_table(table, "postgresql", indexed):
            conn.execute(statement)
        conn.commit()
        sql = f"INSERT INTO {table} ({COLUMNS}) VALUES (%s, %s, %s, %s, %s, %s, %s, %s)"
        started = time.perf_counter()
        for rows in batches:
            with conn.cursor() as cursor:
                if copy:
                    with cursor.copy(f"COPY {table} ({COLUMNS}) FROM STDIN") as stream:
                        for row in rows:
                            stream.write_row(row)
                else:
                    cursor.executemany(sql, rows)
            conn.commit()
        return time.perf_counter() - started
