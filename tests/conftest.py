"""Shared fixtures: a fresh database per test on SQLite and on the real PostgreSQL.

PostgreSQL tests never skip: when the server is unreachable they fail, in CI and here."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import psycopg
import pytest
from sqlalchemy import text

from fairmeter.config import Settings
from fairmeter.domain.keys import Scope
from fairmeter.services.clock import FixedClock
from fairmeter.services.keys import create_key
from fairmeter.services.runtime import Runtime
from fairmeter.storage.database import Database, make_engine
from fairmeter.storage.migrate import upgrade
from fairmeter.wiring import build

PG_ADMIN_URL = os.environ.get("FAIRMETER_TEST_PG", "postgresql://postgres@127.0.0.1:5432/test")
TABLES = (
    "limit_denials",
    "customer_suspensions",
    "limit_overrides",
    "alert_rules",
    "delivery_attempts",
    "deliveries",
    "webhook_endpoints",
    "notifications",
    "invoice_series",
    "invoices",
    "subscription_segments",
    "subscriptions",
    "plans",
    "usage_distinct",
    "usage_rollups",
    "events",
    "meters",
    "customers",
    "api_keys",
)
NOW = datetime(2026, 11, 15, 12, 0, tzinfo=UTC)


def _pg_database(worker: str) -> str:
    name = f"fm_test_{worker}_{uuid.uuid4().hex[:8]}"
    try:
        with psycopg.connect(PG_ADMIN_URL, autocommit=True, connect_timeout=5) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
    except psycopg.OperationalError as exc:
        pytest.fail(f"PostgreSQL at {PG_ADMIN_URL} is unreachable: {exc}", pytrace=False)
    return name


@pytest.fixture(scope="session")
def pg_base_url(worker_id: str) -> Iterator[str]:
    """A database of its own for this test worker, migrated once, dropped at the end."""
    name = _pg_database(worker_id)
    url = PG_ADMIN_URL.rsplit("/", 1)[0] + "/" + name
    engine = make_engine(url)
    upgrade(engine)
    engine.dispose()
    yield url
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def pg_url(pg_base_url: str) -> str:
    engine = make_engine(pg_base_url)
    with engine.begin() as conn:
        conn.execute(text(f"TRUNCATE {', '.join(TABLES)} RESTART IDENTITY"))
    engine.dispose()
    return pg_base_url


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'fairmeter.db'}"


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest) -> str:
    """Every test that takes this runs once per backend."""
    name = "sqlite_url" if request.param == "sqlite" else "pg_url"
    url: str = request.getfixturevalue(name)
    return url


@pytest.fixture
def clock() -> FixedClock:
    return FixedClock(NOW)


@pytest.fixture
def runtime(database_url: str, clock: FixedClock) -> Iterator[Runtime]:
    rt = build(Settings(database_url=database_url), clock=clock)
    yield rt
    rt.close()


@pytest.fixture
def db(runtime: Runtime) -> Database:
    return runtime.db


@pytest.fixture
def admin_key(runtime: Runtime) -> str:
    return create_key(runtime.db, runtime.clock, Scope.ADMIN, "tests")


@pytest.fixture
def ingest_key(runtime: Runtime) -> str:
    return create_key(runtime.db, runtime.clock, Scope.INGEST, "tests")


@pytest.fixture
def api(runtime: Runtime, admin_key: str) -> Iterator[httpx.Client]:
    """The ASGI app in-process, authenticated as admin."""
    from fastapi.testclient import TestClient

    from fairmeter.api.app import create_app

    with TestClient(create_app(runtime)) as client:
        client.headers["Authorization"] = f"Bearer {admin_key}"
        yield client


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class LiveServer:
    """`fairmeter serve` in a child process, as a user would run it."""

    def __init__(self, database_url: str, env: dict[str, str] | None = None):
        self.database_url = database_url
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = {**os.environ, "FAIRMETER_DATABASE_URL": database_url, **(env or {})}
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> LiveServer:
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "uvicorn",
                "--factory",
                "fairmeter.wiring:create_app_from_env",
                "--host",
                "127.0.0.1",
                "--port",
                str(self.port),
                "--log-level",
                "warning",
                # Clients here may leave a pooled connection idle for seconds on a loaded
                # machine; uvicorn's 5 s default would close it as a request leaves.
                "--timeout-keep-alive",
                "60",
            ],
            env=self.env,
        )
        # Generous: on a busy 2-core machine a cold start (imports) can take a while.
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if httpx.get(self.url + "/healthz", timeout=1).status_code == 200:
                    return self
            except httpx.HTTPError:
                time.sleep(0.1)
            if self.process.poll() is not None:
                raise RuntimeError("the server exited while starting")
        self.kill()  # never leave a server behind
        raise RuntimeError("the server did not start in 60 s")

    def kill(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.kill()
            self.process.wait()

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.kill()


@pytest.fixture
def live_server(database_url: str) -> Iterator[LiveServer]:
    # Migrate before start so the key can be created in the same database.
    engine = make_engine(database_url)
    upgrade(engine)
    engine.dispose()
    server = LiveServer(database_url).start()
    yield server
    server.stop()


@pytest.fixture
def live_admin_key(live_server: LiveServer) -> str:
    rt = Runtime(Database(make_engine(live_server.database_url)))
    try:
        return create_key(rt.db, rt.clock, Scope.ADMIN, "live tests")
    finally:
        rt.close()
