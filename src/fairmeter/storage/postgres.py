"""PostgreSQL fast paths for the ingest transaction: COPY and array parameters.

Per-row statements cost a round trip and a plan each; a batch goes in as one COPY into a
session-local staging table and one INSERT ... SELECT. Binary formats (`%b`, COPY BINARY)
skip psycopg's per-element text quoting."""

from __future__ import annotations

from operator import itemgetter
from typing import Any

_ID = itemgetter(1)
_COLUMNS = "source, id, type, subject, time_us, received_us, data, digest"
_TYPES = ["text", "text", "text", "text", "int8", "int8", "text", "bytea"]
_STAGING = """
CREATE TEMPORARY TABLE IF NOT EXISTS events_in (
  source text, id text, type text, subject text, time_us bigint, received_us bigint,
  data text, digest bytea
) ON COMMIT DELETE ROWS
"""

_ROLLUPS = """
INSERT INTO usage_rollups AS r
  (meter_id, subject, bucket_us, group_key, count, total, maximum, latest_us, latest)
SELECT * FROM unnest(%b::int[], %b::text[], %b::bigint[], %b::text[], %b::bigint[],
                     %b::text[]::numeric[], %b::text[]::numeric[], %b::bigint[],
                     %b::text[]::numeric[])
ON CONFLICT (meter_id, subject, bucket_us, group_key) DO UPDATE SET
  count = r.count + excluded.count,
  total = r.total + excluded.total,
  maximum = GREATEST(r.maximum, excluded.maximum),
  latest = CASE WHEN r.latest_us IS NULL OR excluded.latest_us > r.latest_us THEN excluded.latest
                WHEN excluded.latest_us = r.latest_us THEN GREATEST(r.latest, excluded.latest)
                ELSE r.latest END,
  latest_us = CASE WHEN r.latest_us IS NULL OR excluded.latest_us > r.latest_us
                THEN excluded.latest_us ELSE r.latest_us END
"""

_DISTINCT = """
INSERT INTO usage_distinct (meter_id, subject, bucket_us, group_key, value)
SELECT * FROM unnest(%b::int[], %b::text[], %b::bigint[], %b::text[], %b::text[])
ON CONFLICT DO NOTHING
"""


# One probe of the hash index on id (migration 0008) per identity, whatever the statistics
# say. As a plain join, a table of a few hundred thousand rows made the planner hash all of
# `events` for 1,000 keys (27 ms instead of 2); the LIMIT keeps the subquery from being
# pulled up into a join ((source, id) is unique: it changes no answer). Comparing the
# source byte for byte (COLLATE "C", the same answer for equality) keeps the planner off
# the (source, id) b-tree, whose probe reads three pages where the hash reads one.
_PROBE = """CROSS JOIN LATERAL (
  SELECT s.digest FROM events s WHERE s.id = k.id AND s.source = k.source COLLATE "C" LIMIT 1
) AS e"""
_COUNT_STORED = f"""
SELECT count(e.digest), count(*) FILTER (WHERE e.digest = k.digest)
FROM unnest(%b::text[], %b::text[], %b::bytea[]) AS k(source, id, digest)
{_PROBE}
"""
_FIND_IDENTITIES = f"""
SELECT k.source, k.id, e.digest FROM unnest(%b::text[], %b::text[]) AS k(source, id)
{_PROBE}
"""


def insert_events(cursor: Any, rows: list[tuple[Any, ...]]) -> set[tuple[str, str]]:
    """COPY into the staging table, then move the rows whose identity is new.

    Rows go in identity order, so that concurrent batches that overlap wait on each other's
    rows in one order instead of deadlocking; RETURNING tells which rows this one won."""
    # Every time, not once per connection: a rolled-back transaction takes the table with it.
    cursor.execute(_STAGING)
    with cursor.copy(f"COPY events_in ({_COLUMNS}) FROM STDIN (FORMAT BINARY)") as copy:
        copy.set_types(_TYPES)
        for row in rows:
            copy.write_row(row)
    cursor.execute(
        f"INSERT INTO events ({_COLUMNS}) SELECT {_COLUMNS} FROM events_in"
        " ORDER BY source, id ON CONFLICT (source, id) DO NOTHING RETURNING source, id"
    )
    # The staging rows vanish at commit (ON COMMIT DELETE ROWS): one batch per transaction.
    return {(s, i) for s, i in cursor.fetchall()}


def upsert_rollups(cursor: Any, rows: list[tuple[Any, ...]]) -> None:
    cursor.execute(_ROLLUPS, [list(c) for c in zip(*rows, strict=True)])


def insert_distinct(cursor: Any, rows: list[tuple[Any, ...]]) -> None:
    cursor.execute(_DISTINCT, [list(c) for c in zip(*rows, strict=True)])


def count_stored(cursor: Any, keys: list[tuple[str, str, bytes]]) -> tuple[int, int]:
    # Probed in id order, the identity index is walked forwards and each page is read once:
    # a third less work than random ids in the order sent. (SQLite, all in its page cache,
    # gains nothing from it.)
    sources, ids, digests = zip(*sorted(keys, key=_ID), strict=True)
    cursor.execute(_COUNT_STORED, [list(sources), list(ids), list(digests)])
    stored, same = cursor.fetchone()
    return int(stored), int(same)


def find_identities(cursor: Any, keys: list[tuple[str, str]]) -> dict[tuple[str, str], bytes]:
    sources, ids = zip(*keys, strict=True)
    cursor.execute(_FIND_IDENTITIES, [list(sources), list(ids)])
    return {(source, id_): bytes(digest) for source, id_, digest in cursor.fetchall()}
