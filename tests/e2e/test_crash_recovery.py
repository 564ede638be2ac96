"""SIGKILL the server in the middle of a long ingest, restart it on the same database and
resend what was not acknowledged: every event ends up stored exactly once.

An acknowledgement is a promise that the event is committed; a batch the client never
heard back about may or may not be stored, and resending it must be safe either way."""

from __future__ import annotations

import threading
import time
from datetime import datetime

import httpx
import pytest
from sqlalchemy import text
from submitters import BATCH, encode, event

from fairmeter.storage.database import make_engine

pytestmark = pytest.mark.slow

BATCHES = 300
PER_BATCH = 200
KILL_AFTER = 100  # acknowledged batches before the SIGKILL
TOTAL = BATCHES * PER_BATCH


def _bodies(start: datetime) -> list[bytes]:
    return [
        encode([event("crash", b * PER_BATCH + i, start, n=i % 7) for i in range(PER_BATCH)])
        for b in range(BATCHES)
    ]


class Ingest(threading.Thread):
    """Posts every batch once, in order, until the server stops answering."""

    def __init__(self, url: str, key: str, bodies: list[bytes]):
        super().__init__(daemon=True)
        self.url, self.key, self.bodies = url, key, bodies
        self.acknowledged: dict[int, int] = {}  # batch -> accepted
        self.failure: str | None = None

    def run(self) -> None:
        headers = {"Authorization": f"Bearer {self.key}", "content-type": BATCH}
        with httpx.Client(base_url=self.url, headers=headers, timeout=30) as client:
            for number, body in enumerate(self.bodies):
                try:
                    response = client.post("/v1/events", content=body)
                except httpx.TransportError:
                    return  # the server died under us: what was in flight is unacknowledged
                if response.status_code != 200:
                    self.failure = f"batch {number}: {response.status_code} {response.text}"
                    return
                self.acknowledged[number] = response.json()["accepted"]


def _resend_until_acknowledged(client: httpx.Client, body: bytes) -> tuple[int, int]:
    deadline = time.monotonic() + 30
    while True:
        try:
            response = client.post("/v1/events", content=body)
            if response.status_code == 200:
                result = response.json()
                assert result["rejected"] == []
                return result["accepted"], result["duplicates"]
            assert response.status_code >= 500, response.text
        except httpx.TransportError:
            pass
        assert time.monotonic() < deadline, "the restarted server never acknowledged"
        time.sleep(0.1)


def _stored(database_url: str) -> tuple[int, int, set[str]]:
    engine = make_engine(database_url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(text("SELECT count(*) FROM events")).scalar_one()
            distinct = conn.execute(
                text("SELECT count(*) FROM (SELECT DISTINCT source, id FROM events) AS d")
            ).scalar_one()
            ids = set(conn.execute(text("SELECT id FROM events")).scalars())
    finally:
        engine.dispose()
    return int(rows), int(distinct), ids


def _kill_mid_ingest(server, ingest: Ingest) -> None:
    ingest.start()
    deadline = time.monotonic() + 30
    while len(ingest.acknowledged) < KILL_AFTER and ingest.is_alive():
        assert time.monotonic() < deadline, "the ingest is too slow to reach the kill point"
        time.sleep(0.005)
    server.kill()
    ingest.join(timeout=30)
    assert ingest.failure is None, ingest.failure
    assert KILL_AFTER <= len(ingest.acknowledged) < BATCHES, "the kill did not land mid-ingest"


def test_a_crash_mid_ingest_loses_no_acknowledged_event_and_resends_count_once(
    live_server, live_admin_key: str, metered, usage_of, last_hour: tuple[datetime, datetime]
) -> None:
    start, end = last_hour
    bodies = _bodies(start)
    ingest = Ingest(live_server.url, live_admin_key, bodies)
    _kill_mid_ingest(live_server, ingest)
    assert all(accepted == PER_BATCH for accepted in ingest.acknowledged.values())

    restarted = type(live_server)(live_server.database_url).start()
    try:
        headers = {"Authorization": f"Bearer {live_admin_key}", "content-type": BATCH}
        with httpx.Client(base_url=restarted.url, headers=headers, timeout=30) as client:
            resent = {
                number: _resend_until_acknowledged(client, body)
                for number, body in enumerate(bodies)
                if number not in ingest.acknowledged
            }
            # The last acknowledged batch, resent by a client unsure it got through.
            last_acknowledged = bodies[max(ingest.acknowledged)]
            again = _resend_until_acknowledged(client, last_acknowledged)
            metered.base_url = httpx.URL(restarted.url)
            calls, units = usage_of("calls", start, end), usage_of("units", start, end)
    finally:
        restarted.stop()

    # A batch is one transaction: the one in flight at the kill is all stored or not at all.
    assert all((a, d) in ((PER_BATCH, 0), (0, PER_BATCH)) for a, d in resent.values())
    assert sum(d for _, d in resent.values()) <= PER_BATCH
    # Committed but not acknowledged before the kill: the resend reports it as duplicates.
    resent_total = sum(a + d for a, d in resent.values())
    assert sum(ingest.acknowledged.values()) + resent_total == TOTAL
    assert again == (0, PER_BATCH)
    assert calls == str(TOTAL)
    assert units == str(BATCHES * sum(i % 7 for i in range(PER_BATCH)))
    rows, distinct, ids = _stored(live_server.database_url)
    assert (rows, distinct) == (TOTAL, TOTAL)
    assert ids == {f"evt-{n:06d}" for n in range(TOTAL)}
