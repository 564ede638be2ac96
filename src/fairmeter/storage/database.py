"""Engines and transactions for SQLite (default) and PostgreSQL."""

from __future__ import annotations

import fcntl
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import Engine, create_engine
from sqlalchemy.engine import Connection
from sqlalchemy.pool import NullPool, QueuePool

from fairmeter.storage.dialect import install_sqlite_hooks


def normalize_url(url: str) -> str:
    """Accept `postgresql://` and `sqlite:///file` as users write them; pick our drivers."""
    if url.startswith("postgres://"):
        url = "postgresql://" + url[len("postgres://") :]
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url[len("postgresql://") :]
    return url


def make_engine(url: str) -> Engine:
    url = normalize_url(url)
    if url.startswith("sqlite"):
        path = url.split("///", 1)[-1]
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        # Pooled connections: opening one costs the pragmas, closing the last one a WAL
        # checkpoint. A connection is used by one thread at a time (checked out per transaction).
        memory = path in ("", ":memory:")
        engine = create_engine(
            url,
            poolclass=NullPool if memory else QueuePool,
            connect_args={"check_same_thread": False},
            **({} if memory else {"pool_size": 8, "max_overflow": 16}),
        )
        install_sqlite_hooks(engine)
        return engine
    return create_engine(url, pool_size=10, max_overflow=20, pool_pre_ping=True)


class WriteLock:
    """One SQLite writer at a time, across threads and processes, woken the moment the
    previous one commits.

    SQLite serializes writers by itself, but a writer that finds the database locked sleeps
    in its busy handler with growing back-off (1, 2, 5, 10 ms ...): with several server
    processes, most of the time would go to sleeping. An exclusive `flock` on a file beside
    the database queues them in the kernel instead."""

    def __init__(self, database_path: str):
        self._path = database_path + ".writelock"
        self._threads = threading.Lock()
        self._fd: int | None = None

    @contextmanager
    def held(self) -> Iterator[None]:
        with self._threads:
            if self._fd is None:
                self._fd = os.open(self._path, os.O_RDWR | os.O_CREAT, 0o600)
            fcntl.flock(self._fd, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(self._fd, fcntl.LOCK_UN)


class Database:
    """Hands out transactions; every write happens inside exactly one."""

    def __init__(self, engine: Engine):
        self.engine = engine
        path = engine.url.database if engine.dialect.name == "sqlite" else None
        self._write_lock = WriteLock(path) if path and path != ":memory:" else None

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    @contextmanager
    def write(self) -> Iterator[Connection]:
        if self._write_lock is None:
            with self.engine.begin() as conn:
                yield conn
            return
        with self._write_lock.held(), self.engine.begin() as conn:
            yield conn

    @contextmanager
    def read(self) -> Iterator[Connection]:
        # Readers skip SQLite's BEGIN IMMEDIATE: WAL lets them run beside the writer.
        with self.engine.connect() as conn:
            conn.execution_options(fairmeter_read_only=True)
            with conn.begin():
                yield conn

    def dispose(self) -> None:
        self.engine.dispose()
