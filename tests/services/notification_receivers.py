"""Real receivers for notification tests: an HTTP server in a thread that answers with a
script of status codes, and helpers to make customers and endpoints."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from fairmeter.config import Settings
from fairmeter.domain.customers import parse_customer
from fairmeter.services import catalog, webhooks
from fairmeter.services.clock import FixedClock
from fairmeter.services.runtime import Runtime
from fairmeter.storage import notifications as store
from fairmeter.wiring import build


@pytest.fixture
def rt(database_url: str, clock: FixedClock) -> Iterator[Runtime]:
    """A runtime whose webhooks may target this machine (as FAIRMETER_WEBHOOK_ALLOW_PRIVATE
    =127.0.0.1 allows)."""
    settings = Settings(database_url=database_url, webhook_allow_private=("127.0.0.1",))
    found = build(settings, clock=clock)
    yield found
    found.close()


@dataclass
class Received:
    headers: dict[str, str]
    body: bytes


@dataclass
class Receiver:
    """Answers the n-th request with `script[n]` (the last code once the script runs out)."""

    script: list[int] = field(default_factory=lambda: [200])
    delay: float = 0.0  # seconds to wait before answering (to make a sender time out)
    received: list[Received] = field(default_factory=list)
    url: str = ""
    lock: threading.Lock = field(default_factory=threading.Lock)

    def answer(self, headers: dict[str, str], body: bytes) -> int:
        with self.lock:
            index = len(self.received)
            self.received.append(Received(headers, body))
            return self.script[min(index, len(self.script) - 1)]


@contextmanager
def receiver(*script: int, delay: float = 0.0) -> Iterator[Receiver]:
    found = Receiver(list(script) or [200], delay=delay)

    class Handler(BaseHTTPRequestHandler):
        disable_nagle_algorithm = True  # answer at once, not after a delayed ACK

        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("content-length", "0")))
            status = found.answer({k.lower(): v for k, v in self.headers.items()}, body)
            time.sleep(found.delay)
            try:
                self.send_response(status)
                self.send_header("content-length", "2")
                self.end_headers()
                self.wfile.write(b"ok")
            except (BrokenPipeError, ConnectionResetError):
                pass  # the sender gave up waiting (a timeout test)

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    found.url = f"http://127.0.0.1:{server.server_address[1]}/hooks"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield found
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def add_customer(rt: Runtime, key: str = "acme", email: str | None = "billing@acme.test") -> None:
    body: dict[str, object] = {"key": key, "name": f"{key.title()} Corp"}
    if email:
        body["email"] = email
    catalog.create_customer(rt.db, rt.clock, parse_customer(body))


def add_endpoint(rt: Runtime, url: str, events: list[str] | None = None) -> tuple[str, str]:
    """Returns (endpoint id, signing secret)."""
    row, secret = webhooks.create_endpoint(rt, url, events or ["*"])
    return str(row["id"]), secret


def deliveries_of(rt: Runtime, notification_id: str) -> list[Any]:
    with rt.db.read() as conn:
        return list(store.deliveries_of(conn, [notification_id]))


def attempts_of(rt: Runtime, delivery_id: str) -> list[Any]:
    with rt.db.read() as conn:
        return list(store.attempts_of(conn, [delivery_id]))
