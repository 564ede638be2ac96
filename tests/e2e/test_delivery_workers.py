"""Several delivery workers over one database never send the same delivery twice: worker
threads with their own connections, `fairmeter worker` processes, and `fairmeter serve
--with-worker`."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator

import httpx
import pytest
from tests.conftest import free_port
from tests.services.notification_receivers import add_customer, add_endpoint, receiver

from fairmeter.config import Settings
from fairmeter.domain.windows import to_us
from fairmeter.services.delivery import DeliveryWorker, Report
from fairmeter.services.notifications import NewNotification, enqueue
from fairmeter.services.runtime import Runtime
from fairmeter.wiring import build

ALLOW = ("127.0.0.1",)


@pytest.fixture
def live_rt(database_url: str) -> Iterator[Runtime]:
    """A runtime on the real clock (the workers in other processes use it too)."""
    found = build(Settings(database_url=database_url, webhook_allow_private=ALLOW))
    yield found
    found.close()


def _queue(rt: Runtime, count: int) -> None:
    now_us = to_us(rt.clock.now())
    with rt.db.write() as conn:
        for n in range(count):
            note = NewNotification("acme", "limit.reached", f"k{n}", f"Limit {n}")
            assert enqueue(conn, note, now_us) is not None


def _ids(hooks_received: list) -> Counter[str]:  # type: ignore[type-arg]
    return Counter(r.headers["webhook-id"] for r in hooks_received)


def _wait_for(condition, seconds: float = 60) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("timed out waiting")
        time.sleep(0.05)


def test_two_worker_threads_deliver_each_message_exactly_once(
    live_rt: Runtime, database_url: str
) -> None:
    add_customer(live_rt, email=None)
    with receiver(200) as hooks:
        add_endpoint(live_rt, hooks.url)
        add_endpoint(live_rt, hooks.url + "/second")
        _queue(live_rt, 150)
        reports: list[Report] = []
        # Each worker has its own runtime: its own engine and connections.
        settings = Settings(database_url=database_url, webhook_allow_private=ALLOW)
        runtimes = [build(settings, migrate=False) for _ in range(2)]

        def work(rt: Runtime) -> None:
            with DeliveryWorker(rt, batch=5) as worker:
                reports.append(worker.run_once())

        threads = [threading.Thread(target=work, args=(rt,)) for rt in runtimes]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        for rt in runtimes:
            rt.close()
    seen = _ids(hooks.received)
    assert len(seen) == 300 and set(seen.values()) == {1}
    assert sum(r.delivered for r in reports) == 300
    assert all(r.delivered > 0 for r in reports), "both workers took a share"


def _worker_process(database_url: str) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "FAIRMETER_DATABASE_URL": database_url,
        "FAIRMETER_WEBHOOK_ALLOW_PRIVATE": "127.0.0.1",
        "FAIRMETER_WORKER_POLL_MS": "50",
    }
    command = [sys.executable, "-m", "fairmeter.cli.main", "worker"]
    return subprocess.Popen(command, env=env)


@pytest.mark.slow
def test_fairmeter_worker_processes_share_the_outbox(live_rt: Runtime, database_url: str) -> None:
    add_customer(live_rt, email=None)
    with receiver(200) as hooks:
        add_endpoint(live_rt, hooks.url)
        workers = [_worker_process(database_url) for _ in range(2)]
        try:
            for _ in range(4):  # queued while the workers run, in bursts
                _queue_more(live_rt, 50)
            started = time.monotonic()
            _wait_for(lambda: len(hooks.received) >= 200)
            print(f"200 deliveries by 2 worker processes in {time.monotonic() - started:.1f} s")
            time.sleep(0.5)  # anything sent twice would arrive now
        finally:
            for process in workers:
                process.send_signal(signal.SIGTERM)
            codes = [p.wait(timeout=30) for p in workers]
    seen = _ids(hooks.received)
    assert len(seen) == 200 and set(seen.values()) == {1}
    assert codes == [0, 0]


_burst = iter(range(1_000_000))


def _queue_more(rt: Runtime, count: int) -> None:
    now_us = to_us(rt.clock.now())
    with rt.db.write() as conn:
        for _ in range(count):
            n = next(_burst)
            enqueue(conn, NewNotification("acme", "limit.reached", f"b{n}", f"Limit {n}"), now_us)


@pytest.mark.slow
def test_serve_with_worker_delivers_in_process(live_rt: Runtime, database_url: str) -> None:
    add_customer(live_rt, email=None)
    port = free_port()
    env = {
        **os.environ,
        "FAIRMETER_DATABASE_URL": database_url,
        "FAIRMETER_WEBHOOK_ALLOW_PRIVATE": "127.0.0.1",
        "FAIRMETER_WORKER_POLL_MS": "50",
    }
    command = [sys.executable, "-m", "fairmeter.cli.main", "serve", "--with-worker"]
    server = subprocess.Popen([*command, "--port", str(port)], env=env)
    try:
        _wait_for(lambda: _healthy(port), 30)
        with receiver(200) as hooks:
            add_endpoint(live_rt, hooks.url)
            _queue(live_rt, 3)
            _wait_for(lambda: len(hooks.received) == 3, 30)
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=30)
    assert len(_ids(hooks.received)) == 3


def _healthy(port: int) -> bool:
    try:
        return httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200
    except httpx.HTTPError:
        return False
