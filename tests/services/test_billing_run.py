"""The billing run on every backend: one invoice per (subscription, period), drafts that
follow late events until the grace period ends, then immutable numbered invoices."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from tests.services.billing_world import World

from fairmeter.domain.errors import InvalidInput
from fairmeter.domain.invoices import (
    InvalidTransition,
    InvoiceKind,
    InvoiceStatus,
    StatusAction,
)
from fairmeter.domain.windows import to_us
from fairmeter.services.billing import run_billing
from fairmeter.services.invoices import change_status, get_invoice, list_invoices
from fairmeter.services.runtime import Runtime
from fairmeter.storage.invoices import Invoices

SEP = datetime(2026, 9, 1, tzinfo=UTC)
OCT = datetime(2026, 10, 1, tzinfo=UTC)
NOV = datetime(2026, 11, 1, tzinfo=UTC)
PLAN = {
    "base_fee": "49",
    "net_terms_days": 14,
    "charges": [{"meter": "tokens", "model": "per_unit", "unit_price": "0.01", "included": "100"}],
}


def _world(rt: Runtime) -> World:
    world = World(rt).at(SEP).meter("tokens", "sum").customer("acme").plan("base", **PLAN)
    world.subscribe("acme", "base", SEP)
    return world


def test_each_ended_period_gets_one_invoice_however_often_billing_runs(runtime: Runtime) -> None:
    world = _world(runtime)
    world.at(SEP + timedelta(days=10)).use("acme", "tokens", SEP + timedelta(days=9), 250)
    world.at(OCT + timedelta(days=10)).use("acme", "tokens", OCT + timedelta(days=9), 80)
    world.at(datetime(2026, 11, 15, 12, tzinfo=UTC))
    first = run_billing(runtime)
    again = run_billing(runtime)
    invoices = list_invoices(runtime, customer="acme")
    assert [i.kind for i in invoices] == [InvoiceKind.PERIOD, InvoiceKind.PERIOD]
    assert len(first.created) == 2 and not again.created and not again.finalized
    by_period = sorted(invoices, key=lambda i: i.period_start_us)
    assert [i.period_start_us for i in by_period] == [to_us(SEP), to_us(OCT)]
    # September: 49.00 base + (250 - 100 included) x 0.01; October stays in the allowance.
    assert [i.total_minor for i in by_period] == [4900 + 150, 4900]
    assert [i.number for i in by_period] == ["FM-2026-000001", "FM-2026-000002"]
    assert all(i.status is InvoiceStatus.FINALIZED for i in by_period)
    issued = to_us(runtime.clock.now())
    assert by_period[0].issued_us == issued
    assert by_period[0].due_us == issued + 14 * 86_400_000_000


def test_a_draft_follows_late_events_until_the_grace_period_ends(runtime: Runtime) -> None:
    world = _world(runtime)
    world.at(SEP + timedelta(days=3)).use("acme", "tokens", SEP + timedelta(days=2), 300)
    world.at(OCT + timedelta(hours=1))
    created = run_billing(runtime).created
    assert len(created) == 1 and created[0].status is InvoiceStatus.DRAFT
    assert created[0].number is None and created[0].total_minor == 4900 + 200
    world.use("acme", "tokens", OCT - timedelta(minutes=5), 50)
    updated = run_billing(runtime).updated
    assert [i.total_minor for i in updated] == [4900 + 250]
    world.at(OCT + timedelta(hours=25))
    finalized = run_billing(runtime).finalized
    assert [(i.number, i.total_minor) for i in finalized] == [("FM-2026-000001", 5150)]


def test_an_issued_invoice_never_changes(runtime: Runtime) -> None:
    world = _world(runtime)
    world.at(SEP + timedelta(days=3)).use("acme", "tokens", SEP + timedelta(days=2), 300)
    world.at(OCT + timedelta(days=2))
    issued = run_billing(runtime).finalized[0]
    world.use("acme", "tokens", SEP + timedelta(days=20), 1000)
    run_billing(runtime)
    assert get_invoice(runtime, issued.id) == issued
    # Not even storage can rewrite it: lines and totals are written only to drafts.
    with runtime.db.write() as conn:
        repo = Invoices(conn)
        tampered = issued.__class__(**{**issued.__dict__, "lines": (), "total_minor": 0})
        assert repo.save_draft(tampered) is False
        assert repo.finalize(tampered) is False
    assert get_invoice(runtime, issued.id) == issued


def test_only_a_finalized_invoice_changes_status(runtime: Runtime) -> None:
    world = _world(runtime)
    world.at(OCT + timedelta(hours=1))
    draft = run_billing(runtime).created[0]
    with pytest.raises(InvalidTransition) as refused:
        change_status(runtime, draft.id, StatusAction.VOID)
    assert refused.value.extra["invoice_status"] == "draft"
    world.at(OCT + timedelta(days=2))
    issued = run_billing(runtime).finalized[0]
    paid = change_status(runtime, issued.id, StatusAction.PAY)
    assert paid.status is InvoiceStatus.PAID and paid.paid_us == to_us(runtime.clock.now())
    assert (paid.lines, paid.total_minor, paid.number) == (
        issued.lines,
        issued.total_minor,
        issued.number,
    )
    for action in StatusAction:
        with pytest.raises(InvalidTransition):
            change_status(runtime, issued.id, action)


def test_a_run_cannot_be_dated_in_the_future(runtime: Runtime) -> None:
    with pytest.raises(InvalidInput):
        run_billing(runtime, runtime.clock.now() + timedelta(seconds=1))


def test_a_run_as_of_an_earlier_instant_bills_what_had_ended_then(runtime: Runtime) -> None:
    _world(runtime).at(NOV + timedelta(days=10))
    report = run_billing(runtime, OCT + timedelta(days=3))
    assert [(i.period_start_us, i.issued_us) for i in report.finalized] == [
        (to_us(SEP), to_us(OCT + timedelta(days=3)))
    ]


def test_a_run_reports_its_progress_chunk_by_chunk(runtime: Runtime) -> None:
    world = World(runtime).at(SEP).meter("tokens", "sum").plan("base", **PLAN)
    for n in range(5):
        world.customer(f"c{n}").subscribe(f"c{n}", "base", SEP)
    world.at(datetime(2026, 11, 15, 12, tzinfo=UTC))
    seen: list[tuple[int, int]] = []
    run_billing(runtime, chunk=2, progress=lambda done, total: seen.append((done, total)))
    assert seen == [(2, 5), (4, 5), (5, 5)]
