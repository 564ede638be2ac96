"""The period's accrued charges and their projection, priced the way an invoice is.

Same path as `upcoming.upcoming_invoice` (segments of the period, each rated with its plan
by `upcoming.period_lines`; the base fee and usage charges; rounded per line), with the
usage read in one batch for many customers from whole-bucket rollups
(`billing_usage.measure_usage`) instead of one windowed query per meter and customer: a
spend rule is checked on every pass, so this must stay cheap. Usage counts everything
recorded in the period so far (read up to `recorded_until`: the same usage, without a raw
read at the period's end). The projection runs the segment in force on to its end at
its elapsed run-rate (count and sum meters), as the upcoming invoice does.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from fairmeter.domain.alert_crossings import recorded_until
from fairmeter.domain.meters import Meter
from fairmeter.domain.money import minor_unit_exponent
from fairmeter.domain.plans import Plan, total_minor
from fairmeter.domain.subscriptions import Segment, Subscription
from fairmeter.domain.windows import Span, from_us, to_us
from fairmeter.services.billing_usage import Measure, MeasureKey, measure_key
from fairmeter.services.upcoming import FLOWS, Piece, period_lines, run_on


@dataclass(frozen=True)
class SpendAccount:
    """What pricing a customer's period needs: its subscription, the period, and the
    segments inside the period with their plans."""

    customer: str
    subscription: Subscription
    period: Span
    segments: Sequence[tuple[Segment, Plan]]


@dataclass(frozen=True)
class Spend:
    spent: Decimal  # accrued so far, in currency units (rounded lines added up)
    projected: Decimal  # at the period's end at the current pace
    currency: str


Wanted = tuple[str, str, Span]  # (customer, meter, span) as billing_usage reads it


def spend_reads(accounts: Sequence[SpendAccount], now: datetime) -> list[Wanted]:
    """The usage reads pricing the accounts' periods needs (read with the other reads of
    the pass, in one transaction)."""
    return [
        (account.customer, meter, _recorded(span, now))
        for account in accounts
        for span, plan in _spans(account)
        for meter in plan.meters
    ]


def spend_of(
    accounts: Sequence[SpendAccount],
    measures: Mapping[MeasureKey, Measure],
    meters: Mapping[str, Meter],
    now: datetime,
) -> dict[str, Spend]:
    """Each account's spend so far and projected, from the `spend_reads` measured."""
    flows = {key for key, meter in meters.items() if meter.aggregation in FLOWS}
    found: dict[str, Spend] = {}
    for account in accounts:
        pieces = [
            Piece(span, plan, _usage(measures, account.customer, plan, _recorded(span, now)))
            for span, plan in _spans(account)
        ]
        if not pieces:
            continue
        currency = pieces[-1].plan.currency
        exponent = minor_unit_exponent(currency)
        lines = period_lines(account.subscription, account.period, pieces)
        ahead = period_lines(account.subscription, account.period, run_on(pieces, flows, now))
        found[account.customer] = Spend(
            Decimal(total_minor(lines)).scaleb(-exponent),
            Decimal(total_minor(ahead)).scaleb(-exponent),
            currency,
        )
    return found


def _spans(account: SpendAccount) -> list[tuple[Span, Plan]]:
    found: list[tuple[Span, Plan]] = []
    for segment, plan in account.segments:
        span = segment.within(account.period)
        if span is not None:
            found.append((span, plan))
    return found


def _usage(
    measures: Mapping[MeasureKey, Measure], customer: str, plan: Plan, span: Span
) -> dict[str, Decimal]:
    return {m: measures[measure_key(customer, m, span)].quantity for m in plan.meters}


def _recorded(span: Span, now: datetime) -> Span:
    """The part of `span` usage recorded by `now` can lie in (see `recorded_until`)."""
    end = recorded_until(to_us(now), span.end_us)
    return span if end == span.end_us else Span(span.start, from_us(max(end, span.start_us)))
