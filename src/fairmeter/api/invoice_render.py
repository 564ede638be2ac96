"""Invoices as JSON, and as the document a customer receives (HTML here, PDF in
invoice_pdf.py). Both documents are drawn from one `InvoiceView`, so they say the same.

The documents speak the buyer's locale (CLDR via Babel): "$6,841.67" for en_US, "6.841,67 €"
for es_ES, "￥7,500" for ja_JP, always with the currency's own decimals; the currency code
is in the header. The JSON keeps locale-free decimal strings. Dates are on the buyer's
clock (its time zone when the invoice was issued) and ISO-formatted in every locale."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from functools import cache
from pathlib import Path
from zoneinfo import ZoneInfo

from babel.numbers import format_currency, format_decimal
from jinja2 import Environment, FileSystemLoader, select_autoescape

from fairmeter.api.render import money, tier_use
from fairmeter.domain.customers import DEFAULT_LOCALE
from fairmeter.domain.invoices import Invoice, InvoiceKind, InvoiceLine
from fairmeter.domain.money import Money
from fairmeter.domain.numbers import format_quantity
from fairmeter.domain.pricing import TierUse
from fairmeter.domain.windows import format_instant, from_us

TEMPLATES = Path(__file__).resolve().parent / "templates"


def _span(start_us: int, end_us: int) -> dict[str, str | None]:
    return {"from": format_instant(start_us), "to": format_instant(end_us)}


def invoice_line(line: InvoiceLine, currency: str) -> dict[str, object]:
    """`amount` is what this invoice bills; `cumulative_amount` what the quantity costs in
    the whole period so far, of which `billed_before` was on earlier invoices."""
    return {
        "kind": line.kind.value,
        "description": line.description,
        "meter": line.meter,
        "plan": {"key": line.plan_key, "version": line.plan_version},
        "period": _span(line.origin_start_us, line.origin_end_us),
        "quantity": format_quantity(line.quantity),
        "quantity_before": format_quantity(line.quantity_before),
        "events": line.events,
        "included": format_quantity(line.included),
        "included_left": format_quantity(line.included_left),
        "billable": format_quantity(line.billable),
        "unit_price": None if line.unit_price is None else format_quantity(line.unit_price),
        "tiers": [tier_use(use) for use in line.tiers],
        "bounded_by": line.bounded_by,
        "exact_amount": format(line.amount_exact, "f"),
        "cumulative_amount": money(line.cumulative_minor, currency),
        "billed_before": money(line.billed_before_minor, currency),
        "amount": money(line.amount_minor, currency),
        "amount_minor": line.amount_minor,
    }


def invoice_json(invoice: Invoice) -> dict[str, object]:
    currency = invoice.currency
    late = invoice.late
    return {
        "id": invoice.id,
        "number": invoice.number,
        "series": invoice.series or None,
        "status": invoice.status.value,
        "kind": invoice.kind.value,
        "sequence": invoice.sequence,
        "customer": invoice.customer_key,
        "subscription": invoice.subscription_id,
        "currency": currency,
        "rounding": invoice.rounding,
        "period": _span(invoice.period_start_us, invoice.period_end_us),
        "covers_until": format_instant(invoice.covers_until_us),
        "issued_at": format_instant(invoice.issued_us),
        "due_at": format_instant(invoice.due_us),
        "finalize_after": format_instant(invoice.finalize_after_us),
        "finalized_at": format_instant(invoice.finalized_us),
        "paid_at": format_instant(invoice.paid_us),
        "voided_at": format_instant(invoice.voided_us),
        "uncollectible_at": format_instant(invoice.uncollectible_us),
        "created_at": format_instant(invoice.created_us),
        "lines": [invoice_line(line, currency) for line in invoice.lines],
        "subtotal": money(invoice.total_minor, currency),
        "subtotal_minor": invoice.total_minor,
        "total": money(invoice.total_minor, currency),
        "total_minor": invoice.total_minor,
        "late_events": {"billed": late.billed, "dropped": late.dropped},
        "seller": dict(invoice.seller) if invoice.seller else None,
        "buyer": dict(invoice.buyer) if invoice.buyer else None,
        "links": {
            "html": f"/v1/invoices/{invoice.id}.html",
            "pdf": f"/v1/invoices/{invoice.id}.pdf",
        },
    }


@dataclass(frozen=True)
class LineView:
    description: str
    period: str
    quantity: str
    included: str
    unit_price: str
    tiers: tuple[str, ...]
    amount: str
    note: str


@dataclass(frozen=True)
class InvoiceView:
    """Everything a rendered invoice shows, as display text."""

    title: str
    number: str
    status: str
    seller_name: str
    seller_address: tuple[str, ...]
    buyer_name: str
    buyer_lines: tuple[str, ...]
    issued: str
    due: str
    period: str
    covers_until: str | None
    currency: str
    locale: str
    lines: tuple[LineView, ...]
    subtotal: str
    total: str
    late_note: str | None


def grouped(value: Decimal | int, locale: str = DEFAULT_LOCALE) -> str:
    """A quantity grouped the locale's way, every digit kept: 4,500,000 or 1.234,5 (de_DE)."""
    exact = Decimal(format_quantity(Decimal(value)))
    return format_decimal(exact, locale=locale, decimal_quantization=False)


def amount_text(minor: int, currency: str) -> str:
    """Locale-neutral ("USD 7,000.00"): for lists that mix customers, such as the CLI's."""
    return Money(minor, currency).format()


def localized_amount(minor: int, currency: str, locale: str) -> str:
    """The amount as the locale writes it. The digits are the rounded amount's (our
    currency table's decimals), never re-rounded to CLDR's idea of the currency."""
    amount = Money(minor, currency).as_decimal()
    return format_currency(amount, currency, locale=locale, decimal_quantization=False)


def _date(micros: int | None, zone: ZoneInfo) -> str:
    return "-" if micros is None else from_us(micros).astimezone(zone).strftime("%Y-%m-%d")


def _tier_text(use: TierUse, locale: str) -> str:
    def num(value: Decimal | int) -> str:
        return grouped(value, locale)

    band = f"{num(use.lower)} - {'' if use.upper is None else num(use.upper)}"
    if use.packages is not None:
        what = f"{num(use.packages)} package(s) x {num(use.unit_price or Decimal(0))}"
    elif use.unit_price is not None:
        what = f"{num(use.units)} x {num(use.unit_price)}"
    else:
        what = f"{num(use.units)} units"
    fee = f" + {num(use.flat_fee)} flat" if use.flat_fee else ""
    return f"{band}: {what}{fee} = {num(use.amount)}"


def _line_view(line: InvoiceLine, invoice: Invoice, zone: ZoneInfo, locale: str) -> LineView:
    def amount(minor: int) -> str:
        return localized_amount(minor, invoice.currency, locale)

    notes = []
    if line.billed_before_minor:
        notes.append(
            f"of {amount(line.cumulative_minor)} for {grouped(line.quantity, locale)}, "
            f"{amount(line.billed_before_minor)} ({grouped(line.quantity_before, locale)})"
            " billed before"
        )
    if line.bounded_by:
        notes.append(f"{line.bounded_by} applied")
    return LineView(
        description=line.description,
        period=f"{_date(line.origin_start_us, zone)} - {_date(line.origin_end_us, zone)}",
        quantity=grouped(line.quantity, locale),
        included="" if line.meter is None else grouped(line.included, locale),
        unit_price="" if line.unit_price is None else grouped(line.unit_price, locale),
        tiers=tuple(_tier_text(use, locale) for use in line.tiers),
        amount=amount(line.amount_minor),
        note="; ".join(notes),
    )


def invoice_view(invoice: Invoice, buyer: Mapping[str, object]) -> InvoiceView:
    """`buyer`: the invoice's snapshot when issued, else the customer as it is now; its
    `locale` (see services.invoices.invoice_buyer) picks how numbers are written."""
    zone = ZoneInfo(str(buyer.get("timezone") or "UTC"))
    locale = str(buyer.get("locale") or DEFAULT_LOCALE)
    seller = invoice.seller or {}
    kind = "Invoice" if invoice.kind is InvoiceKind.PERIOD else "Threshold invoice"
    number = invoice.number or "DRAFT"
    contact = [str(buyer[k]) for k in ("email", "key") if buyer.get(k)]
    late = invoice.late
    late_note = None
    if late.billed or late.dropped:
        late_note = (
            f"Late events: {late.billed} billed as adjustments, "
            f"{late.dropped} not billed (older than the plan's window)."
        )
    return InvoiceView(
        title=f"{kind} {number}",
        number=number,
        status=invoice.status.value,
        seller_name=str(seller.get("name") or ""),
        seller_address=tuple(str(seller.get("address") or "").splitlines()),
        buyer_name=str(buyer.get("name") or buyer.get("key") or ""),
        buyer_lines=tuple(contact),
        issued=_date(invoice.issued_us, zone),
        due=_date(invoice.due_us, zone),
        period=f"{_date(invoice.period_start_us, zone)} - {_date(invoice.period_end_us, zone)}",
        covers_until=None
        if invoice.kind is InvoiceKind.PERIOD
        else from_us(invoice.covers_until_us).astimezone(zone).strftime("%Y-%m-%d %H:%M"),
        currency=invoice.currency,
        locale=locale,
        lines=tuple(_line_view(line, invoice, zone, locale) for line in invoice.lines),
        subtotal=localized_amount(invoice.total_minor, invoice.currency, locale),
        total=localized_amount(invoice.total_minor, invoice.currency, locale),
        late_note=late_note,
    )


@cache
def _environment() -> Environment:
    return Environment(loader=FileSystemLoader(TEMPLATES), autoescape=select_autoescape(["html"]))


def invoice_html(view: InvoiceView, generated: datetime | None = None) -> str:
    return _environment().get_template("invoice.html").render(invoice=view, generated=generated)
