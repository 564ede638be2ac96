"""Plans: what a subscription costs per period, and the one pure price computation.

A plan body (JSON; decimals as strings, see `fairmeter.domain.pricing.parsing` for charges):

    {"key": "pro", "name": "Pro", "currency": "USD", "interval": "month",
     "base_fee": "49", "charges": [...], "next_plan": "scale",
     "invoice_threshold": "500", "net_terms_days": 30, "late_event_window_days": 35,
     "rounding": "half_up", "description": "For growing APIs"}

Only `key` and `currency` are required. `version` is not part of the body: the service
numbers versions, and `same_terms` tells whether an edit needs a new one.
`rate_period` prices one period (quotes and invoices share it); each line's exact amount
is rounded once, with the plan's rule, and a total is the sum of the rounded lines.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, replace
from decimal import Decimal
from enum import StrEnum
from fractions import Fraction
from typing import TypedDict

from fairmeter.domain.errors import Problems
from fairmeter.domain.meters import KEY_PATTERN
from fairmeter.domain.money import RoundingRule, is_currency, round_to_minor
from fairmeter.domain.numbers import EXACT, format_quantity
from fairmeter.domain.pricing import (
    Charge,
    LimitPolicy,
    PerUnit,
    TierUse,
    collect_charge,
    proration_share,
)
from fairmeter.domain.pricing.fields import FieldReader, as_object
from fairmeter.domain.pricing.models import ZERO, require_non_negative

MAX_CHARGES = 100
MAX_DAYS = 365
PLAN_FIELDS = (
    *("key", "name", "currency", "interval", "base_fee", "charges", "next_plan"),
    *("invoice_threshold", "net_terms_days", "late_event_window_days", "rounding"),
    "description",
)
_KEY_RULE = "must be lowercase letters, digits and _ (start with a letter, at most 63)"
_UPGRADE_RULE = "the upgrade policy needs the plan's next_plan"


class Interval(StrEnum):
    MONTH = "month"
    YEAR = "year"


class _Terms(TypedDict):
    interval: Interval
    base_fee: Decimal
    next_plan: str | None
    invoice_threshold: Decimal | None
    net_terms_days: int
    late_event_window_days: int
    rounding: RoundingRule
    description: str | None


@dataclass(frozen=True)
class Plan:
    key: str
    name: str
    currency: str
    interval: Interval = Interval.MONTH
    base_fee: Decimal = ZERO
    charges: tuple[Charge, ...] = ()
    next_plan: str | None = None
    invoice_threshold: Decimal | None = None
    net_terms_days: int = 30
    late_event_window_days: int = 35
    rounding: RoundingRule = RoundingRule.HALF_UP
    version: int = 1
    description: str | None = None

    def __post_init__(self) -> None:
        # Storage reads enums back as text; the value, not its spelling, is the invariant.
        object.__setattr__(self, "charges", tuple(self.charges))
        object.__setattr__(self, "interval", Interval(self.interval))
        object.__setattr__(self, "rounding", RoundingRule(self.rounding))
        if not KEY_PATTERN.match(self.key) or not self.name.strip():
            raise ValueError(f"{self.key!r}: a plan needs a valid key and a name")
        if not is_currency(self.currency):
            raise ValueError(f"{self.currency!r} is not an ISO 4217 currency code")
        require_non_negative(self.base_fee, "base_fee")
        if self.invoice_threshold is not None:
            require_non_negative(self.invoice_threshold, "invoice_threshold")
            if self.invoice_threshold == 0:
                raise ValueError("invoice_threshold must be greater than 0")
        for days in (self.net_terms_days, self.late_event_window_days):
            if not 0 <= days <= MAX_DAYS:
                raise ValueError(f"a number of days is from 0 to {MAX_DAYS}")
        if self.version < 1:
            raise ValueError("versions start at 1")
        self._check_links()

    def _check_links(self) -> None:
        """The references a plan makes: to its next plan and to its meters."""
        if self.next_plan is not None and (
            self.next_plan == self.key or not KEY_PATTERN.match(self.next_plan)
        ):
            raise ValueError("next_plan must be the key of another plan")
        meters = [charge.meter for charge in self.charges]
        if len(set(meters)) != len(meters):
            raise ValueError("a plan has at most one charge per meter")
        if self.next_plan is None and any(_upgrades(charge) for charge in self.charges):
            raise ValueError(_UPGRADE_RULE)

    def charge_for(self, meter: str) -> Charge | None:
        return next((charge for charge in self.charges if charge.meter == meter), None)

    @property
    def meters(self) -> tuple[str, ...]:
        return tuple(charge.meter for charge in self.charges)

    def as_dict(self) -> dict[str, object]:
        """The JSON body `parse_plan` reads back (everything but `version`)."""
        threshold = self.invoice_threshold
        return {
            "key": self.key,
            "name": self.name,
            "currency": self.currency,
            "interval": self.interval.value,
            "base_fee": format_quantity(self.base_fee),
            "charges": [charge.as_dict() for charge in self.charges],
            "next_plan": self.next_plan,
            "invoice_threshold": None if threshold is None else format_quantity(threshold),
            "net_terms_days": self.net_terms_days,
            "late_event_window_days": self.late_event_window_days,
            "rounding": self.rounding.value,
            "description": self.description,
        }


def _upgrades(charge: Charge) -> bool:
    return charge.limit is not None and charge.limit.policy is LimitPolicy.UPGRADE


def same_terms(a: Plan, b: Plan) -> bool:
    """Whether two plans differ only by version (an edit that changes nothing billable)."""
    return replace(a, version=b.version) == b


def parse_plan(body: Mapping[str, object]) -> Plan:
    """A plan from an API body, reporting every bad field with its pointer at once."""
    problems = Problems()
    if as_object(body, "", problems) is None:
        problems.raise_if_any("The plan is not valid")
    fields = FieldReader(body, "", problems)
    fields.only(PLAN_FIELDS, "a plan")
    key = fields.text("key", required=True, max_length=63, pattern=KEY_PATTERN, rule=_KEY_RULE)
    name = fields.text("name")
    currency = fields.text("currency", required=True)
    if currency is not None and not is_currency(currency):
        fields.report("currency", "must be an ISO 4217 code such as USD, EUR or JPY")
    terms = _terms(fields, key)
    charges = _charges(fields, has_next_plan=terms["next_plan"] is not None)
    problems.raise_if_any("The plan is not valid")
    assert key is not None and currency is not None
    return Plan(key, name or key, currency, charges=charges, **terms)


def _terms(fields: FieldReader, key: str | None) -> _Terms:
    next_plan = fields.text("next_plan", max_length=63, pattern=KEY_PATTERN, rule=_KEY_RULE)
    if next_plan is not None and next_plan == key:
        fields.report("next_plan", "must be another plan than this one")
    return {
        "interval": fields.choice("interval", Interval, Interval.MONTH),
        "base_fee": fields.decimal("base_fee") or ZERO,
        "next_plan": next_plan,
        "invoice_threshold": fields.decimal("invoice_threshold", positive=True),
        "net_terms_days": fields.integer("net_terms_days", 30, 0, MAX_DAYS),
        "late_event_window_days": fields.integer("late_event_window_days", 35, 0, MAX_DAYS),
        "rounding": fields.choice("rounding", RoundingRule, RoundingRule.HALF_UP),
        "description": fields.text("description", max_length=1024),
    }


def _charges(fields: FieldReader, has_next_plan: bool) -> tuple[Charge, ...]:
    raw = fields.body.get("charges")
    if raw is None:
        return ()
    if not isinstance(raw, list) or len(raw) > MAX_CHARGES:
        fields.report("charges", f"must be a list of at most {MAX_CHARGES} charges")
        return ()
    charges: list[Charge] = []
    seen: set[str] = set()
    for index, item in enumerate(raw):
        pointer = f"{fields.at('charges')}/{index}"
        charge = collect_charge(item, pointer, fields.problems)
        if charge is None:
            continue
        if charge.meter in seen:
            fields.problems.add(f"{pointer}/meter", "another charge already prices this meter")
        if _upgrades(charge) and not has_next_plan:
            fields.problems.add(f"{pointer}/policy", _UPGRADE_RULE)
        seen.add(charge.meter)
        charges.append(charge)
    return tuple(charges)


def require_known_meters(plan: Plan, known: Collection[str]) -> None:
    """Refuse a plan that prices a meter the catalog does not have (at /charges/i/meter)."""
    problems = Problems()
    for index, charge in enumerate(plan.charges):
        if charge.meter not in known:
            problems.add(
                f"/charges/{index}/meter", f"no meter has the key {charge.meter!r}", "unknown_meter"
            )
    problems.raise_if_any("The plan prices unknown meters")


@dataclass(frozen=True)
class Line:
    """One priced line of a period. For a charge, `included` is the allowance used and
    `included_left` what remains, so quantity = included + billable for any usage above 0.
    `unit_price` is set for the base fee and per_unit charges. `amount_minor` is
    `amount_exact` rounded once to the plan's currency with the plan's rule."""

    description: str
    meter: str | None
    quantity: Decimal
    included: Decimal
    included_left: Decimal
    billable: Decimal
    unit_price: Decimal | None
    breakdown: tuple[TierUse, ...]
    amount_exact: Decimal
    amount_minor: int
    bounded_by: str | None = None


def rate_period(
    plan: Plan, usage: Mapping[str, Decimal], fraction: Fraction | Decimal | int = 1
) -> list[Line]:
    """Price one period (or the `fraction` of it a plan was held, in [0, 1]).

    A line for the base fee (omitted when the plan has none) prorated by the fraction, then
    one line per charge, in plan order, for its meter's usage (0 when absent; usage of
    meters the plan does not price is ignored). Usage is never prorated; a charge's
    allowance and bounds are (see `Charge.prorated`). The share is cut to 12 places.
    """
    share = proration_share(fraction)
    lines: list[Line] = []
    if plan.base_fee > 0:
        lines.append(_base_fee_line(plan, share))
    for charge in plan.charges:
        quantity = usage.get(charge.meter, ZERO)
        lines.append(_charge_line(plan, charge.prorated(share), quantity))
    return lines


def _base_fee_line(plan: Plan, share: Decimal) -> Line:
    amount = EXACT.multiply(plan.base_fee, share)
    minor = round_to_minor(amount, plan.currency, plan.rounding)
    description = f"{plan.name} base fee" + ("" if share == 1 else " (prorated)")
    return Line(description, None, share, ZERO, ZERO, share, plan.base_fee, (), amount, minor)


def _charge_line(plan: Plan, charge: Charge, quantity: Decimal) -> Line:
    rated = charge.rate(quantity)
    unit_price = charge.model.unit_price if isinstance(charge.model, PerUnit) else None
    minor = round_to_minor(rated.amount, plan.currency, plan.rounding)
    return Line(
        description=f"{charge.meter} ({charge.model.kind.replace('_', ' ')})",
        meter=charge.meter,
        quantity=quantity,
        included=rated.included_used,
        included_left=rated.included_left,
        billable=rated.billable,
        unit_price=unit_price,
        breakdown=rated.breakdown,
        amount_exact=rated.amount,
        amount_minor=minor,
        bounded_by=rated.bounded_by,
    )


def total_minor(lines: Iterable[Line]) -> int:
    """An invoice total: the sum of its rounded lines, never a rounding of their sum."""
    return sum(line.amount_minor for line in lines)
