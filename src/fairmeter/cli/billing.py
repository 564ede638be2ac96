"""`fairmeter bill` and `fairmeter invoices`: run billing, read invoices, save a PDF."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn
from rich.table import Table

from fairmeter.api.invoice_pdf import invoice_pdf
from fairmeter.api.invoice_render import amount_text, invoice_json, invoice_view
from fairmeter.cli.console import echo, err, fail, note, out, session, table
from fairmeter.domain.errors import InvalidInput
from fairmeter.domain.invoices import Invoice, InvoiceStatus
from fairmeter.domain.windows import from_us, parse_instant
from fairmeter.services.billing import run_billing
from fairmeter.services.invoices import get_invoice, invoice_buyer, list_invoices

app = typer.Typer(help="List and show invoices, save them as PDF.", no_args_is_help=True)

BILL_EPILOG = (
    "Examples:\n\n  fairmeter bill\n\n  fairmeter bill --as-of 2026-12-01T00:00:00Z\n\n"
    "Every period that ended gets one invoice, however often this runs. Invoices stay "
    "drafts for FAIRMETER_INVOICE_GRACE_HOURS (default 24) after their period, then are "
    "issued with a number."
)


def _instant(text: str | None) -> datetime | None:
    if text is None:
        return None
    try:
        return parse_instant(text, "--as-of")
    except InvalidInput as exc:
        raise fail(f"--as-of {text!r}: {exc.errors[0].detail}") from None


@contextmanager
def _progress() -> Iterator[Callable[[int, int], None]]:
    """A live bar on a terminal (a run over many customers takes seconds to minutes)."""
    console = err()
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn())
    live = Progress(*columns, console=console, transient=True, disable=not console.is_terminal)
    with live as bar:
        task = bar.add_task("Billing subscriptions", total=None)

        def advance(done: int, total: int) -> None:
            bar.update(task, completed=done, total=total)

        yield advance


def _date(micros: int | None) -> str:
    return "-" if micros is None else from_us(micros).strftime("%Y-%m-%d")


def _grid(title: str, rows: Iterable[tuple[str, Invoice]]) -> Table:
    grid = table(title, "", "id", "number", "customer", "kind", "period", "status", "total")
    grid.columns[-1].justify = "right"
    for what, i in rows:
        period = f"{_date(i.period_start_us)} - {_date(i.period_end_us)}"
        total = amount_text(i.total_minor, i.currency)
        grid.add_row(
            what, i.id, i.number or "-", i.customer_key, i.kind.value, period, i.status.value, total
        )
    return grid


def bill(
    as_of: str | None = typer.Option(
        None, "--as-of", help="Bill as of this instant (RFC 3339; default now, never later)."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of a table."),
) -> None:
    """Invoice every period that has ended; issue drafts whose grace period is over."""
    with session(options={"/as_of": "--as-of"}) as rt, _progress() as advance:
        report = run_billing(rt, _instant(as_of), progress=advance)
    issued = {i.id for i in report.finalized}
    rows = [("created", i) for i in report.created if i.id not in issued]
    rows += [("updated", i) for i in report.updated]
    rows += [("issued", i) for i in report.finalized]
    rows += [("threshold", i) for i in report.thresholds]
    if as_json:
        echo(json.dumps({"data": [{"action": w, **invoice_json(i)} for w, i in rows]}, indent=2))
        return
    if not rows:
        note(f"Nothing to bill as of {report.as_of.isoformat()}.")
        return
    out().print(_grid(f"Billing run as of {report.as_of.isoformat()}", rows))


@app.command(
    "list", epilog="Example:\n\n  fairmeter invoices list --customer acme --status finalized"
)
def list_(
    customer: str | None = typer.Option(None, "--customer", help="Only this customer's."),
    status: InvoiceStatus | None = typer.Option(None, "--status", help="Only in this status."),
    limit: int = typer.Option(1000, "--limit", min=1, help="At most this many."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of a table."),
) -> None:
    """List invoices, oldest first."""
    with session() as rt:
        found = list_invoices(rt, customer, status, None, limit)
    if as_json:
        echo(json.dumps({"data": [invoice_json(i) for i in found]}, indent=2))
        return
    out().print(_grid("Invoices", (("", i) for i in found)))


@app.command("show", epilog="Example:\n\n  fairmeter invoices show in_0196... --json")
def show(
    invoice_id: str = typer.Argument(..., help="The invoice's id."),
    as_json: bool = typer.Option(False, "--json", help="Print the API's JSON instead."),
) -> None:
    """Show an invoice with its lines."""
    with session() as rt:
        invoice = get_invoice(rt, invoice_id)
        view = invoice_view(invoice, invoice_buyer(rt, invoice))
    if as_json:
        echo(json.dumps(invoice_json(invoice), indent=2))
        return
    grid = table(
        f"{view.title} ({view.status}) for {view.buyer_name}, period {view.period}",
        "description",
        "quantity",
        "included",
        "unit price",
        "amount",
    )
    for column in grid.columns[1:]:
        column.justify = "right"
    for line in view.lines:
        text = "\n".join([line.description, *(f"  {t}" for t in line.tiers)])
        grid.add_row(text, line.quantity, line.included, line.unit_price, line.amount)
    grid.add_row("Total", "", "", "", view.total)
    out().print(grid)
    echo(f"Issued {view.issued}, due {view.due}.")


@app.command("pdf", epilog="Example:\n\n  fairmeter invoices pdf in_0196... -o invoice.pdf")
def pdf(
    invoice_id: str = typer.Argument(..., help="The invoice's id."),
    output: Path = typer.Option(..., "-o", "--output", help="Where to write the PDF."),
) -> None:
    """Save an invoice as a PDF."""
    with session() as rt:
        invoice = get_invoice(rt, invoice_id)
        view = invoice_view(invoice, invoice_buyer(rt, invoice))
    output.write_bytes(invoice_pdf(view, from_us(invoice.issued_us or invoice.updated_us)))
    echo(f"Wrote {view.title} to {output}.")
