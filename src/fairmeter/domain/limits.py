"""A customer's overrides of a plan's limit, and rate limits independent of the allowance.

An override body (`PUT /v1/customers/{key}/limits/{meter}`; any subset, at least one):

    {"limit": "5000", "policy": "block | overage | throttle | upgrade",
     "throttle_rate": "10", "max_overage_amount": "50",
     "rate_limit": {"limit": "100", "per": "second | minute | hour"}}

Each given field replaces the plan's term for this customer; the others stay the plan's.
`max_overage_amount` is the spend cap on overage (currency units of the plan), and wins
over the subscription's cap. The throttle policy needs a `throttle_rate` in the same body.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Context, Decimal
from enum import StrEnum

from fairmeter.domain.errors import Problems
from fairmeter.domain.numbers import format_optional, format_quantity
from fairmeter.domain.pricing.charges import ChargeLimit, LimitPolicy
from fairmeter.domain.pricing.fields import FieldReader, as_object

OVERRIDE_FIELDS = ("limit", "policy", "throttle_rate", "max_overage_amount", "rate_limit")
# Token rates are not money: a rate of 100 per minute is 1.666... tokens a second.
_RATES = Context(prec=28)


class Per(StrEnum):
    SECOND = "second"
    MINUTE = "minute"
    HOUR = "hour"

    @property
    def seconds(self) -> int:
        return {"second": 1, "minute": 60, "hour": 3600}[self.value]


@dataclass(frozen=True, slots=True)
class RateLimit:
    """At most `limit` units per `per`, as a token bucket that holds `limit` at most."""

    limit: Decimal
    per: Per

    def __post_init__(self) -> None:
        if not self.limit.is_finite() or self.limit <= 0:
            raise ValueError("a rate limit is greater than 0")

    @property
    def per_second(self) -> Decimal:
        return _RATES.divide(self.limit, Decimal(self.per.seconds))

    def as_dict(self) -> dict[str, object]:
        return {"limit": format_quantity(self.limit), "per": self.per.value}


@dataclass(frozen=True, slots=True)
class Override:
    limit: Decimal | None = None
    policy: LimitPolicy | None = None
    throttle_rate: Decimal | None = None
    max_overage_amount: Decimal | None = None
    rate_limit: RateLimit | None = None

    def __post_init__(self) -> None:
        if self.policy is LimitPolicy.THROTTLE and self.throttle_rate is None:
            raise ValueError("the throttle policy needs a throttle_rate")

    def as_dict(self) -> dict[str, object]:
        """The JSON body `parse_override` reads back (null for terms left to the plan)."""
        return {
            "limit": format_optional(self.limit),
            "policy": None if self.policy is None else self.policy.value,
            "throttle_rate": format_optional(self.throttle_rate),
            "max_overage_amount": format_optional(self.max_overage_amount),
            "rate_limit": None if self.rate_limit is None else self.rate_limit.as_dict(),
        }

    def applied_to(self, plan: ChargeLimit | None) -> ChargeLimit | None:
        """The limit in force: the plan's, with each overridden term replaced. A limit set
        only here blocks unless a policy is given; None when neither sets a limit."""
        limit = self.limit if self.limit is not None else (plan.limit if plan else None)
        if limit is None:
            return None
        policy = self.policy or (plan.policy if plan else LimitPolicy.BLOCK)
        rate = self.throttle_rate
        if rate is None and plan is not None:
            rate = plan.throttle_rate
        if policy is not LimitPolicy.THROTTLE:
            rate = None
        elif rate is None:
            policy = LimitPolicy.BLOCK  # unreachable through parse_override; stay safe
        return ChargeLimit(limit, policy, rate)


def parse_override(body: object) -> Override:
    """An override from an API body, every bad field reported at its JSON Pointer."""
    problems = Problems()
    fields_body = as_object(body, "", problems)
    if fields_body is None:
        problems.raise_if_any("The override is not valid")
        raise AssertionError("unreachable")
    fields = FieldReader(fields_body, "", problems)
    fields.only(OVERRIDE_FIELDS, "a limit override")
    if not any(fields.given(name) for name in OVERRIDE_FIELDS):
        problems.add("/", "set at least one of " + ", ".join(OVERRIDE_FIELDS), "required")
    limit = fields.decimal("limit")
    policy = fields.required_choice("policy", LimitPolicy) if fields.given("policy") else None
    rate = fields.decimal("throttle_rate", positive=True)
    if policy is LimitPolicy.THROTTLE and not fields.given("throttle_rate"):
        fields.report("throttle_rate", "is required for the throttle policy")
    cap = fields.decimal("max_overage_amount")
    rate_limit = _rate_limit(fields_body.get("rate_limit"), problems)
    problems.raise_if_any("The override is not valid")
    return Override(limit, policy, rate, cap, rate_limit)


def _rate_limit(raw: object, problems: Problems) -> RateLimit | None:
    if raw is None:
        return None
    body = as_object(raw, "/rate_limit", problems)
    if body is None:
        return None
    before = len(problems.items)
    fields = FieldReader(body, "/rate_limit", problems)
    fields.only(("limit", "per"), "a rate limit")
    limit = fields.decimal("limit", required=True, positive=True)
    per = fields.required_choice("per", Per)
    if len(problems.items) > before or limit is None or per is None:
        return None
    return RateLimit(limit, per)


def override_from_stored(body: Mapping[str, object]) -> Override:
    """An override as stored (its `as_dict`), nulls included."""
    return parse_override({k: v for k, v in body.items() if v is not None})
