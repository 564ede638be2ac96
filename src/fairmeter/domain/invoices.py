"""Invoices: what a customer owes for a period (or for part of one), and how it may change.

- An invoice is `draft` while late events may still change it; `finalized` invoices are
  immutable and carry a gapless number of their series; after that only the status moves:
  finalized -> paid | void | uncollectible. Nothing else is a transition (a draft is not
  voided: it is issued first, so that every number of a series is accounted for).
- Numbers: series `FM-<year of issue>`, `FM-2026-000042`, sequential with no gap.
- Lines carry cumulative amounts (see `fairmeter.domain.invoicing`): `amount_minor` =
  `cumulative_minor - billed_before_minor`, and a total is the sum of its lines' amounts.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from enum import StrEnum

from fairmeter.domain.errors import Conflict, FieldError
from fairmeter.domain.numbers import format_optional, format_quantity
from fairmeter.domain.pricing import TierUse

NUMBER_DIGITS = 6


@dataclass(frozen=True)
class BillingSettings:
    """How invoices are issued: the grace before a period invoice is finalized (late events
    still count while it is a draft), who issues them, the numbering prefix, and how often
    a server checks invoice thresholds (0: never; the billing run always does)."""

    grace: timedelta = timedelta(hours=24)
    seller_name: str = "fairmeter"
    seller_address: str = ""
    number_prefix: str = "FM"
    threshold_check_seconds: int = 60

    def __post_init__(self) -> None:
        if self.grace < timedelta(0):
            raise ValueError("the grace period is not negative")
        if not 1 <= len(self.number_prefix) <= 8 or not self.number_prefix.isalnum():
            raise ValueError("an invoice number prefix is 1 to 8 letters or digits")

    def seller(self) -> dict[str, object]:
        return {"name": self.seller_name, "address": self.seller_address}


class InvoiceStatus(StrEnum):
    DRAFT = "draft"
    FINALIZED = "finalized"
    PAID = "paid"
    VOID = "void"
    UNCOLLECTIBLE = "uncollectible"


class InvoiceKind(StrEnum):
    PERIOD = "period"
    THRESHOLD = "threshold"


class LineKind(StrEnum):
    BASE_FEE = "base_fee"
    BASE_FEE_CREDIT = "base_fee_credit"
    USAGE = "usage"
    LATE_USAGE = "late_usage"
    LATE_DROPPED = "late_dropped"


class StatusAction(StrEnum):
    PAY = "pay"
    VOID = "void"
    MARK_UNCOLLECTIBLE = "mark-uncollectible"


_TARGET = {
    StatusAction.PAY: InvoiceStatus.PAID,
    StatusAction.VOID: InvoiceStatus.VOID,
    StatusAction.MARK_UNCOLLECTIBLE: InvoiceStatus.UNCOLLECTIBLE,
}


class InvalidTransition(Conflict):
    code = "invalid_transition"
    title = "The invoice's status does not allow this"


def transition(invoice_id: str, status: InvoiceStatus, action: StatusAction) -> InvoiceStatus:
    """The status after `action`; only a finalized invoice changes status."""
    if status is not InvoiceStatus.FINALIZED:
        raise InvalidTransition(
            f"invoice {invoice_id} is {status.value}; only a finalized invoice can be "
            f"marked {_TARGET[action].value}",
            errors=(FieldError("/status", f"is {status.value}", "invalid_transition"),),
            invoice_status=status.value,
        )
    return _TARGET[action]


def series_of(issued: datetime, prefix: str = "FM") -> str:
    """The series an invoice issued at `issued` is numbered in: one per prefix and UTC year."""
    if issued.tzinfo is None:
        raise ValueError("an issue date is timezone-aware")
    return f"{prefix}-{issued.year:04d}"


def format_number(series: str, number: int) -> str:
    if number < 1:
        raise ValueError("invoice numbers start at 1")
    return f"{series}-{number:0{NUMBER_DIGITS}d}"


@dataclass(frozen=True)
class InvoiceLine:
    """One line. `key` names what it prices inside its origin period (the segment's start
    and the meter, or the base fee), so the invoices of a period can be added up per key.
    `quantity` and `events` are cumulative over [origin start, covered until); the
    `*_before` fields are what earlier invoices had already covered of the same key."""

    key: str
    kind: LineKind
    description: str
    meter: str | None
    plan_key: str
    plan_version: int
    origin_start_us: int
    origin_end_us: int
    quantity: Decimal
    events: int
    included: Decimal
    included_left: Decimal
    billable: Decimal
    unit_price: Decimal | None
    tiers: tuple[TierUse, ...]
    bounded_by: str | None
    amount_exact: Decimal
    cumulative_minor: int
    billed_before_minor: int = 0
    quantity_before: Decimal = Decimal(0)
    events_before: int = 0

    @property
    def amount_minor(self) -> int:
        return self.cumulative_minor - self.billed_before_minor

    @property
    def new_events(self) -> int:
        return self.events - self.events_before

    def as_dict(self) -> dict[str, object]:
        return {
            "key": self.key,
            "kind": self.kind.value,
            "description": self.description,
            "meter": self.meter,
            "plan_key": self.plan_key,
            "plan_version": self.plan_version,
            "origin_start_us": self.origin_start_us,
            "origin_end_us": self.origin_end_us,
            "quantity": format_quantity(self.quantity),
            "events": self.events,
            "included": format_quantity(self.included),
            "included_left": format_quantity(self.included_left),
            "billable": format_quantity(self.billable),
            "unit_price": format_optional(self.unit_price),
            "tiers": [_tier_dict(t) for t in self.tiers],
            "bounded_by": self.bounded_by,
            "amount_exact": format(self.amount_exact, "f"),
            "cumulative_minor": self.cumulative_minor,
            "billed_before_minor": self.billed_before_minor,
            "quantity_before": format_quantity(self.quantity_before),
            "events_before": self.events_before,
        }

    @classmethod
    def from_dict(cls, raw: Mapping[str, object]) -> InvoiceLine:
        tiers = raw.get("tiers") or []
        assert isinstance(tiers, list)
        return cls(
            key=str(raw["key"]),
            kind=LineKind(str(raw["kind"])),
            description=str(raw["description"]),
            meter=None if raw.get("meter") is None else str(raw["meter"]),
            plan_key=str(raw["plan_key"]),
            plan_version=_int(raw["plan_version"]),
            origin_start_us=_int(raw["origin_start_us"]),
            origin_end_us=_int(raw["origin_end_us"]),
            quantity=Decimal(str(raw["quantity"])),
            events=_int(raw["events"]),
            included=Decimal(str(raw["included"])),
            included_left=Decimal(str(raw["included_left"])),
            billable=Decimal(str(raw["billable"])),
            unit_price=_decimal(raw.get("unit_price")),
            tiers=tuple(_tier(t) for t in tiers),
            bounded_by=None if raw.get("bounded_by") is None else str(raw["bounded_by"]),
            amount_exact=Decimal(str(raw["amount_exact"])),
            cumulative_minor=_int(raw["cumulative_minor"]),
            billed_before_minor=_int(raw["billed_before_minor"]),
            quantity_before=Decimal(str(raw["quantity_before"])),
            events_before=_int(raw["events_before"]),
        )


def _int(raw: object) -> int:
    if isinstance(raw, bool) or not isinstance(raw, int):
        raise ValueError(f"expected an integer, got {raw!r}")
    return raw


def _decimal(raw: object) -> Decimal | None:
    return None if raw is None else Decimal(str(raw))


def _tier_dict(use: TierUse) -> dict[str, object]:
    return {
        "lower": format_quantity(use.lower),
        "upper": format_optional(use.upper),
        "units": format_quantity(use.units),
        "unit_price": format_optional(use.unit_price),
        "flat_fee": format_quantity(use.flat_fee),
        "amount": format(use.amount, "f"),
        "packages": use.packages,
    }


def _tier(raw: object) -> TierUse:
    assert isinstance(raw, Mapping)
    packages = raw.get("packages")
    return TierUse(
        lower=Decimal(str(raw["lower"])),
        upper=_decimal(raw.get("upper")),
        units=Decimal(str(raw["units"])),
        unit_price=_decimal(raw.get("unit_price")),
        flat_fee=Decimal(str(raw["flat_fee"])),
        amount=Decimal(str(raw["amount"])),
        packages=None if packages is None else _int(packages),
    )


def total_of(lines: Sequence[InvoiceLine]) -> int:
    """An invoice total: the sum of its lines' rounded amounts."""
    return sum(line.amount_minor for line in lines)


@dataclass(frozen=True)
class LateEvents:
    """Late events an invoice accounts for: billed as adjustments, or dropped as too old."""

    billed: int
    dropped: int


def late_events(lines: Sequence[InvoiceLine]) -> LateEvents:
    billed = sum(line.new_events for line in lines if line.kind is LineKind.LATE_USAGE)
    dropped = sum(line.new_events for line in lines if line.kind is LineKind.LATE_DROPPED)
    return LateEvents(billed, dropped)


@dataclass(frozen=True)
class Invoice:
    id: str
    subscription_id: str
    customer_key: str
    kind: InvoiceKind
    period_start_us: int
    period_end_us: int
    sequence: int
    covers_until_us: int
    status: InvoiceStatus
    currency: str
    rounding: str
    lines: tuple[InvoiceLine, ...]
    total_minor: int
    finalize_after_us: int
    created_us: int
    updated_us: int
    series: str = ""
    number: str | None = None
    issued_us: int | None = None
    due_us: int | None = None
    finalized_us: int | None = None
    paid_us: int | None = None
    voided_us: int | None = None
    uncollectible_us: int | None = None
    seller: Mapping[str, object] | None = None
    buyer: Mapping[str, object] | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "kind", InvoiceKind(self.kind))
        object.__setattr__(self, "status", InvoiceStatus(self.status))
        object.__setattr__(self, "lines", tuple(self.lines))
        if self.total_minor != total_of(self.lines):
            raise ValueError("an invoice total is the sum of its lines")
        if (self.number is None) != (self.status is InvoiceStatus.DRAFT):
            raise ValueError("an invoice has a number exactly when it is not a draft")

    @property
    def is_draft(self) -> bool:
        return self.status is InvoiceStatus.DRAFT

    @property
    def late(self) -> LateEvents:
        return late_events(self.lines)
