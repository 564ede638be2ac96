"""Invoices after they are drafted: issuing (finalize), status changes, reading them back."""

from __future__ import annotations

import secrets
from dataclasses import replace

from fairmeter.domain.errors import NotFound
from fairmeter.domain.invoices import (
    BillingSettings,
    Invoice,
    InvoiceStatus,
    StatusAction,
    format_number,
    series_of,
    transition,
)
from fairmeter.domain.invoicing import DAY_US
from fairmeter.domain.windows import from_us, to_us
from fairmeter.services import catalog
from fairmeter.services.billing_accounts import Account
from fairmeter.services.notices import enqueue_issued
from fairmeter.services.runtime import Runtime
from fairmeter.storage.invoices import Invoices


def new_invoice_id(now_us: int) -> str:
    """Ids sort by creation: 'in_' + creation time (hex microseconds) + randomness."""
    return f"in_{now_us:013x}{secrets.token_hex(6)}"


def issue(
    repo: Invoices,
    invoice: Invoice,
    account: Account,
    settings: BillingSettings,
    at_us: int,
    *,
    stored: bool = True,
) -> Invoice:
    """Finalize a draft at `at_us`: the next number of the year's series (taken in this
    transaction, so a rollback leaves no gap), issue and due dates, the parties as of now.
    A draft not `stored` yet is inserted already issued."""
    series = series_of(from_us(at_us), settings.number_prefix)
    number = format_number(series, repo.take_number(series))
    customer = account.customer
    issued = replace(
        invoice,
        status=InvoiceStatus.FINALIZED,
        series=series,
        number=number,
        issued_us=at_us,
        due_us=at_us + account.net_terms_days(invoice.period_start_us) * DAY_US,
        finalized_us=at_us,
        updated_us=max(at_us, invoice.updated_us),
        seller=settings.seller(),
        buyer={
            "key": customer.key,
            "name": customer.name,
            "email": customer.email,
            "timezone": customer.timezone,
        },
    )
    if (stored and repo.finalize(issued)) or (not stored and repo.insert_new([issued])):
        # "invoice.issued" is queued in this transaction: a rolled-back issue tells nobody.
        enqueue_issued(repo.conn, issued, at_us)
        return issued
    # Under the subscription lock no other writer can have issued it; should one have,
    # raising rolls the taken number back, so the series keeps no gap.
    raise RuntimeError(f"invoice {invoice.id} could not be issued: its period has one")


def change_status(rt: Runtime, invoice_id: str, action: StatusAction) -> Invoice:
    """pay, void or mark-uncollectible a finalized invoice (409 invalid_transition else)."""
    now_us = to_us(rt.clock.now())
    with rt.db.write() as conn:
        repo = Invoices(conn)
        invoice = _found(repo.by_id(invoice_id, lock=True), invoice_id)
        target = transition(invoice.id, invoice.status, action)
        repo.change_status(invoice.id, target, now_us)
        changed = repo.by_id(invoice.id)
    assert changed is not None
    return changed


def get_invoice(rt: Runtime, invoice_id: str) -> Invoice:
    with rt.db.read() as conn:
        return _found(Invoices(conn).by_id(invoice_id), invoice_id)


def list_invoices(
    rt: Runtime,
    customer: str | None = None,
    status: InvoiceStatus | None = None,
    after: str | None = None,
    limit: int = 100,
) -> list[Invoice]:
    with rt.db.read() as conn:
        state = None if status is None else status.value
        return Invoices(conn).page(customer, state, after, limit)


def invoice_buyer(rt: Runtime, invoice: Invoice) -> dict[str, object]:
    """Who an invoice is addressed to: as issued, or for a draft the customer as it is now.
    The issued snapshot holds no locale (it is how numbers are written, not what the invoice
    says), so the customer's current locale fills it in."""
    if invoice.buyer is not None and "locale" in invoice.buyer:
        return dict(invoice.buyer)
    try:
        c = catalog.get_customer(rt.db, invoice.customer_key)
    except NotFound:
        return {"key": invoice.customer_key, **(invoice.buyer or {})}
    if invoice.buyer is not None:
        return {**invoice.buyer, "locale": c.locale}
    return {
        "key": c.key,
        "name": c.name,
        "email": c.email,
        "timezone": c.timezone,
        "locale": c.locale,
    }


def _found(invoice: Invoice | None, invoice_id: str) -> Invoice:
    if invoice is None:
        raise NotFound(f"no invoice with id {invoice_id!r}")
    return invoice
