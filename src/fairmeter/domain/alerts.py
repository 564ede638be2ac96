"""Alert rules: what a customer wants to hear about before a bill surprises it.

A rule is set on a plan (every subscriber) or on one customer, and names its thresholds:
- `usage_threshold`: a meter's usage reaching percentages of the plan's `limit` (the
  default base) or of its allowance (`included`), or absolute quantities;
- `spend_threshold`: the period's accrued charges reaching percentages of the customer's
  `budget` (the default base) or absolute amounts in the customer's currency;
- `forecast`: the projected end-of-period usage (with a meter) or spend (without one)
  reaching those thresholds before the period ends.

Defaults need no rule: every meter with a limit on the customer's plan alerts at 50%, 80%
and 100% of its limit, and a customer with a budget at 80% and 100% of it. A rule of the
same kind for that meter (a usage_threshold, enabled or not), or a spend rule on the
budget, takes the default's place.

Each threshold fires once per period, rule and customer: its dedupe key names all four.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from decimal import Decimal
from enum import StrEnum
from typing import TypeVar

from fairmeter.domain.errors import Problems
from fairmeter.domain.meters import KEY_PATTERN
from fairmeter.domain.money import NotAnAmount, parse_decimal
from fairmeter.domain.numbers import EXACT, format_quantity

HUNDRED = Decimal(100)
MAX_THRESHOLDS = 20
MAX_PERCENT = Decimal(1000)
DEFAULT_USAGE_PERCENTAGES = (Decimal(50), Decimal(80), Decimal(100))
DEFAULT_BUDGET_PERCENTAGES = (Decimal(80), Decimal(100))
DEFAULT_FORECAST_PERCENTAGES = (Decimal(100),)
_E = TypeVar("_E", bound=StrEnum)


class RuleKind(StrEnum):
    USAGE_THRESHOLD = "usage_threshold"
    SPEND_THRESHOLD = "spend_threshold"
    FORECAST = "forecast"


class RuleScope(StrEnum):
    PLAN = "plan"
    CUSTOMER = "customer"


class Measure(StrEnum):
    """How a rule's thresholds read: percentages of a base, or absolute values."""

    PERCENT = "percent"
    QUANTITY = "quantity"  # usage, in the meter's unit
    AMOUNT = "amount"  # spend, in the customer's currency


class Base(StrEnum):
    LIMIT = "limit"
    INCLUDED = "included"
    BUDGET = "budget"


@dataclass(frozen=True)
class AlertRule:
    id: str
    scope: RuleScope
    customer_key: str | None
    plan_key: str | None
    kind: RuleKind
    meter: str | None  # None: about spend
    measure: Measure
    base: Base | None  # set exactly when measure is percent
    thresholds: tuple[Decimal, ...]
    enabled: bool = True
    created_us: int = 0
    updated_us: int = 0

    def __post_init__(self) -> None:
        owner = self.customer_key if self.scope is RuleScope.CUSTOMER else self.plan_key
        other = self.plan_key if self.scope is RuleScope.CUSTOMER else self.customer_key
        if owner is None or other is not None:
            raise ValueError("a rule names its plan or its customer, as its scope says")
        needs_meter = {RuleKind.USAGE_THRESHOLD: True, RuleKind.SPEND_THRESHOLD: False}
        if needs_meter.get(self.kind, self.meter is not None) != (self.meter is not None):
            raise ValueError("usage rules name a meter; spend rules do not")
        if self.measure not in _MEASURES[self.about] or (
            (self.measure is Measure.PERCENT) != (self.base in _BASES[self.about])
        ):
            raise ValueError(f"{self.measure}/{self.base} does not measure {self.about}")
        if not self.thresholds or any(t <= 0 for t in self.thresholds):
            raise ValueError("a rule has thresholds, each greater than zero")

    @property
    def about(self) -> str:
        return "spend" if self.meter is None else "usage"

    @property
    def notification_kind(self) -> str:
        if self.kind is RuleKind.SPEND_THRESHOLD and self.base is Base.BUDGET:
            return "alert.budget"
        return f"alert.{self.kind.value}"

    def as_dict(self) -> dict[str, object]:
        return {
            "id": self.id,
            "scope": self.scope.value,
            "customer": self.customer_key,
            "plan": self.plan_key,
            "kind": self.kind.value,
            "meter": self.meter,
            "measure": self.measure.value,
            "of": None if self.base is None else self.base.value,
            "thresholds": [format_quantity(t) for t in self.thresholds],
            "enabled": self.enabled,
        }


_MEASURES = {
    "usage": (Measure.PERCENT, Measure.QUANTITY),
    "spend": (Measure.PERCENT, Measure.AMOUNT),
}
_BASES = {"usage": (Base.LIMIT, Base.INCLUDED), "spend": (Base.BUDGET,)}
EDITABLE = ("thresholds", "measure", "of", "enabled")


def parse_rule(body: Mapping[str, object], rule_id: str, now_us: int) -> AlertRule:
    """A new rule from its JSON body; every fault reported at once, by field."""
    problems = Problems()
    scope, owner = _owner(body, problems)
    kind = _enum(RuleKind, body.get("kind"), "/kind", problems, required=True)
    meter = _meter(body, kind, problems)
    fields = _thresholds(body, kind, meter, problems, partial=None)
    enabled = _enabled(body, problems)
    problems.raise_if_any("The alert rule is not valid")
    assert scope is not None and kind is not None and fields is not None
    return AlertRule(
        id=rule_id,
        scope=scope,
        customer_key=owner if scope is RuleScope.CUSTOMER else None,
        plan_key=owner if scope is RuleScope.PLAN else None,
        kind=kind,
        meter=meter,
        measure=fields[0],
        base=fields[1],
        thresholds=fields[2],
        enabled=True if enabled is None else enabled,
        created_us=now_us,
        updated_us=now_us,
    )


def parse_rule_changes(rule: AlertRule, body: Mapping[str, object], now_us: int) -> AlertRule:
    """The rule with the changes of a PATCH body applied (thresholds, measure, of, enabled)."""
    problems = Problems()
    for name in body:
        if name not in EDITABLE:
            problems.add(f"/{name}", "cannot be changed (editable: " + ", ".join(EDITABLE) + ")")
    fields = _thresholds(body, rule.kind, rule.meter, problems, partial=rule)
    enabled = _enabled(body, problems)
    problems.raise_if_any("The alert rule changes are not valid")
    assert fields is not None
    measure, base, thresholds = fields
    changed = replace(rule, measure=measure, base=base, thresholds=thresholds)
    if enabled is not None:
        changed = replace(changed, enabled=enabled)
    return replace(changed, updated_us=now_us)


def _owner(body: Mapping[str, object], problems: Problems) -> tuple[RuleScope | None, str | None]:
    customer, plan = body.get("customer"), body.get("plan")
    if customer is not None and plan is not None:
        problems.add("/plan", "give a customer or a plan, not both")
        return None, None
    if plan is not None:
        if not isinstance(plan, str) or not KEY_PATTERN.match(plan):
            problems.add("/plan", "must be a plan key")
            return None, None
        return RuleScope.PLAN, plan
    if not isinstance(customer, str) or not customer or len(customer) > 256:
        problems.add("/customer", "is required (the customer's key), unless a plan is given")
        return None, None
    return RuleScope.CUSTOMER, customer


def _enum(
    kind: type[_E], raw: object, pointer: str, problems: Problems, required: bool = False
) -> _E | None:
    if raw is None and not required:
        return None
    try:
        if not isinstance(raw, str):
            raise ValueError
        return kind(raw)
    except ValueError:
        problems.add(pointer, "must be one of: " + ", ".join(e.value for e in kind))
        return None


def _meter(body: Mapping[str, object], kind: RuleKind | None, problems: Problems) -> str | None:
    meter = body.get("meter")
    if kind is RuleKind.SPEND_THRESHOLD and meter is not None:
        problems.add("/meter", "a spend_threshold is about the whole bill; leave meter out")
        return None
    if kind is RuleKind.USAGE_THRESHOLD and meter is None:
        problems.add("/meter", "is required for a usage_threshold (a meter key)")
        return None
    if meter is not None and (not isinstance(meter, str) or not KEY_PATTERN.match(meter)):
        problems.add("/meter", "must be a meter key")
        return None
    return meter


_Fields = tuple[Measure, Base | None, tuple[Decimal, ...]]


def _thresholds(
    body: Mapping[str, object],
    kind: RuleKind | None,
    meter: str | None,
    problems: Problems,
    partial: AlertRule | None,
) -> _Fields | None:
    """measure, of and thresholds, with the defaults of the kind (or the rule patched)."""
    about = "spend" if meter is None else "usage"
    measure = _enum(Measure, body.get("measure"), "/measure", problems)
    if measure is None:
        measure = partial.measure if partial else Measure.PERCENT
    if "measure" in body and measure not in _MEASURES[about]:
        allowed = ", ".join(m.value for m in _MEASURES[about])
        problems.add("/measure", f"a rule about {about} measures: {allowed}")
        return None
    base = _base(body, measure, about, partial, problems)
    values = _values(body, measure, problems)
    if values is None and partial is not None and measure is partial.measure:
        values = partial.thresholds
    if values is None:
        if measure is not Measure.PERCENT:
            problems.add("/thresholds", f"is required: a list of {measure.value}s")
            return None
        values = _default_percentages(kind)
    return measure, base, values


def _base(
    body: Mapping[str, object],
    measure: Measure,
    about: str,
    partial: AlertRule | None,
    problems: Problems,
) -> Base | None:
    base = _enum(Base, body.get("of"), "/of", problems)
    if measure is not Measure.PERCENT:
        if base is not None:
            problems.add("/of", "only percentages are of something; absolute values are not")
        return None
    if base is None:
        if partial is not None and partial.base is not None:
            return partial.base
        return Base.BUDGET if about == "spend" else Base.LIMIT
    if base not in _BASES[about]:
        allowed = ", ".join(b.value for b in _BASES[about])
        problems.add("/of", f"a rule about {about} takes a percentage of: {allowed}")
    return base


def _values(
    body: Mapping[str, object], measure: Measure, problems: Problems
) -> tuple[Decimal, ...] | None:
    raw = body.get("thresholds")
    if raw is None:
        return None
    if not isinstance(raw, list) or not 1 <= len(raw) <= MAX_THRESHOLDS:
        problems.add("/thresholds", f"must be a list of 1 to {MAX_THRESHOLDS} decimal strings")
        return None
    found: set[Decimal] = set()
    for index, item in enumerate(raw):
        try:
            value = parse_decimal(item)
            if value <= 0:
                raise NotAnAmount("must be greater than zero")
            if measure is Measure.PERCENT and value > MAX_PERCENT:
                raise NotAnAmount(f"a percentage is at most {MAX_PERCENT}")
            found.add(value.normalize(EXACT))
        except NotAnAmount as exc:
            problems.add(f"/thresholds/{index}", f'{exc} (a decimal string such as "80")')
    return tuple(sorted(found)) if found else None


def _default_percentages(kind: RuleKind | None) -> tuple[Decimal, ...]:
    if kind is RuleKind.SPEND_THRESHOLD:
        return DEFAULT_BUDGET_PERCENTAGES
    if kind is RuleKind.FORECAST:
        return DEFAULT_FORECAST_PERCENTAGES
    return DEFAULT_USAGE_PERCENTAGES


def _enabled(body: Mapping[str, object], problems: Problems) -> bool | None:
    if "enabled" not in body:
        return None
    value = body["enabled"]
    if not isinstance(value, bool):
        problems.add("/enabled", "must be true or false")
        return None
    return value
