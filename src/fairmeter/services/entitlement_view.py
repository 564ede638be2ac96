"""What a customer may use this period, meter by meter, and what was refused or upgraded:
`GET /v1/customers/{key}/entitlements`."""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from itertools import pairwise
from typing import TYPE_CHECKING

from fairmeter.domain.entitlements import Terms, overage_amount
from fairmeter.domain.errors import InvalidInput, NotFound
from fairmeter.domain.numbers import EXACT
from fairmeter.domain.subscriptions import NoSubscription, Segment
from fairmeter.domain.subscriptions import Reason as SegmentReason
from fairmeter.domain.windows import to_us
from fairmeter.services.subscriptions import customer_subscription
from fairmeter.storage.billing import Plans
from fairmeter.storage.limits import Limits

if TYPE_CHECKING:
    from fairmeter.services.entitlements import Enforcer

ZERO = Decimal(0)


@dataclass(frozen=True)
class MeterEntitlement:
    terms: Terms
    usage: Decimal | None  # None: the counters could not be reached
    denials: dict[str, int]

    @property
    def remaining(self) -> Decimal | None:
        if self.terms.limit is None or self.usage is None:
            return None
        return max(EXACT.subtract(self.terms.limit.limit, self.usage), ZERO)

    @property
    def overage_amount(self) -> Decimal | None:
        limit, charge = self.terms.limit, self.terms.charge
        if limit is None or charge is None or self.usage is None:
            return None
        return overage_amount(charge, limit.limit, self.usage)


@dataclass(frozen=True)
class Upgrade:
    at_us: int
    from_plan: str
    to_plan: str


@dataclass(frozen=True)
class CustomerEntitlements:
    customer: str
    suspended: bool
    plan: str | None = None
    period: tuple[int, int] | None = None
    meters: list[MeterEntitlement] = field(default_factory=list)
    upgrades: list[Upgrade] = field(default_factory=list)


def customer_entitlements(enforcer: Enforcer, customer: str) -> CustomerEntitlements:
    """Every meter of the customer's plan with a limit or a rate limit (overrides applied)."""
    rt = enforcer.rt
    try:
        view = customer_subscription(rt.db, rt.clock, customer)
    except NoSubscription:
        with rt.db.read() as conn:
            suspended = Limits(conn).suspension(customer) is not None
        return CustomerEntitlements(customer, suspended)
    subscription, now_us = view.subscription, to_us(rt.clock.now())
    with rt.db.read() as conn:
        plan = Plans(conn).version(subscription.plan_key, subscription.plan_version)
    enforcer.stats.flush(rt.db)  # this process's refusals so far
    items: list[MeterEntitlement] = []
    for meter in plan.meters if plan else ():
        try:
            armed = enforcer.terms.get(customer, meter, now_us)
        except (InvalidInput, NotFound):
            continue  # archived since, or a meter limits do not apply to (max, latest ...)
        terms = armed.terms
        if terms.limit is None and terms.rate_limit is None:
            continue
        items.append(MeterEntitlement(terms, enforcer.usage_of(armed), {}))
    span = subscription.period_at(rt.clock.now())
    period = (to_us(span.start), to_us(span.end))
    with rt.db.read() as conn:
        counts = Limits(conn).denials(customer, period[0])
        suspended = Limits(conn).suspension(customer) is not None
    for item in items:
        item.denials.update({r: n for (m, r), n in sorted(counts.items()) if m == item.terms.meter})
    upgrades = _upgrades(view.segments, period)
    return CustomerEntitlements(customer, suspended, subscription.plan_key, period, items, upgrades)


def _upgrades(segments: list[Segment], period: tuple[int, int]) -> list[Upgrade]:
    """Plan changes of the period made by the upgrade policy, oldest first."""
    found: list[Upgrade] = []
    for before, after in pairwise(segments):
        if after.reason == SegmentReason.UPGRADE and period[0] <= after.start_us < period[1]:
            found.append(Upgrade(after.start_us, before.plan_key, after.plan_key))
    return found
