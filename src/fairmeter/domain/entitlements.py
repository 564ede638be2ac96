"""Entitlements: the terms a customer uses a meter under this period, and the answer to
"may this customer use `quantity` more now?".

Every policy reduces to one atomic step on a counter (see `storage.counters`): a
`ceiling` that usage may not pass, a `soft_limit` past which a throttle bucket applies,
and an optional rate bucket. The rules here are pure: which ceiling a policy sets
(`Terms.ceiling`), the exact overage a usage costs (`overage_amount`), the largest usage
whose overage stays within a spend cap (`usage_ceiling`), and the decision a counter's
answer means (`Decision`). Times are µs since the epoch; they become instants only in
`Decision.as_dict`.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from enum import StrEnum

from fairmeter.domain.limits import Override, RateLimit
from fairmeter.domain.numbers import EXACT, format_optional
from fairmeter.domain.overage import ZERO, overage_amount, usage_ceiling
from fairmeter.domain.plans import Plan
from fairmeter.domain.pricing.charges import Charge, ChargeLimit, LimitPolicy
from fairmeter.domain.windows import format_instant

__all__ = ["Decision", "Reason", "Terms", "build_terms", "decide", "overage_amount",
           "usage_ceiling"]  # fmt: skip


class Reason(StrEnum):
    """Why a decision came out as it did (stable codes; clients switch on them)."""

    WITHIN_ALLOWANCE = "within_allowance"
    OVERAGE = "overage"
    LIMIT_REACHED = "limit_reached"
    SPEND_CAP_REACHED = "spend_cap_reached"
    THROTTLED = "throttled"
    UPGRADED = "upgraded"
    SUSPENDED = "suspended"
    NO_SUBSCRIPTION = "no_subscription"
    LIMITS_UNAVAILABLE = "limits_unavailable"


@dataclass(frozen=True, slots=True)
class Terms:
    """What a customer may use of a meter in the period [period_start_us, period_end_us).

    `charge` is None when the customer has no active subscription or its plan does not
    price the meter; `limit` None means no limit (the meter is priced, not capped)."""

    customer: str
    meter: str
    charge: Charge | None = None
    limit: ChargeLimit | None = None
    period_start_us: int = 0
    period_end_us: int = 0
    plan: str | None = None
    plan_version: int = 0
    next_plan: str | None = None
    currency: str | None = None
    spend_cap: Decimal | None = None
    rate_limit: RateLimit | None = None
    suspended: bool = False
    # The usage a counter may not pass, and past which the throttle bucket applies
    # (derived by `build_terms`, kept so that a decision computes neither).
    ceiling: Decimal | None = None
    soft_limit: Decimal | None = None

    @property
    def subscribed(self) -> bool:
        return self.charge is not None

    @property
    def policy(self) -> LimitPolicy | None:
        return None if self.limit is None else self.limit.policy

    @property
    def upgrades_to(self) -> str | None:
        """The plan a refusal at the limit moves the customer to (upgrade policy only)."""
        return self.next_plan if self.policy is LimitPolicy.UPGRADE else None


def build_terms(
    customer: str,
    meter: str,
    *,
    plan: Plan | None,
    period: tuple[int, int] | None,
    override: Override | None = None,
    subscription_cap: Decimal | None = None,
    suspended: bool = False,
) -> Terms:
    """The terms in force: the plan's charge and limit with the customer's override."""
    charge = plan.charge_for(meter) if plan is not None else None
    if plan is None or charge is None or period is None:
        return Terms(customer, meter, suspended=suspended)
    limit = charge.limit if override is None else override.applied_to(charge.limit)
    cap = subscription_cap
    if override is not None and override.max_overage_amount is not None:
        cap = override.max_overage_amount
    soft = limit.limit if limit is not None and limit.policy is LimitPolicy.THROTTLE else None
    return Terms(
        customer,
        meter,
        charge=charge,
        limit=limit,
        period_start_us=period[0],
        period_end_us=period[1],
        plan=plan.key,
        plan_version=plan.version,
        next_plan=plan.next_plan,
        currency=plan.currency,
        spend_cap=cap,
        rate_limit=None if override is None else override.rate_limit,
        suspended=suspended,
        ceiling=_ceiling(charge, limit, cap),
        soft_limit=soft,
    )


def _ceiling(charge: Charge, limit: ChargeLimit | None, cap: Decimal | None) -> Decimal | None:
    """The limit under block and upgrade; under overage the spend cap's `usage_ceiling`
    (none without a cap); none under throttle, where a bucket applies past the limit."""
    if limit is None or limit.policy is LimitPolicy.THROTTLE:
        return None
    if limit.policy is LimitPolicy.OVERAGE:
        return None if cap is None else usage_ceiling(charge, limit.limit, cap)
    return limit.limit


@dataclass(slots=True)
class Decision:
    """The answer to one check or consume. Decimals are exact; times µs since the epoch.

    Not frozen on purpose: one is built per decision on the hot path, where a frozen
    dataclass's `object.__setattr__` per field costs more than the rest of a warm check.
    Treat it as a value; `dataclasses.replace` makes a changed copy."""

    allowed: bool
    reason: Reason
    customer: str
    meter: str
    policy: LimitPolicy | None = None
    usage: Decimal | None = None
    limit: Decimal | None = None
    remaining: Decimal | None = None
    overage_amount: Decimal | None = None
    currency: str | None = None
    retry_after_us: int | None = None
    resets_at_us: int | None = None
    plan: str | None = None
    upgraded_to: str | None = None
    duplicate: bool = False

    def as_dict(self) -> dict[str, object]:
        return {
            "allowed": self.allowed,
            "reason": self.reason.value,
            "customer": self.customer,
            "meter": self.meter,
            "plan": self.plan,
            "policy": None if self.policy is None else self.policy.value,
            "usage": format_optional(self.usage),
            "limit": format_optional(self.limit),
            "remaining": format_optional(self.remaining),
            "overage_amount": format_optional(self.overage_amount),
            "currency": self.currency,
            "retry_after": format_instant(self.retry_after_us),
            "resets_at": format_instant(self.resets_at_us),
            "upgraded_to": self.upgraded_to,
            "duplicate": self.duplicate,
        }


def decide(
    terms: Terms,
    *,
    allowed: bool,
    usage: Decimal,
    refused_by: str | None = None,
    retry_in_us: int | None = None,
    now_us: int = 0,
    upgraded_to: str | None = None,
    standing: Decimal | None = None,
) -> Decision:
    """The decision a counter's answer means under `terms` (a subscribed customer).

    `usage` is after the call when allowed, as it stands when refused; `refused_by` names
    what refused ("rate", "ceiling", "throttle"); `retry_in_us` is a bucket's wait. A check
    passes `standing`, the usage before the call: the reason still judges `usage`, while
    usage, remaining and overage are reported as they stand (a check uses nothing)."""
    rule = terms.limit
    limit = remaining = overage = None
    policy = None if rule is None else rule.policy
    shown = usage if standing is None else standing
    if rule is not None:
        limit = rule.limit
        if shown <= limit:  # the common case costs one subtraction
            remaining, overage = EXACT.subtract(limit, shown), ZERO
        else:
            remaining = ZERO
            overage = None if terms.charge is None else overage_amount(terms.charge, limit, shown)
    if allowed:
        reason = Reason.UPGRADED if upgraded_to else _admitted_reason(terms, usage)
        retry_after = None
    else:
        reason = _refused_reason(terms, refused_by)
        retry_after = terms.period_end_us
        if refused_by in ("rate", "throttle") and retry_in_us is not None:
            retry_after = now_us + retry_in_us
    return Decision(
        allowed,
        reason,
        terms.customer,
        terms.meter,
        policy,
        shown,
        limit,
        remaining,
        overage,
        terms.currency,
        retry_after,
        terms.period_end_us,
        terms.plan,
        upgraded_to,
    )


def _admitted_reason(terms: Terms, usage: Decimal) -> Reason:
    limit = terms.limit
    if limit is None or usage <= limit.limit:
        return Reason.WITHIN_ALLOWANCE
    return Reason.THROTTLED if limit.policy is LimitPolicy.THROTTLE else Reason.OVERAGE


def _refused_reason(terms: Terms, refused_by: str | None) -> Reason:
    if refused_by in ("rate", "throttle"):
        return Reason.THROTTLED
    if terms.policy is LimitPolicy.OVERAGE:
        return Reason.SPEND_CAP_REACHED
    return Reason.LIMIT_REACHED


def refusal(terms: Terms, reason: Reason) -> Decision:
    """A refusal that no counter was asked about: suspended, not subscribed, or the
    shared counters unreachable (fail closed)."""
    period_end = terms.period_end_us or None
    return Decision(
        allowed=False,
        reason=reason,
        customer=terms.customer,
        meter=terms.meter,
        policy=terms.policy,
        limit=None if terms.limit is None else terms.limit.limit,
        currency=terms.currency,
        resets_at_us=period_end,
        plan=terms.plan,
    )


def unchecked(terms: Terms) -> Decision:
    """Admitted without a counter (the shared counters unreachable, fail open)."""
    return Decision(
        allowed=True,
        reason=Reason.LIMITS_UNAVAILABLE,
        customer=terms.customer,
        meter=terms.meter,
        policy=terms.policy,
        limit=None if terms.limit is None else terms.limit.limit,
        currency=terms.currency,
        resets_at_us=terms.period_end_us or None,
        plan=terms.plan,
    )
