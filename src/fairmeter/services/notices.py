"""Invoice notices: "invoice issued" in the transaction that issues it, and "invoice past
due" once per invoice, swept by the delivery worker."""

from __future__ import annotations

from sqlalchemy.engine import Connection

from fairmeter.domain.invoices import Invoice, InvoiceStatus
from fairmeter.domain.money import Money
from fairmeter.domain.windows import format_instant
from fairmeter.services.notifications import NewNotification, enqueue
from fairmeter.services.runtime import Runtime
from fairmeter.storage import notifications as store
from fairmeter.storage.invoices import Invoices

_SWEEP_BATCH = 200


def invoice_details(invoice: Invoice) -> dict[str, object]:
    return {
        "invoice_id": invoice.id,
        "invoice_number": invoice.number,
        "invoice_kind": invoice.kind.value,
        "amount": str(Money(invoice.total_minor, invoice.currency).as_decimal()),
        "currency": invoice.currency,
        "period_start": format_instant(invoice.period_start_us),
        "period_end": format_instant(invoice.period_end_us),
        "due_at": None if invoice.due_us is None else format_instant(invoice.due_us),
    }


def enqueue_issued(conn: Connection, invoice: Invoice, at_us: int) -> str | None:
    """In the issuing transaction: a rolled-back issue tells nobody."""
    total = Money(invoice.total_minor, invoice.currency).format()
    return enqueue(
        conn,
        NewNotification(
            customer=invoice.customer_key,
            kind="invoice.issued",
            dedupe_key=f"invoice.issued:{invoice.id}",
            title=f"Invoice {invoice.number} issued: {total}",
            details=invoice_details(invoice),
            period_start_us=invoice.period_start_us,
            period_end_us=invoice.period_end_us,
        ),
        at_us,
    )


def sweep_past_due(rt: Runtime, now_us: int) -> int:
    """Tell each finalized, unpaid invoice whose due date has passed, once; returns how
    many were told now. Reads first: an idle sweep takes no write lock."""
    with rt.db.read() as conn:
        found = store.past_due_untold(conn, now_us, _SWEEP_BATCH)
    if not found:
        return 0
    count = 0
    with rt.db.write() as conn:
        for invoice_id in found:
            invoice = Invoices(conn).by_id(invoice_id)
            if invoice is not None and invoice.status is InvoiceStatus.FINALIZED:
                count += enqueue(conn, _past_due(invoice), now_us) is not None
    return count


def _past_due(invoice: Invoice) -> NewNotification:
    total = Money(invoice.total_minor, invoice.currency).format()
    return NewNotification(
        customer=invoice.customer_key,
        kind="invoice.past_due",
        dedupe_key=f"invoice.past_due:{invoice.id}",
        title=f"Invoice {invoice.number} is past due: {total}",
        details=invoice_details(invoice),
        period_start_us=invoice.period_start_us,
        period_end_us=invoice.period_end_us,
    )
