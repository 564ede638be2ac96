"""Which thresholds a customer's usage or spend has crossed, and where its pace leads.

Pure: the services read usage and spend and hand the numbers here.

Forecast projection (documented in docs/alerts.md): the run-rate of the trailing week
(`TRAILING_US`, whole 15-minute buckets; the part of the period elapsed when shorter, and
no forecast before a day has elapsed) carried on to the period's end:
    projected = usage now + rate x (period end - now)
A forecast threshold fires when `usage now < threshold <= projected`; the projected date
of the crossing is `now + (threshold - usage now) / rate`. Spend forecasts use the
upcoming invoice's projection instead (the whole elapsed period's run-rate, priced by the
plan so allowances and tiers count), and date the crossing on the straight line from
today's total to the projected total. Rates are exact fractions: no rounding decides
whether a forecast fires.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass
from decimal import Context, Decimal
from fractions import Fraction

from fairmeter.domain.alerts import (
    DEFAULT_BUDGET_PERCENTAGES,
    DEFAULT_USAGE_PERCENTAGES,
    HUNDRED,
    AlertRule,
    Base,
    Measure,
    RuleKind,
    RuleScope,
)
from fairmeter.domain.events import FUTURE_TOLERANCE
from fairmeter.domain.numbers import EXACT, format_quantity
from fairmeter.domain.windows import BUCKET_US

TRAILING_US = 7 * 24 * 3600 * 1_000_000
MIN_WINDOW_US = 24 * 3600 * 1_000_000
BUDGET_RULE = "budget"
_RATE = Context(prec=60)
_PLACES = Decimal("1e-12")


@dataclass(frozen=True)
class Target:
    """One threshold of a rule: as written (a percentage or a value) and the absolute
    usage or amount it stands for."""

    threshold: Decimal
    value: Decimal
    percent: Decimal | None


def default_rule_id(meter: str) -> str:
    return f"default:{meter}"


def dedupe_key(rule_id: str, customer: str, period_start_us: int, threshold: Decimal) -> str:
    """Once per rule, customer, period and threshold: the notification's identity."""
    return f"alert:{rule_id}:{customer}:{period_start_us}:{format_quantity(threshold)}"


def effective_rules(
    explicit: Iterable[AlertRule],
    plan_key: str,
    customer_key: str,
    limited_meters: Collection[str],
    budget: Decimal | None,
) -> list[AlertRule]:
    """The rules that apply to a customer on a plan: its own and its plan's enabled rules,
    plus the defaults (50/80/100% of each limited meter's limit, 80/100% of a budget)
    that no rule of the same kind, enabled or not, replaces."""
    mine = [
        r
        for r in explicit
        if r.customer_key == customer_key or (r.customer_key is None and r.plan_key == plan_key)
    ]
    usage_ruled = {r.meter for r in mine if r.kind is RuleKind.USAGE_THRESHOLD}
    budget_ruled = any(r.kind is RuleKind.SPEND_THRESHOLD and r.base is Base.BUDGET for r in mine)
    found = [r for r in mine if r.enabled]
    for meter in sorted(set(limited_meters) - usage_ruled):
        found.append(
            AlertRule(
                id=default_rule_id(meter),
                scope=RuleScope.PLAN,
                customer_key=None,
                plan_key=plan_key,
                kind=RuleKind.USAGE_THRESHOLD,
                meter=meter,
                measure=Measure.PERCENT,
                base=Base.LIMIT,
                thresholds=DEFAULT_USAGE_PERCENTAGES,
            )
        )
    if budget is not None and budget > 0 and not budget_ruled:
        found.append(
            AlertRule(
                id=BUDGET_RULE,
                scope=RuleScope.CUSTOMER,
                customer_key=customer_key,
                plan_key=None,
                kind=RuleKind.SPEND_THRESHOLD,
                meter=None,
                measure=Measure.PERCENT,
                base=Base.BUDGET,
                thresholds=DEFAULT_BUDGET_PERCENTAGES,
            )
        )
    return found


def targets(rule: AlertRule, base_value: Decimal | None) -> tuple[Target, ...]:
    """The rule's thresholds as absolute values; none when its base is unknown or zero
    (a percentage of the limit of a meter without a limit)."""
    if rule.measure is not Measure.PERCENT:
        return tuple(Target(t, t, None) for t in rule.thresholds)
    if base_value is None or base_value <= 0:
        return ()
    return tuple(
        Target(t, EXACT.divide(EXACT.multiply(base_value, t), HUNDRED), t) for t in rule.thresholds
    )


def crossed(found: Sequence[Target], current: Decimal) -> list[Target]:
    """The targets `current` has reached (a threshold is reached at equality)."""
    return [t for t in found if current >= t.value]


@dataclass(frozen=True)
class Projection:
    """Where usage (or spend) is heading: `rate` per microsecond and the value at the
    period's end, exact (fractions: a rate of 100 a day is no finite decimal)."""

    current: Decimal
    rate: Fraction
    end_value: Fraction
    now_us: int

    @property
    def projected(self) -> Decimal:
        """The end-of-period value to 12 decimal places, for people."""
        quotient = _RATE.divide(Decimal(self.end_value.numerator), self.end_value.denominator)
        return quotient.quantize(_PLACES, context=_RATE).normalize(_RATE)

    def crosses(self, target: Target) -> bool:
        """Not reached yet, but will be before the period ends at this pace."""
        return self.current < target.value and Fraction(target.value) <= self.end_value

    def crossing_us(self, target: Target) -> int:
        """When, at this pace, usage reaches `target` (now if it has)."""
        if self.current >= target.value or self.rate <= 0:
            return self.now_us
        return self.now_us + math.ceil(Fraction(target.value - self.current) / self.rate)


def recorded_until(now_us: int, end_us: int) -> int:
    """Where usage recorded by `now_us` can end: events may be dated up to
    `FUTURE_TOLERANCE` ahead (plus a bucket for clocks of other servers), so reading a span
    up to there — a bucket boundary — reads the same usage as up to `end_us`, without the
    raw events of a partial bucket at the period's end."""
    horizon = now_us + int(FUTURE_TOLERANCE.total_seconds() * 1_000_000) + BUCKET_US
    return min(end_us, horizon - horizon % BUCKET_US + BUCKET_US)


def trailing_window(period_start_us: int, now_us: int) -> tuple[int, int] | None:
    """The trailing run-rate window [start, end) in whole buckets, or None before the
    period has run for a day."""
    end = now_us - now_us % BUCKET_US
    start = max(period_start_us, end - TRAILING_US)
    if end - start < MIN_WINDOW_US:
        return None
    return start, end


def project_usage(
    current: Decimal, trailing: Decimal, window: tuple[int, int], now_us: int, period_end_us: int
) -> Projection:
    """Usage now, carried to the period's end at the trailing window's rate."""
    rate = Fraction(max(trailing, Decimal(0))) / (window[1] - window[0])
    end_value = Fraction(current) + rate * max(period_end_us - now_us, 0)
    return Projection(current, rate, end_value, now_us)


def project_spend(
    current: Decimal, projected: Decimal, now_us: int, period_end_us: int
) -> Projection:
    """Spend now and at the period's end (the upcoming invoice's projection), joined by a
    straight line."""
    remaining = max(period_end_us - now_us, 1)
    rate = Fraction(max(projected - current, Decimal(0))) / remaining
    return Projection(current, rate, Fraction(max(projected, current)), now_us)
