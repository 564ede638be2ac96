"""Rating one period of a subscription whose plan changed inside it, segment by segment.

The rule (docs/billing.md, "Plan changes and proration"):
- Each segment is rated on its own plan version: the usage of its own [start, end), with the
  charges' allowances and minimum/maximum prorated by the segment's share of the period
  (`rate_period(plan, usage, share)`); usage itself is never prorated.
- Base fees are prepaid for the period: the plan in force at the period's start bills its
  full fee; if that plan ends before the period does, a credit line returns the unused
  share; a plan that starts inside the period bills its fee prorated for its share.
- A fee accrues linearly over the period and is rounded at the segment's edges only: a
  segment owes round(fee x share elapsed at its end) - round(fee x share elapsed at its
  start), so the parts of one fee add up to the rounded full fee exactly, however it is cut.
- Adjacent segments on the same plan version are rated as one: a boundary that changes no
  plan changes no amount (tiers and allowances see the usage of the whole run).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from fairmeter.domain.money import round_to_minor
from fairmeter.domain.numbers import EXACT
from fairmeter.domain.periods import fraction_elapsed, fraction_of
from fairmeter.domain.plans import Line, Plan, rate_period
from fairmeter.domain.pricing import proration_share
from fairmeter.domain.pricing.models import ZERO
from fairmeter.domain.windows import Span

ONE = Decimal(1)


class LineKind:
    BASE_FEE = "base_fee"
    BASE_FEE_CREDIT = "base_fee_credit"
    USAGE = "usage"


@dataclass(frozen=True)
class SegmentLine(Line):
    """A `Line` that says which segment (plan version over `span`) it rates, and what kind
    of line it is (base_fee, base_fee_credit or usage). A credit has a negative amount."""

    kind: str = LineKind.USAGE
    span: Span | None = None
    plan_key: str = ""
    plan_version: int = 0


@dataclass(frozen=True)
class _Run:
    span: Span
    plan: Plan
    usage: dict[str, Decimal]


def rate_segments(
    period: Span,
    segments: Sequence[tuple[Span, Plan]],
    usage_by_segment: Sequence[Mapping[str, Decimal]],
) -> list[SegmentLine]:
    """The lines of `period` (the whole calendar period: the base of every share) for
    `segments`, in order, each inside the period, with the usage of each segment's span.

    Segments need not cover the period: a subscription that starts or ends inside it owes
    only its part. All plans must share one currency. Each line is rounded with its plan's
    rule; an invoice total is `plans.total_minor(lines)`."""
    if len(segments) != len(usage_by_segment):
        raise ValueError("one usage mapping per segment")
    _check_segments(period, segments)
    lines: list[SegmentLine] = []
    for run in _runs(segments, usage_by_segment):
        lines.extend(_base_fee_lines(period, run))
        share = fraction_of(period, run.span)
        for line in rate_period(run.plan, run.usage, share):
            if line.meter is not None:
                lines.append(_tagged(line, LineKind.USAGE, run))
    return lines


def _check_segments(period: Span, segments: Sequence[tuple[Span, Plan]]) -> None:
    previous_end = period.start
    for span, plan in segments:
        if span.start < previous_end or span.end > period.end:
            raise ValueError("segments are ordered, do not overlap and lie inside the period")
        if plan.currency != segments[0][1].currency:
            raise ValueError("every plan of a period bills in one currency")
        previous_end = span.end


def _runs(
    segments: Sequence[tuple[Span, Plan]], usage_by_segment: Sequence[Mapping[str, Decimal]]
) -> list[_Run]:
    runs: list[_Run] = []
    for (span, plan), usage in zip(segments, usage_by_segment, strict=True):
        last = runs[-1] if runs else None
        if last is not None and last.plan == plan and last.span.end == span.start:
            merged = dict(last.usage)
            for meter, quantity in usage.items():
                merged[meter] = EXACT.add(merged.get(meter, ZERO), quantity)
            runs[-1] = _Run(Span(last.span.start, span.end), plan, merged)
        else:
            runs.append(_Run(span, plan, dict(usage)))
    return runs


def _elapsed(period: Span, instant: datetime) -> Decimal:
    return proration_share(fraction_elapsed(period, instant))


def _accrued(plan: Plan, share: Decimal) -> int:
    """The plan's fee for the first `share` of the period, rounded."""
    return round_to_minor(EXACT.multiply(plan.base_fee, share), plan.currency, plan.rounding)


def _base_fee_lines(period: Span, run: _Run) -> list[SegmentLine]:
    plan = run.plan
    if plan.base_fee == 0:
        return []
    fee = plan.base_fee
    start, end = _elapsed(period, run.span.start), _elapsed(period, run.span.end)
    if run.span.start != period.start:
        share = EXACT.subtract(end, start)
        amount = EXACT.multiply(fee, share)
        minor = _accrued(plan, end) - _accrued(plan, start)
        line = _fee_line(f"{plan.name} base fee (prorated)", share, fee, amount, minor)
        return [_tagged(line, LineKind.BASE_FEE, run)]
    full = _fee_line(f"{plan.name} base fee", ONE, fee, fee, _accrued(plan, ONE))
    lines = [_tagged(full, LineKind.BASE_FEE, run)]
    if end < ONE:
        unused = EXACT.subtract(ONE, end)
        credit = EXACT.minus(EXACT.multiply(fee, unused))
        minor = _accrued(plan, end) - _accrued(plan, ONE)
        line = _fee_line(
            f"{plan.name} base fee: credit for unused time", unused, fee, credit, minor
        )
        lines.append(_tagged(line, LineKind.BASE_FEE_CREDIT, run))
    return lines


def _fee_line(description: str, share: Decimal, fee: Decimal, amount: Decimal, minor: int) -> Line:
    return Line(description, None, share, ZERO, ZERO, share, fee, (), amount, minor)


def _tagged(line: Line, kind: str, run: _Run) -> SegmentLine:
    return SegmentLine(
        **vars(line),
        kind=kind,
        span=run.span,
        plan_key=run.plan.key,
        plan_version=run.plan.version,
    )
