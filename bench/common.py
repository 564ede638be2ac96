"""Shared pieces of the benchmarks: fresh databases, a live server, timing and results.

The benchmarks print figures; they never assert on time (see docs/performance.md)."""

from __future__ import annotations

import json
import os
import platform
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

import httpx
import psycopg
from rich.console import Console

from fairmeter.config import Settings
from fairmeter.domain.customers import Customer
from fairmeter.domain.keys import Scope
from fairmeter.domain.meters import parse_meter
from fairmeter.services import catalog
from fairmeter.services.clock import Clock
from fairmeter.services.keys import create_key
from fairmeter.services.runtime import Runtime
from fairmeter.wiring import build

PG_ADMIN_URL = os.environ.get("FAIRMETER_BENCH_PG", "postgresql://postgres@127.0.0.1:5432/test")
RESULTS_DIR = Path(__file__).resolve().parent / "results"
BACKENDS = ("sqlite", "postgresql")
EVENT_TYPE = "api.request"
MODELS = ("small", "medium", "large")

# The meters every benchmark maintains rollups for: one count, one grouped sum.
METERS = (
    {"key": "requests", "event_type": EVENT_TYPE, "aggregation": "count"},
    {
        "key": "tokens",
        "event_type": EVENT_TYPE,
        "aggregation": "sum",
        "value_property": "$.tokens",
        "group_by": {"model": "$.model"},
        "unit": "tokens",
    },
)


@contextmanager
def fresh_database(backend: str) -> Iterator[str]:
    """A database URL nobody else uses, removed afterwards."""
    if backend == "sqlite":
        with tempfile.TemporaryDirectory(prefix="fm_bench_") as tmp:
            yield f"sqlite:///{tmp}/fairmeter.db"
        return
    if backend != "postgresql":
        raise SystemExit(f"unknown backend {backend!r}; choose among {', '.join(BACKENDS)}")
    name = f"fm_bench_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(PG_ADMIN_URL, autocommit=True, connect_timeout=5) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield PG_ADMIN_URL.rsplit("/", 1)[0] + "/" + name
    finally:
        with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def libpq_url(url: str) -> str:
    """The plain PostgreSQL URL psycopg takes (no SQLAlchemy driver suffix)."""
    return url.replace("postgresql+psycopg://", "postgresql://")


def prepare(url: str, clock: Clock, customers: Sequence[str]) -> tuple[Runtime, str, str]:
    """Migrate, create the meters, the customers and two keys; returns (runtime, ingest, admin)."""
    rt = build(Settings(database_url=url), clock=clock)
    for body in METERS:
        catalog.create_meter(rt.db, clock, parse_meter(body))
    for key in customers:
        catalog.create_customer(rt.db, clock, Customer(key, key, None, "USD", "UTC"))
    ingest = create_key(rt.db, clock, Scope.INGEST, "bench ingest")
    admin = create_key(rt.db, clock, Scope.ADMIN, "bench admin")
    return rt, ingest, admin


def make_console() -> Console:
    """Wide enough for the result tables when the output goes to a file or a pipe."""
    return Console() if sys.stdout.isatty() else Console(width=120)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Server:
    """The real server (uvicorn --factory) in a child process, as a user would run it."""

    def __init__(self, database_url: str, workers: int = 1):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.command = [
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
        ]
        if workers > 1:
            self.command += ["--workers", str(workers)]
        self.env = {**os.environ, "FAIRMETER_DATABASE_URL": database_url}
        self.process: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> Server:
        self.process = subprocess.Popen(self.command, env=self.env)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise SystemExit("the server exited while starting")
            try:
                if httpx.get(self.url + "/healthz", timeout=1).status_code == 200:
                    return self
            except httpx.HTTPError:
                time.sleep(0.1)
        self.__exit__()
        raise SystemExit("the server did not answer /healthz within 60 s")

    def __exit__(self, *_: object) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def percentiles(samples_s: Sequence[float]) -> dict[str, float]:
    """Median and p95 in milliseconds (p95 by nearest rank, so few runs stay honest)."""
    ordered = sorted(samples_s)
    rank = max(0, min(len(ordered) - 1, round(0.95 * len(ordered) + 0.5) - 1))
    return {
        "median_ms": statistics.median(ordered) * 1000,
        "p95_ms": ordered[rank] * 1000,
        "runs": len(ordered),
    }


def machine() -> dict[str, object]:
    """What the figures were measured on, and how busy it was."""
    load = os.getloadavg()
    return {
        "commit": _git("rev-parse", "--short", "HEAD"),
        "uncommitted_src_changes": bool(_git("status", "--porcelain", "--", "src")),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "load_average_1m_at_start": round(load[0], 2),
    }


def _git(*args: str) -> str:
    root = Path(__file__).resolve().parent.parent
    try:
        done = subprocess.run(["git", *args], cwd=root, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return ""
    return done.stdout.strip()


def write_results(kind: str, payload: Mapping[str, object]) -> Path:
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    path = RESULTS_DIR / f"{kind}-{stamp}.json"
    path.write_text(json.dumps(payload, indent=2, default=str) + "\n")
    return path


def profile(function: Callable[[], object], repeat: int = 1) -> str:
    """A pyinstrument profile of `function` (.venv/bin/pip install pyinstrument first)."""
    from pyinstrument import Profiler

    with Profiler(interval=0.0002) as profiler:
        for _ in range(repeat):
            function()
    return str(profiler.output_text(unicode=True, color=False))


def rate(count: int, seconds: float) -> float:
    return count / seconds if seconds > 0 else float("inf")
