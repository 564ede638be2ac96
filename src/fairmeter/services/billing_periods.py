"""Which periods of a subscription a run bills, and the lines of a period invoice.

`compose_period` is the one function that prices a period invoice: the billing run and the
recomputation of an issued invoice both call it, with usage read the same way."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta

from fairmeter.domain.invoices import Invoice, InvoiceKind, InvoiceLine
from fairmeter.domain.invoicing import (
    bill_remainder,
    covered_by,
    late_billable,
    late_lines,
    may_have_late_events,
    period_label,
    rate_cumulative,
)
from fairmeter.domain.subscriptions import Subscription
from fairmeter.domain.windows import Span, from_us
from fairmeter.services.billing_accounts import Account, Piece, pieces_of, segment_usages
from fairmeter.services.billing_usage import Measure, MeasureKey


@dataclass(frozen=True)
class Due:
    """A period to bill: its billed part, the whole calendar period (the base of every
    proration), its pieces; for an old period checked for late events, its label and the
    plan's late-event window."""

    period: Span
    calendar: Span
    pieces: list[Piece]
    label: str = ""
    window_days: int = 0


def may_be_due(subscription: Subscription, issued_end_us: int | None, as_of_us: int) -> bool:
    """Whether the period after the last issued one has ended (checked on the stored
    subscription, before its segments are read: most runs find nothing to do for most)."""
    sub = subscription
    start = sub.start_us if issued_end_us is None else max(issued_end_us, sub.start_us)
    if sub.ended_us is not None and (sub.ended_us <= sub.start_us or start >= sub.ended_us):
        return False
    return sub.period_at(from_us(start)).end_us <= as_of_us


def due_periods(account: Account, issued_end_us: int | None, as_of_us: int) -> list[Due]:
    """The periods after the last issued one that ended by `as_of_us`, in order."""
    sub = account.subscription
    if sub.ended_us is not None and sub.ended_us <= sub.start_us:
        return []
    start = sub.start_us if issued_end_us is None else max(issued_end_us, sub.start_us)
    if sub.ended_us is not None and start >= sub.ended_us:
        return []
    period: Span | None = sub.period_at(from_us(start))
    found: list[Due] = []
    while period is not None and period.end_us <= as_of_us:
        calendar = sub.calendar_period_at(period.start)
        found.append(Due(period, calendar, pieces_of(account, period)))
        following = sub.next_period(period)
        period = following if following and following.start_us >= period.end_us else None
    return found


def old_periods(account: Account, invoices: Sequence[Invoice], backdate: timedelta) -> list[Due]:
    """Issued periods that may have received events since the last invoice accounting for
    them was issued (ingest refuses events older than the backdating window)."""
    issued = [invoice for invoice in invoices if not invoice.is_draft]
    found: list[Due] = []
    for invoice in issued:
        if invoice.kind is not InvoiceKind.PERIOD:
            continue
        origin = invoice.period_start_us
        accounted = max(
            i.finalized_us or 0
            for i in issued
            if i is invoice or any(line.origin_start_us == origin for line in i.lines)
        )
        if not may_have_late_events(invoice.period_end_us, accounted, backdate):
            continue
        span = Span(from_us(origin), from_us(invoice.period_end_us))
        plan = account.plan_at(invoice.period_end_us - 1)
        found.append(
            Due(
                span,
                account.subscription.calendar_period_at(span.start),
                pieces_of(account, span),
                period_label(span, account.subscription.zone),
                plan.late_event_window_days,
            )
        )
    return found


def compose_period(
    account: Account,
    due: Due,
    old: Sequence[Due],
    issued_lines: Sequence[InvoiceLine],
    measures: Mapping[MeasureKey, Measure],
    as_of_us: int,
) -> list[InvoiceLine]:
    """The period's lines less what its threshold invoices billed, then an adjustment per
    charge of each old period whose usage changed since it was billed (or a count of the
    late events dropped as too old)."""
    usages = segment_usages(account, due.pieces, due.period.end_us, measures)
    cumulative = rate_cumulative(due.calendar, due.period, usages, base_fee=True)
    lines = bill_remainder(cumulative, covered_by(issued_lines, due.period.start_us))
    for item in old:
        usages = segment_usages(account, item.pieces, item.period.end_us, measures)
        rated = rate_cumulative(item.calendar, item.period, usages, base_fee=False)
        billable = late_billable(item.period.end_us, as_of_us, item.window_days)
        covered = covered_by(issued_lines, item.period.start_us)
        lines.extend(late_lines(rated, covered, item.label, billable))
    return lines
