"""The dedupe lookup: counts and digests of stored identities, on both backends, and on
PostgreSQL the plan it is written to get (one hash-index probe per identity)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from fairmeter.config import Settings
from fairmeter.services.clock import FixedClock
from fairmeter.services.runtime import Runtime
from fairmeter.storage import dialect, postgres
from fairmeter.storage.usage import Usage
from fairmeter.wiring import build

ROWS = [
    ("orders", f"id-{n}", "api.request", "acme", 1_000 + n, 2_000, "{}", bytes([n]) * 16)
    for n in range(40)
]


@pytest.fixture
def stored(runtime: Runtime) -> Runtime:
    with runtime.db.write() as conn:
        written = Usage(conn).insert_events(list(ROWS))
    # None means "every row" (SQLite's common case); PostgreSQL names what it wrote.
    assert written is None or written == {(row[0], row[1]) for row in ROWS}
    return runtime


def test_counts_and_digests_of_stored_identities(stored: Runtime) -> None:
    same = [(source, id_, digest) for source, id_, *_, digest in ROWS[:10]]
    changed = [(source, id_, b"\x00" * 16) for source, id_, *_ in ROWS[10:15]]
    # Same id under another source, and ids never stored: not counted.
    unknown = [("billing", "id-1", ROWS[1][7]), ("orders", "id-999", b"\x01" * 16)]
    with stored.db.read() as conn:
        usage = Usage(conn)
        assert usage.count_stored(same + changed + unknown) == (15, 10)
        assert usage.count_stored(unknown) == (0, 0)
        found = usage.stored_digests([(s, i) for s, i, _ in same[:3] + changed[:2] + unknown])
    assert found == {(row[0], row[1]): row[7] for row in ROWS[:3] + ROWS[10:12]}


@pytest.fixture
def pg_runtime(pg_url: str, clock: FixedClock) -> Iterator[Runtime]:
    rt = build(Settings(database_url=pg_url), clock=clock)
    yield rt
    rt.close()


@pytest.mark.postgres
def test_postgresql_probes_the_hash_index_whatever_the_statistics(pg_runtime: Runtime) -> None:
    rows = [("s", f"{n:08x}", "t", "acme", n, 0, "{}", b"\x00" * 16) for n in range(20_000)]
    with pg_runtime.db.write() as conn:
        Usage(conn).insert_events(rows)
    keys = [("s", f"{n:08x}", b"\x00" * 16) for n in range(0, 20_000, 5)]
    with pg_runtime.db.read() as conn:
        cursor = dialect._cursor(conn)
        for analyzed in (False, True):
            if analyzed:
                cursor.execute("ANALYZE events")
            sources, ids, digests = (list(column) for column in zip(*keys, strict=True))
            cursor.execute("EXPLAIN " + postgres._COUNT_STORED, [sources, ids, digests])
            plan = "\n".join(row[0] for row in cursor.fetchall())
            assert "ix_events_id_hash" in plan, plan
            assert "Seq Scan on events" not in plan, plan
