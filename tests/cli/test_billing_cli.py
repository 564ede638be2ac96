"""`fairmeter bill` and `fairmeter invoices` as a user types them."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

from tests.cli.conftest import Invoke
from tests.services.billing_world import World

from fairmeter.config import Settings
from fairmeter.services.clock import FixedClock
from fairmeter.services.runtime import Runtime
from fairmeter.wiring import build

START = datetime(2026, 1, 1, tzinfo=UTC)


def _subscribed() -> None:
    rt = build(Settings.from_env(), clock=FixedClock(START))
    world = World(rt).meter("calls", "sum").customer("acme", name="Acme Corp")
    world.plan(
        "base",
        base_fee="49",
        charges=[{"meter": "calls", "model": "per_unit", "unit_price": "0.5"}],
    )
    world.subscribe("acme", "base", START)
    world.at(START + timedelta(days=2)).use("acme", "calls", START + timedelta(days=1), 3)
    rt.close()


def test_bill_prints_the_invoices_it_issued_and_invoices_pdf_saves_one(
    cli: Invoke, rt_of_env: Callable[[], Runtime], tmp_path: Path
) -> None:
    _subscribed()
    result = cli("bill", "--as-of", "2026-02-10T00:00:00Z")
    assert result.exit_code == 0, result.output
    assert "FM-2026-000001" in result.output and "USD 50.50" in result.output
    assert "Nothing to bill" in cli("bill", "--as-of", "2026-02-10T00:00:00Z").output
    listed = cli("invoices", "list", "--customer", "acme")
    assert "FM-2026-000001" in listed.output
    with rt_of_env().db.read() as conn:
        invoice_id = conn.exec_driver_sql("SELECT id FROM invoices").scalar()
    shown = cli("invoices", "show", str(invoice_id))
    # `show` is a rendering for people: amounts in the customer's locale (en_US by default).
    assert "calls (per unit)" in shown.output and "$50.50" in shown.output
    target = tmp_path / "invoice.pdf"
    saved = cli("invoices", "pdf", str(invoice_id), "-o", str(target))
    assert saved.exit_code == 0, saved.output
    assert target.read_bytes().startswith(b"%PDF-")


def test_bill_refuses_an_unreadable_as_of(cli: Invoke) -> None:
    result = cli("bill", "--as-of", "next tuesday")
    assert result.exit_code == 1 and "--as-of" in result.output
