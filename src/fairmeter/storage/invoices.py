"""Invoices and their numbering: the questions billing asks, and the only writes it makes.

Immutability is enforced here too: lines and totals are only ever written by statements
that match `status = 'draft'`, so no code path can change a finalized invoice's amounts."""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from decimal import Decimal
from typing import Any, NamedTuple

from sqlalchemy import bindparam, func, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection, RowMapping

from fairmeter.domain.invoices import Invoice, InvoiceKind, InvoiceLine, InvoiceStatus
from fairmeter.storage.tables import customers, invoice_series, invoices, subscriptions

_DRAFT = InvoiceStatus.DRAFT.value
_CHUNK = 500


class Invoices:
    def __init__(self, conn: Connection):
        self.conn = conn
        self.dialect = conn.dialect.name

    # --- writes -------------------------------------------------------------------------
    # Statements are built once with bind parameters: SQLAlchemy then reuses their
    # compiled form, which matters when a run writes thousands of invoices.
    def insert_new(self, found: Sequence[Invoice]) -> set[str]:
        """Insert each invoice unless one exists for its (subscription, period, kind,
        sequence); returns the ids actually inserted. A concurrent run loses quietly."""
        inserted: set[str] = set()
        statement = _INSERT[self.dialect]
        for invoice in found:
            row = self.conn.execute(statement, _values(invoice)).first()
            if row is not None:
                inserted.add(row[0])
        return inserted

    def save_draft(self, invoice: Invoice) -> bool:
        """Rewrite a draft's lines; False when it is no longer a draft."""
        values = {k: v for k, v in _values(invoice).items() if k in _DRAFT_FIELDS}
        done = self.conn.execute(_SAVE_DRAFT, {"_id": invoice.id, **values})
        return done.rowcount == 1

    def finalize(self, invoice: Invoice) -> bool:
        """Store a draft as finalized (lines, number, dates, parties), if still a draft."""
        values = {k: v for k, v in _values(invoice).items() if k in _ISSUE_FIELDS}
        done = self.conn.execute(_FINALIZE, {"_id": invoice.id, **values})
        return done.rowcount == 1

    def change_status(self, invoice_id: str, status: InvoiceStatus, now_us: int) -> bool:
        """Move a finalized invoice to paid, void or uncollectible (nothing else changes)."""
        c = invoices.c
        stamp = {
            InvoiceStatus.PAID: "paid_us",
            InvoiceStatus.VOID: "voided_us",
            InvoiceStatus.UNCOLLECTIBLE: "uncollectible_us",
        }[status]
        done = self.conn.execute(
            update(invoices)
            .where(c.id == invoice_id, c.status == InvoiceStatus.FINALIZED.value)
            .values(status=status.value, updated_us=now_us, **{stamp: now_us})
        )
        return done.rowcount == 1

    def take_number(self, series: str) -> int:
        """The next number of `series`, taken under the row's lock until the transaction
        ends: a rollback gives it back, so numbers have no gaps."""
        self.conn.execute(_NEW_SERIES[self.dialect], {"series": series})
        taken = self.conn.execute(_TAKE_NUMBER, {"_series": series}).scalar_one()
        return int(taken) - 1

    def lock_subscriptions(self, ids: Sequence[str]) -> None:
        """Serialize billing per subscription (PostgreSQL; SQLite writers are serialized
        already). Locked in id order, so two runs never wait on each other in a cycle."""
        if self.dialect != "postgresql" or not ids:
            return
        s = subscriptions.c
        for start in range(0, len(ids), _CHUNK):
            chunk = sorted(ids)[start : start + _CHUNK]
            query = select(s.id).where(s.id.in_(chunk)).order_by(s.id).with_for_update()
            self.conn.execute(query).all()

    # --- reads --------------------------------------------------------------------------
    def by_id(self, invoice_id: str, *, lock: bool = False) -> Invoice | None:
        query = select(invoices).where(invoices.c.id == invoice_id)
        if lock and self.dialect == "postgresql":
            query = query.with_for_update()
        row = self.conn.execute(query).mappings().first()
        return _invoice(row) if row else None

    def of_subscriptions(
        self, ids: Iterable[str], since_end_us: int = 0
    ) -> dict[str, list[Invoice]]:
        """Each subscription's invoices of periods ending after `since_end_us`, in the order
        they bill a period: by period, its threshold invoices before its period invoice."""
        found: dict[str, list[Invoice]] = {}
        wanted = sorted(set(ids))
        c = invoices.c
        for start in range(0, len(wanted), _CHUNK):
            chunk = wanted[start : start + _CHUNK]
            query = select(invoices).where(
                c.subscription_id.in_(chunk), c.period_end_us > since_end_us
            )
            for row in self.conn.execute(query).mappings():
                found.setdefault(row["subscription_id"], []).append(_invoice(row))
        for listed in found.values():
            listed.sort(key=billing_order)
        return found

    def last_issued_period_ends(self, ids: Iterable[str]) -> dict[str, int]:
        """Per subscription, the end of its latest period whose period invoice is issued."""
        c = invoices.c
        found: dict[str, int] = {}
        wanted = sorted(set(ids))
        for start in range(0, len(wanted), _CHUNK):
            query = (
                select(c.subscription_id, func.max(c.period_end_us))
                .where(
                    c.subscription_id.in_(wanted[start : start + _CHUNK]),
                    c.kind == InvoiceKind.PERIOD.value,
                    c.status != _DRAFT,
                )
                .group_by(c.subscription_id)
            )
            found.update({row[0]: int(row[1]) for row in self.conn.execute(query)})
        return found

    def page(
        self, customer: str | None, status: str | None, after: str | None, limit: int
    ) -> list[Invoice]:
        c = invoices.c
        query = select(invoices).order_by(c.id).limit(limit)
        if customer is not None:
            query = query.where(c.customer_key == customer)
        if status is not None:
            query = query.where(c.status == status)
        if after:
            query = query.where(c.id > after)
        return [_invoice(row) for row in self.conn.execute(query).mappings()]


_DRAFT_FIELDS = (
    "lines",
    "total_minor",
    "covers_until_us",
    "period_end_us",
    "finalize_after_us",
    "updated_us",
)
_ISSUE_FIELDS = (
    *_DRAFT_FIELDS,
    *("status", "series", "number", "issued_us", "due_us", "finalized_us", "seller", "buyer"),
)
_INSERT = {
    name: module.insert(invoices).on_conflict_do_nothing().returning(invoices.c.id)
    for name, module in (("postgresql", postgresql), ("sqlite", sqlite))
}
_SAVE_DRAFT = (
    update(invoices)
    .where(invoices.c.id == bindparam("_id"), invoices.c.status == _DRAFT)
    .values({name: bindparam(name) for name in _DRAFT_FIELDS})
)
_FINALIZE = (
    update(invoices)
    .where(invoices.c.id == bindparam("_id"), invoices.c.status == _DRAFT)
    .values({name: bindparam(name) for name in _ISSUE_FIELDS})
)
_NEW_SERIES = {
    name: module.insert(invoice_series)
    .values(series=bindparam("series"), next_number=1)
    .on_conflict_do_nothing()
    for name, module in (("postgresql", postgresql), ("sqlite", sqlite))
}
_TAKE_NUMBER = (
    update(invoice_series)
    .where(invoice_series.c.series == bindparam("_series"))
    .values(next_number=invoice_series.c.next_number + 1)
    .returning(invoice_series.c.next_number)
)


def billing_order(invoice: Invoice) -> tuple[int, int, int]:
    return invoice.period_start_us, invoice.kind is InvoiceKind.PERIOD, invoice.sequence


def _json(value: Any) -> str | None:
    return None if value is None else json.dumps(value, sort_keys=True)


def _lines_json(lines: Iterable[InvoiceLine]) -> str:
    return json.dumps([line.as_dict() for line in lines], separators=(",", ":"))


def _values(invoice: Invoice) -> dict[str, object]:
    return {
        "id": invoice.id,
        "subscription_id": invoice.subscription_id,
        "customer_key": invoice.customer_key,
        "kind": invoice.kind.value,
        "period_start_us": invoice.period_start_us,
        "period_end_us": invoice.period_end_us,
        "sequence": invoice.sequence,
        "covers_until_us": invoice.covers_until_us,
        "status": invoice.status.value,
        "currency": invoice.currency,
        "rounding": invoice.rounding,
        "lines": _lines_json(invoice.lines),
        "total_minor": invoice.total_minor,
        "series": invoice.series,
        "number": invoice.number,
        "issued_us": invoice.issued_us,
        "due_us": invoice.due_us,
        "finalize_after_us": invoice.finalize_after_us,
        "finalized_us": invoice.finalized_us,
        "seller": _json(invoice.seller),
        "buyer": _json(invoice.buyer),
        "created_us": invoice.created_us,
        "updated_us": invoice.updated_us,
    }


def _invoice(row: RowMapping) -> Invoice:
    lines = tuple(InvoiceLine.from_dict(raw) for raw in json.loads(row["lines"]))
    return Invoice(
        id=row["id"],
        subscription_id=row["subscription_id"],
        customer_key=row["customer_key"],
        kind=InvoiceKind(row["kind"]),
        period_start_us=row["period_start_us"],
        period_end_us=row["period_end_us"],
        sequence=row["sequence"],
        covers_until_us=row["covers_until_us"],
        status=InvoiceStatus(row["status"]),
        currency=row["currency"],
        rounding=row["rounding"],
        lines=lines,
        total_minor=row["total_minor"],
        finalize_after_us=row["finalize_after_us"],
        created_us=row["created_us"],
        updated_us=row["updated_us"],
        series=row["series"],
        number=row["number"],
        issued_us=row["issued_us"],
        due_us=row["due_us"],
        finalized_us=row["finalized_us"],
        paid_us=row["paid_us"],
        voided_us=row["voided_us"],
        uncollectible_us=row["uncollectible_us"],
        seller=json.loads(row["seller"]) if row["seller"] else None,
        buyer=json.loads(row["buyer"]) if row["buyer"] else None,
    )


class CustomerTerms(NamedTuple):
    """What billing needs of a customer: who the buyer is and its overrides of plan terms."""

    key: str
    name: str
    email: str | None
    currency: str
    timezone: str
    invoice_threshold: Decimal | None
    net_terms_days: int | None


def customer_terms(conn: Connection, keys: Iterable[str]) -> dict[str, CustomerTerms]:
    c = customers.c
    wanted = sorted(set(keys))
    found: dict[str, CustomerTerms] = {}
    for start in range(0, len(wanted), _CHUNK):
        query = select(
            c.key, c.name, c.email, c.currency, c.timezone, c.invoice_threshold, c.net_terms_days
        ).where(c.key.in_(wanted[start : start + _CHUNK]))
        for row in conn.execute(query):
            threshold = None if row[5] in (None, "") else Decimal(row[5])
            found[row[0]] = CustomerTerms(*row[:5], threshold, row[6])
    return found
