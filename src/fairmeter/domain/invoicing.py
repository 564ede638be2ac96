"""The rules that turn rated usage into invoice lines, across the invoices of one period.

Cumulative billing (threshold invoices and late events rest on it): every invoice that
bills part of a period prices the period's usage *so far* per key (a segment's charge), rounds
that cumulative amount once, and bills the difference from what earlier invoices of the
period billed under the same key:

    threshold invoice k:   round(rate(usage up to t_k)) - billed before
    period invoice:        round(rate(usage of the whole period)) - billed before
    late adjustment:       round(rate(usage of the period now)) - billed before

The differences telescope: whatever the number of invoices, they add up per key to
round(rate(full usage)), exactly what a single invoice would have charged, in minor units.
A difference may be negative (volume pricing can fall as usage grows): it is a credit.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

from fairmeter.domain.invoices import InvoiceLine, LineKind
from fairmeter.domain.money import minor_unit_exponent
from fairmeter.domain.numbers import EXACT
from fairmeter.domain.plans import Plan
from fairmeter.domain.segments_rating import SegmentLine, rate_segments
from fairmeter.domain.windows import Span

ZERO = Decimal(0)
DAY_US = 86_400 * 1_000_000


@dataclass(frozen=True)
class SegmentUsage:
    """One segment inside a period: the plan in force over `span` (an open segment runs to
    the period's end), and per meter the usage and event count measured so far."""

    span: Span
    plan: Plan
    usage: Mapping[str, Decimal]
    events: Mapping[str, int]


@dataclass(frozen=True)
class Covered:
    """What the invoices of a period already did under one key: amount billed, and the
    quantity and event count they had taken into account."""

    billed_minor: int = 0
    quantity: Decimal = ZERO
    events: int = 0


NOTHING = Covered()


def rate_cumulative(
    period: Span, origin: Span, segments: Sequence[SegmentUsage], *, base_fee: bool
) -> list[InvoiceLine]:
    """The period's lines as one invoice would bill them (nothing billed before).

    `period` is the whole calendar period (the base of every share), `origin` the billed
    part of it. Without `base_fee`, only usage lines: a threshold invoice or a late
    adjustment bills usage, never the (prepaid) base fee."""
    pairs = [(s.span, s.plan) for s in segments]
    rated = rate_segments(period, pairs, [s.usage for s in segments])
    lines: list[InvoiceLine] = []
    for line in rated:
        if line.meter is None and not base_fee:
            continue
        lines.append(_keyed(line, origin, _events(line, segments)))
    return lines


def _events(line: SegmentLine, segments: Sequence[SegmentUsage]) -> int:
    if line.meter is None or line.span is None:
        return 0
    span = line.span
    inside = (s for s in segments if span.start <= s.span.start and s.span.end <= span.end)
    return sum(s.events.get(line.meter, 0) for s in inside)


def _keyed(line: SegmentLine, origin: Span, events: int) -> InvoiceLine:
    assert line.span is not None
    kind = LineKind(line.kind)
    what = line.meter if kind is LineKind.USAGE else kind.value
    return InvoiceLine(
        key=f"{line.span.start_us}:{what}",
        kind=kind,
        description=line.description,
        meter=line.meter,
        plan_key=line.plan_key,
        plan_version=line.plan_version,
        origin_start_us=origin.start_us,
        origin_end_us=origin.end_us,
        quantity=line.quantity,
        events=events,
        included=line.included,
        included_left=line.included_left,
        billable=line.billable,
        unit_price=line.unit_price,
        tiers=line.breakdown,
        bounded_by=line.bounded_by,
        amount_exact=line.amount_exact,
        cumulative_minor=line.amount_minor,
    )


def covered_by(lines: Iterable[InvoiceLine], origin_start_us: int) -> dict[str, Covered]:
    """Per key, what these lines (of earlier invoices, oldest first) covered of the period
    that starts at `origin_start_us`."""
    found: dict[str, Covered] = {}
    for line in lines:
        if line.origin_start_us != origin_start_us:
            continue
        before = found.get(line.key, NOTHING)
        found[line.key] = Covered(
            billed_minor=before.billed_minor + line.amount_minor,
            quantity=line.quantity,
            events=before.events + line.new_events,
        )
    return found


def bill_remainder(
    lines: Sequence[InvoiceLine], covered: Mapping[str, Covered]
) -> list[InvoiceLine]:
    """Each cumulative line less what was billed before under its key. A key billed before
    that no longer rates (cannot happen while segments only end) is credited back whole."""
    billed = [_after(line, covered.get(line.key, NOTHING)) for line in lines]
    present = {line.key for line in lines}
    for key, before in covered.items():
        if key not in present and before.billed_minor:
            billed.append(_reversal(key, before, lines))
    return billed


def _after(line: InvoiceLine, before: Covered) -> InvoiceLine:
    return replace(
        line,
        billed_before_minor=before.billed_minor,
        quantity_before=before.quantity,
        events_before=before.events,
    )


def _reversal(key: str, before: Covered, lines: Sequence[InvoiceLine]) -> InvoiceLine:
    model = lines[0] if lines else None
    return InvoiceLine(
        key=key,
        kind=LineKind.USAGE,
        description="Reversal of usage billed earlier in the period",
        meter=key.split(":", 1)[1],
        plan_key=model.plan_key if model else "",
        plan_version=model.plan_version if model else 0,
        origin_start_us=model.origin_start_us if model else 0,
        origin_end_us=model.origin_end_us if model else 0,
        quantity=ZERO,
        events=before.events,
        included=ZERO,
        included_left=ZERO,
        billable=ZERO,
        unit_price=None,
        tiers=(),
        bounded_by=None,
        amount_exact=ZERO,
        cumulative_minor=0,
        billed_before_minor=before.billed_minor,
        quantity_before=before.quantity,
        events_before=before.events,
    )


def threshold_reached(unbilled_minor: int, threshold: Decimal, currency: str) -> bool:
    """Whether the usage accrued and not yet billed reaches the threshold (in major units)."""
    unbilled = Decimal(unbilled_minor).scaleb(-minor_unit_exponent(currency), EXACT)
    return unbilled >= threshold


def late_billable(origin_end_us: int, as_of_us: int, window_days: int) -> bool:
    """Late events of a period are billed while the period ended at most `window_days`
    before the run; after that they are dropped (and counted). The period's end is the
    latest time any of its events can carry."""
    return as_of_us - origin_end_us <= window_days * DAY_US


def may_have_late_events(origin_end_us: int, accounted_us: int, backdate: timedelta) -> bool:
    """Whether events of a period ending at `origin_end_us` could have arrived after the
    last invoice that accounted for it (finalized at `accounted_us`): ingest refuses events
    older than the backdating window, so none arrives after `end + backdate`."""
    backdate_us = int(backdate.total_seconds()) * 1_000_000
    return origin_end_us + backdate_us > accounted_us


def late_lines(
    rated: Sequence[InvoiceLine], covered: Mapping[str, Covered], label: str, billable: bool
) -> list[InvoiceLine]:
    """Adjustment lines for an old period whose usage changed since it was last billed:
    billed (round(rate(usage now)) - billed before), or dropped (amount 0, events counted)."""
    lines: list[InvoiceLine] = []
    for line in rated:
        before = covered.get(line.key, NOTHING)
        if line.events == before.events and line.quantity == before.quantity:
            continue
        adjusted = _after(line, before)
        if billable:
            kind, text = LineKind.LATE_USAGE, f"Late usage for {label}: {line.description}"
        else:
            kind, text = LineKind.LATE_DROPPED, f"Late usage for {label} not billed (too old)"
            adjusted = replace(adjusted, cumulative_minor=before.billed_minor, tiers=())
        lines.append(replace(adjusted, kind=kind, description=text))
    return lines


def period_label(span: Span, zone: str) -> str:
    """'2026-10-01 \u2013 2026-11-01' (an en dash): the period's first and end dates on
    the customer's clock."""
    tz = ZoneInfo(zone)
    start, end = span.start.astimezone(tz), span.end.astimezone(tz)
    return f"{start:%Y-%m-%d} \u2013 {end:%Y-%m-%d}"
