"""`fairmeter demo` and its data set: realistic, reproducible, loaded once."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from click.testing import Result
from sqlalchemy import func, select

from fairmeter.cli import demo_data
from fairmeter.cli.demo import load
from fairmeter.domain.customers import parse_customer
from fairmeter.domain.keys import Scope
from fairmeter.domain.meters import parse_meter
from fairmeter.services.keys import authorize
from fairmeter.services.runtime import Runtime
from fairmeter.storage.tables import events

Invoke = Callable[..., Result]
NOW = datetime(2026, 11, 15, 12, 34, 56, tzinfo=UTC)
KEY = re.compile(r"Admin key \(shown only once\): (fm_\S+)")


def test_demo_data_is_the_same_for_the_same_seed_and_time() -> None:
    first = demo_data.generate(demo_data.SEED, NOW, 0.02)
    again = demo_data.generate(demo_data.SEED, NOW + timedelta(minutes=20), 0.02)
    other = demo_data.generate(demo_data.SEED + 1, NOW, 0.02)
    assert list(first.events()) == list(again.events())
    assert [e["data"] for e in first.events()] != [e["data"] for e in other.events()]


def test_demo_events_lie_in_the_last_30_days_with_unique_ids() -> None:
    data = demo_data.generate(demo_data.SEED, NOW, 0.05)
    generated = list(data.events())
    times = [datetime.fromisoformat(str(e["time"])) for e in generated]
    assert len(generated) == data.total_events
    assert len({e["id"] for e in generated}) == len(generated)
    assert min(times) >= NOW - timedelta(days=30, hours=1) and max(times) < NOW
    assert {e["subject"] for e in generated} == {c["key"] for c in data.customers}


def test_full_demo_is_a_realistic_month_with_acme_the_heaviest() -> None:
    data = demo_data.generate(demo_data.SEED, NOW)
    per_customer: dict[str, int] = {}
    for slot in data.slots:
        per_customer[slot.profile.key] = per_customer.get(slot.profile.key, 0) + slot.requests
    assert 150_000 <= data.total_events <= 300_000
    assert max(per_customer, key=lambda k: per_customer[k]) == "acme"
    for body in data.customers:
        parse_customer(body)
    assert sorted(parse_meter(m).key for m in data.meters) == sorted(
        ["api_calls", "tokens", "storage_gb", "active_users", "seats"]
    )


def test_loading_the_demo_twice_adds_nothing(runtime: Runtime) -> None:
    data = demo_data.generate(demo_data.SEED, runtime.clock.now(), 0.01)
    first = load(runtime, data)
    second = load(runtime, data)
    assert (first.accepted, first.duplicates, first.rejected) == (data.total_events, 0, 0)
    assert (second.accepted, second.duplicates, second.rejected) == (0, data.total_events, 0)


def _stored_events(rt: Runtime) -> int:
    with rt.db.read() as conn:
        return int(conn.execute(select(func.count()).select_from(events)).scalar_one())


def test_demo_command_loads_once_then_only_makes_a_new_key(
    cli: Invoke, rt_of_env: Callable[[], Runtime], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FAIRMETER_DEMO_SCALE", "0.01")
    first = cli("demo", "--no-serve")
    assert first.exit_code == 0, first.output
    stored = _stored_events(rt_of_env())
    second = cli("demo", "--no-serve")
    assert second.exit_code == 0, second.output
    loaded = re.search(r"([\d,]+) events over the last 30 days", first.stdout)
    assert loaded is not None and int(loaded.group(1).replace(",", "")) == stored > 0
    assert "already loaded" in second.stderr
    assert _stored_events(rt_of_env()) == stored
    keys = [KEY.search(r.stdout) for r in (first, second)]
    assert keys[0] and keys[1] and keys[0].group(1) != keys[1].group(1)
    for found in keys:
        assert found is not None
        assert authorize(rt_of_env().db, found.group(1), Scope.ADMIN) is Scope.ADMIN


def test_demo_prints_the_urls_and_three_curl_commands(
    cli: Invoke, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FAIRMETER_DEMO_SCALE", "0.01")
    result = cli("demo", "--no-serve", "--port", "8123")
    key = KEY.search(result.stdout)
    curls = [line.strip() for line in result.stdout.splitlines() if "curl " in line]
    assert key is not None
    assert "http://127.0.0.1:8123/docs" in result.stdout
    assert len(curls) == 3
    assert all(f"Authorization: Bearer {key.group(1)}" in c for c in curls)
    assert "/v1/meters " in curls[0]
    assert "/v1/meters/api_calls/usage?customer=acme&window=day" in curls[1]
    assert "/v1/events" in curls[2] and '"specversion":"1.0"' in curls[2]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def _spawn(args: list[str], env: dict[str, str]) -> Iterator[subprocess.Popen[str]]:
    command = [sys.executable, "-m", "fairmeter.cli.main", *args]
    env = {**os.environ, **env, "PYTHONUNBUFFERED": "1"}
    process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, text=True)
    try:
        yield process
    finally:
        process.terminate()
        process.wait(10)
        if process.stdout:
            process.stdout.close()


@pytest.fixture
def demo_server(tmp_path: Path) -> Iterator[tuple[str, str]]:
    """`python -m fairmeter.cli.main demo`, as `make demo` runs it: (base URL, admin key)."""
    port = _free_port()
    env = {
        "FAIRMETER_DATABASE_URL": f"sqlite:///{tmp_path / 'demo.db'}",
        "FAIRMETER_DEMO_SCALE": "0.01",
    }
    with _spawn(["demo", "--port", str(port)], env) as process:
        assert process.stdout is not None
        key = next((m.group(1) for line in process.stdout if (m := KEY.search(line))), None)
        assert key, "the demo printed no key"
        base = f"http://127.0.0.1:{port}"
        _wait_until_up(base)
        yield base, key


def _wait_until_up(base: str) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if httpx.get(base + "/healthz", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            time.sleep(0.1)
    raise AssertionError("the demo server did not start")


@pytest.mark.slow
def test_demo_serves_the_loaded_data_with_the_printed_key(demo_server: tuple[str, str]) -> None:
    base, key = demo_server
    headers = {"Authorization": f"Bearer {key}"}
    meters = httpx.get(base + "/v1/meters", headers=headers).json()["data"]
    since = (datetime.now(UTC) - timedelta(days=31)).isoformat()
    usage = httpx.get(
        base + "/v1/meters/api_calls/usage",
        params={"customer": "acme", "from": since},
        headers=headers,
    )
    assert {m["key"] for m in meters} == {
        "api_calls", "tokens", "storage_gb", "active_users", "seats"
    }  # fmt: skip
    assert usage.status_code == 200 and int(usage.json()["data"][0]["value"]) > 0


@pytest.mark.slow
def test_serve_migrates_a_new_database_and_answers(tmp_path: Path) -> None:
    port = _free_port()
    env = {"FAIRMETER_DATABASE_URL": f"sqlite:///{tmp_path / 'new.db'}"}
    with _spawn(["serve", "--port", str(port)], env):
        _wait_until_up(f"http://127.0.0.1:{port}")
        unauthorized = httpx.get(f"http://127.0.0.1:{port}/v1/meters")
    assert unauthorized.status_code == 401
