"""Threshold invoices and late events, on every backend."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

from tests.services.billing_world import World

from fairmeter.domain.invoices import InvoiceKind, LineKind
from fairmeter.services.billing import run_billing
from fairmeter.services.invoices import list_invoices
from fairmeter.services.runtime import Runtime
from fairmeter.services.thresholds import ThresholdSweeper, check_threshold

SEP = datetime(2026, 9, 1, tzinfo=UTC)
OCT = datetime(2026, 10, 1, tzinfo=UTC)
NOV = datetime(2026, 11, 1, tzinfo=UTC)
TOKENS = {"meter": "tokens", "model": "per_unit", "unit_price": "0.01", "included": "100"}


def _world(rt: Runtime, customer_threshold: str | None = None, **plan: object) -> World:
    world = World(rt).at(SEP).meter("tokens", "sum")
    world.customer("acme", threshold=customer_threshold)
    world.plan("base", base_fee="49", charges=[TOKENS], **plan)
    world.subscribe("acme", "base", SEP)
    return world


def test_a_threshold_invoice_bills_what_accrued_and_the_period_invoice_the_rest(
    runtime: Runtime,
) -> None:
    world = _world(runtime, invoice_threshold="20")
    world.at(SEP + timedelta(days=5)).use("acme", "tokens", SEP + timedelta(days=4), 1100)
    assert check_threshold(runtime, "acme") is None  # 10.00 accrued
    world.at(SEP + timedelta(days=10)).use("acme", "tokens", SEP + timedelta(days=9), 1500)
    early = check_threshold(runtime, "acme")
    assert early is not None and early.kind is InvoiceKind.THRESHOLD
    assert (early.number, early.total_minor, early.sequence) == ("FM-2026-000001", 2500, 1)
    assert early.covers_until_us == early.issued_us
    assert check_threshold(runtime, "acme") is None  # nothing new since
    world.at(SEP + timedelta(days=20)).use("acme", "tokens", SEP + timedelta(days=19), 500)
    assert check_threshold(runtime, "acme") is None  # 5.00 unbilled, under 20
    world.at(OCT + timedelta(days=2))
    period = run_billing(runtime).finalized[0]
    # 49.00 base fee + the 5.00 left: 25.00 + 54.00 is 49.00 + 30.00, one invoice's total.
    assert (period.number, period.total_minor) == ("FM-2026-000002", 5400)
    usage = next(line for line in period.lines if line.meter == "tokens")
    assert (usage.quantity, usage.quantity_before) == (3100, 2600)
    assert (usage.cumulative_minor, usage.billed_before_minor) == (3000, 2500)


def test_the_customers_threshold_overrides_the_plans(runtime: Runtime) -> None:
    world = _world(runtime, customer_threshold="2", invoice_threshold="1000")
    world.at(SEP + timedelta(days=5)).use("acme", "tokens", SEP + timedelta(days=4), 400)
    found = check_threshold(runtime, "acme")
    assert found is not None and found.total_minor == 300


def test_the_billing_run_checks_thresholds_too(runtime: Runtime) -> None:
    world = _world(runtime, invoice_threshold="1")
    world.at(SEP + timedelta(days=5)).use("acme", "tokens", SEP + timedelta(days=4), 400)
    report = run_billing(runtime)
    assert [i.total_minor for i in report.thresholds] == [300]


def test_late_events_are_billed_on_the_next_invoice_naming_their_period(
    runtime: Runtime,
) -> None:
    world = _world(runtime)
    world.at(SEP + timedelta(days=3)).use("acme", "tokens", SEP + timedelta(days=2), 300)
    world.at(OCT + timedelta(days=2))
    september = run_billing(runtime).finalized[0]
    world.at(OCT + timedelta(days=10)).use("acme", "tokens", SEP + timedelta(days=25), 150)
    world.use("acme", "tokens", SEP + timedelta(days=26), 50)
    world.at(NOV + timedelta(days=2))
    october = run_billing(runtime).finalized[0]
    late = [line for line in october.lines if line.kind is LineKind.LATE_USAGE]
    assert [line.description for line in late] == [
        "Late usage for 2026-09-01 \u2013 2026-10-01: tokens (per unit)"
    ]
    assert (late[0].quantity, late[0].quantity_before, late[0].amount_minor) == (500, 300, 200)
    assert (october.late.billed, october.late.dropped) == (2, 0)
    assert october.total_minor == 4900 + 200
    assert list_invoices(runtime, customer="acme")[0] == september


def test_late_events_older_than_the_window_are_dropped_and_counted(runtime: Runtime) -> None:
    world = _world(runtime, late_event_window_days=5)
    world.at(OCT + timedelta(days=2))
    run_billing(runtime)
    world.at(OCT + timedelta(days=10)).use("acme", "tokens", SEP + timedelta(days=25), 900)
    world.at(NOV + timedelta(days=2))
    october = run_billing(runtime).finalized[0]
    dropped = [line for line in october.lines if line.kind is LineKind.LATE_DROPPED]
    assert [line.amount_minor for line in dropped] == [0]
    assert (october.late.billed, october.late.dropped) == (0, 1)
    assert october.total_minor == 4900
    # Counted once: the next invoice does not count them again.
    world.at(datetime(2026, 12, 2, tzinfo=UTC))
    november = run_billing(runtime).finalized[0]
    assert (november.late.billed, november.late.dropped) == (0, 0)


def test_a_server_sweep_issues_the_threshold_invoice_without_a_request(runtime: Runtime) -> None:
    world = _world(runtime, invoice_threshold="1")
    world.at(SEP + timedelta(days=5)).use("acme", "tokens", SEP + timedelta(days=4), 400)
    sweeper = ThresholdSweeper(runtime, 0.05).start()
    try:
        deadline = time.monotonic() + 10
        while not list_invoices(runtime) and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        sweeper.stop()
    assert [(i.kind, i.total_minor) for i in list_invoices(runtime)] == [
        (InvoiceKind.THRESHOLD, 300)
    ]
