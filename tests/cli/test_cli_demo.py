"""`fairmeter demo` and its data set: realistic, reproducible, loaded once, and billed by
the product's own billing runs (plans, subscriptions, months of invoices)."""

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
from decimal import Decimal
from itertools import pairwise
from pathlib import Path

import httpx
import pytest
from click.testing import Result
from sqlalchemy import Table, func, select

from fairmeter.cli import demo_billing, demo_data
from fairmeter.cli.demo import load
from fairmeter.domain.customers import parse_customer
from fairmeter.domain.invoices import Invoice, InvoiceKind, InvoiceStatus
from fairmeter.domain.keys import Scope
from fairmeter.domain.meters import parse_meter
from fairmeter.domain.plans import parse_plan, rate_period, total_minor
from fairmeter.domain.subscriptions import Reason
from fairmeter.domain.windows import Span, from_us
from fairmeter.services import catalog, plans, subscriptions
from fairmeter.services.invoices import list_invoices
from fairmeter.services.keys import scope_of
from fairmeter.services.runtime import Runtime
from fairmeter.services.upcoming import upcoming_invoice, usage_between
from fairmeter.storage.tables import events, invoices
from fairmeter.storage.tables import plans as plan_rows
from fairmeter.storage.tables import subscriptions as sub_rows

Invoke = Callable[..., Result]
NOW = datetime(2026, 11, 15, 12, 34, 56, tzinfo=UTC)
KEY = re.compile(r"Admin key \(shown only once\): (fm_\S+)")


def test_demo_data_is_the_same_for_the_same_seed_and_time() -> None:
    first = demo_data.generate(demo_data.SEED, NOW, 0.02)
    again = demo_data.generate(demo_data.SEED, NOW + timedelta(minutes=20), 0.02)
    other = demo_data.generate(demo_data.SEED + 1, NOW, 0.02)
    assert list(first.events()) == list(again.events())
    assert [e["data"] for e in first.events()] != [e["data"] for e in other.events()]


def test_demo_events_run_from_the_first_subscription_start_to_now_with_unique_ids() -> None:
    data = demo_data.generate(demo_data.SEED, NOW, 0.02)
    generated = list(data.events())
    times = [datetime.fromisoformat(str(e["time"])) for e in generated]
    first_start = min(
        demo_data.period_starts(NOW, str(c["timezone"]))[0] for c in data.customers
    )  # fmt: skip
    assert len(generated) == data.total_events
    assert len({e["id"] for e in generated}) == len(generated)
    assert data.start <= first_start < data.start + timedelta(hours=1)
    assert min(times) >= data.start and max(times) < NOW
    assert {e["subject"] for e in generated} == {c["key"] for c in data.customers}


def test_billing_periods_are_whole_months_with_the_current_one_20_days_old() -> None:
    for zone in ("Europe/Madrid", "America/New_York", "Asia/Kolkata"):
        starts = demo_data.period_starts(NOW, zone)
        months = [s.year * 12 + s.month for s in starts]
        assert len(starts) == demo_data.PAST_PERIODS + 1
        assert len({(s.day, s.hour, s.minute) for s in starts}) == 1 and starts[0].day <= 28
        assert [b - a for a, b in pairwise(months)] == [1] * demo_data.PAST_PERIODS
        assert timedelta(days=20) <= NOW - starts[-1] < timedelta(days=24)


def _requests(data: demo_data.DemoData, key: str, start: datetime, end: datetime) -> int:
    return sum(
        s.requests for s in data.slots if s.profile.key == key and start <= s.start < end
    )  # fmt: skip


def test_full_demo_is_a_realistic_recent_month_with_acme_the_heaviest() -> None:
    data = demo_data.generate(demo_data.SEED, NOW)
    month_ago = data.end - timedelta(days=30)
    recent = {p.key: _requests(data, p.key, month_ago, data.end) for p in demo_data.PROFILES}
    assert 150_000 <= sum(recent.values()) <= 300_000
    assert data.total_events <= 700_000
    assert max(recent, key=lambda k: recent[k]) == "acme"
    for body in data.customers:
        parse_customer(body)
    assert sorted(parse_meter(m).key for m in data.meters) == sorted(
        ["api_calls", "tokens", "storage_gb", "active_users", "seats"]
    )


def test_acme_traffic_doubles_in_its_last_whole_billing_period() -> None:
    data = demo_data.generate(demo_data.SEED, NOW)
    starts = demo_data.period_starts(NOW, "Europe/Madrid")
    per_hour = [
        _requests(data, "acme", a, b) / ((b - a) / timedelta(hours=1)) for a, b in pairwise(starts)
    ]
    assert per_hour[2] > 1.8 * per_hour[1] and per_hour[2] > 1.8 * per_hour[0]


def test_demo_plans_at_any_scale_price_scaled_usage_the_same() -> None:
    usage = {"api_calls": Decimal("1200000"), "tokens": Decimal("123456789")}
    for full, small in zip(demo_billing.plan_bodies(), demo_billing.plan_bodies(0.01), strict=True):
        scaled = {meter: q * Decimal("0.01") for meter, q in usage.items()}
        expected = total_minor(rate_period(parse_plan(full), usage))
        assert total_minor(rate_period(parse_plan(small), scaled)) == expected > 0


def test_loading_the_demo_twice_adds_nothing(runtime: Runtime) -> None:
    data = demo_data.generate(demo_data.SEED, runtime.clock.now(), 0.01)
    first = load(runtime, data)
    second = load(runtime, data)
    assert (first.accepted, first.duplicates, first.rejected) == (data.total_events, 0, 0)
    assert (second.accepted, second.duplicates, second.rejected) == (0, data.total_events, 0)


SMALL = 0.01


@pytest.fixture
def demo_rt(runtime: Runtime) -> Runtime:
    """The demo at a small scale, loaded and billed as of the test clock."""
    load(runtime, demo_data.generate(demo_data.SEED, runtime.clock.now(), SMALL))
    demo_billing.set_up(runtime, SMALL)
    return runtime


def _invoices(rt: Runtime) -> list[Invoice]:
    return list_invoices(rt, limit=1000)


def _periods(found: list[Invoice], customer: str) -> list[Invoice]:
    mine = [i for i in found if i.customer_key == customer and i.kind is InvoiceKind.PERIOD]
    return sorted(mine, key=lambda i: i.period_start_us)


def test_demo_bills_every_past_period_of_every_customer_with_gapless_numbers(
    demo_rt: Runtime,
) -> None:
    found = _invoices(demo_rt)
    numbers = sorted(int(str(i.number).rsplit("-", 1)[1]) for i in found)
    assert all(i.status is InvoiceStatus.FINALIZED for i in found)
    assert numbers == list(range(1, len(found) + 1))
    for customer in catalog.list_customers(demo_rt.db):
        view = subscriptions.customer_subscription(demo_rt.db, demo_rt.clock, customer.key)
        plan = plans.get_plan(demo_rt.db, view.subscription.plan_key).plan
        starts = demo_data.period_starts(demo_rt.clock.now(), customer.timezone)
        billed = _periods(found, customer.key)
        assert view.subscription.active and plan.currency == customer.currency
        assert [(from_us(i.period_start_us), from_us(i.period_end_us)) for i in billed] == list(
            pairwise(starts)
        )
        assert all(i.total_minor > 0 and i.currency == customer.currency for i in billed)


def test_demo_acme_gets_a_surprise_bill_then_threshold_invoices(demo_rt: Runtime) -> None:
    rt = demo_rt
    found = [i for i in _invoices(rt) if i.customer_key == demo_billing.STORY]
    *before, surprise = _periods(found, demo_billing.STORY)
    span = Span(from_us(surprise.period_start_us), from_us(surprise.period_end_us))
    usage = usage_between(rt.db, demo_billing.STORY, ("api_calls", "tokens"), span)
    assert surprise.total_minor == plans.quote(rt.db, "starter", usage, 1).total_minor
    assert 5_000_00 <= surprise.total_minor <= 9_000_00  # "a surprise $7,000 bill"
    assert surprise.total_minor > 4 * max(i.total_minor for i in before)
    assert plans.quote(rt.db, "growth", usage).total_minor * 10 < surprise.total_minor
    view = subscriptions.customer_subscription(rt.db, rt.clock, demo_billing.STORY)
    assert [(s.plan_key, s.plan_version, s.reason) for s in view.segments] == [
        ("starter", 1, Reason.START), ("starter", 2, Reason.SCHEDULED_CHANGE)
    ]  # fmt: skip
    assert view.segments[1].start_us == surprise.period_end_us
    early = [i for i in found if i.kind is InvoiceKind.THRESHOLD]
    threshold = plans.get_plan(rt.db, "starter").plan.invoice_threshold
    assert threshold is not None and early
    assert all(i.period_start_us == surprise.period_end_us for i in early)
    assert all(Decimal(i.total_minor) / 100 >= threshold for i in early)
    upcoming = upcoming_invoice(rt.db, rt.clock, demo_billing.STORY)
    assert upcoming.total_minor > sum(i.total_minor for i in early)


def _counts(rt: Runtime) -> dict[str, int]:
    tables: tuple[Table, ...] = (events, plan_rows, sub_rows, invoices)
    with rt.db.read() as conn:
        return {
            t.name: int(conn.execute(select(func.count()).select_from(t)).scalar_one())
            for t in tables
        }


def test_demo_command_loads_once_then_only_makes_a_new_key(
    cli: Invoke, rt_of_env: Callable[[], Runtime], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FAIRMETER_DEMO_SCALE", str(SMALL))
    first = cli("demo", "--no-serve")
    assert first.exit_code == 0, first.output
    stored = _counts(rt_of_env())
    second = cli("demo", "--no-serve")
    assert second.exit_code == 0, second.output
    loaded = re.search(r"([\d,]+) events over the last \d+ days", first.stdout)
    assert loaded is not None and int(loaded.group(1).replace(",", "")) == stored["events"] > 0
    assert stored["plans"] == 6 and stored["subscriptions"] == len(demo_data.PROFILES)
    assert f"Invoices: {stored['invoices']} " in first.stdout and stored["invoices"] > 15
    assert "already loaded" in second.stderr
    assert _counts(rt_of_env()) == stored
    keys = [KEY.search(r.stdout) for r in (first, second)]
    assert keys[0] and keys[1] and keys[0].group(1) != keys[1].group(1)
    for found in keys:
        assert found is not None
        assert scope_of(rt_of_env().db, found.group(1)) is Scope.ADMIN


def test_demo_prints_the_plans_the_story_and_six_curl_commands(
    cli: Invoke, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FAIRMETER_DEMO_SCALE", str(SMALL))
    result = cli("demo", "--no-serve", "--port", "8123")
    key = KEY.search(result.stdout)
    curls = [line.strip() for line in result.stdout.splitlines() if "curl " in line]
    assert key is not None
    assert "http://127.0.0.1:8123/docs" in result.stdout
    for plan in demo_billing.plan_bodies():
        assert f"  {plan['key']} v" in result.stdout
    assert "surprise" in result.stdout and "projected" in result.stdout
    assert len(curls) == 6
    assert all(f"Authorization: Bearer {key.group(1)}" in c for c in curls)
    assert "/v1/meters " in curls[0]
    assert "/v1/meters/api_calls/usage?customer=acme&window=day" in curls[1]
    assert "/v1/events" in curls[2] and '"specversion":"1.0"' in curls[2]
    assert "/v1/customers/acme/upcoming-invoice " in curls[3]
    assert "/v1/invoices?customer=acme" in curls[4]
    assert re.search(r"-o invoice\.pdf \S+/v1/invoices/in_\w+\.pdf ", curls[5])


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
