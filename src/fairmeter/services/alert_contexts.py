"""A customer as alert evaluation sees it for the current period, read in one transaction
for every customer of a pass: plan in force, period, limits (the plan's or the customer's
overrides), budget and the rules that apply."""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal

from sqlalchemy.engine import Connection

from fairmeter.domain import subscriptions as lifecycle
from fairmeter.domain.alert_crossings import effective_rules
from fairmeter.domain.alerts import AlertRule, Base
from fairmeter.domain.customers import Customer
from fairmeter.domain.limits import Override
from fairmeter.domain.plans import Plan
from fairmeter.domain.subscriptions import Segment
from fairmeter.domain.windows import Span, from_us
from fairmeter.services.alert_spend import SpendAccount
from fairmeter.storage.alerts import AlertRules
from fairmeter.storage.billing import Plans, Segments, Subscriptions
from fairmeter.storage.catalog import Customers
from fairmeter.storage.database import Database
from fairmeter.storage.limits import Limits


@dataclass(frozen=True)
class AlertContext:
    """The plan in force, the rules that apply, and what pricing the period needs."""

    customer: Customer
    plan: Plan
    period: Span
    rules: list[AlertRule]
    spend: SpendAccount
    # Each meter's limit in force: the plan's, or the customer's override (issue #4).
    limits: Mapping[str, Decimal] = field(default_factory=dict)


@dataclass
class ContextCache:
    """Contexts remembered for `ttl` seconds (and only within their period): a busy
    customer's plan, rules and limits are read once a second, not on every pass. Changes
    made through this process's API are seen at once (`forget`); others within `ttl`."""

    ttl: float = 1.0
    most: int = 100_000
    _entries: dict[str, tuple[float, AlertContext]] = field(default_factory=dict)

    def contexts(self, db: Database, customers: Iterable[str], now_us: int) -> list[AlertContext]:
        now = time.monotonic()
        found: list[AlertContext] = []
        missing: list[str] = []
        for key in customers:
            entry = self._entries.get(key)
            if entry is not None and now - entry[0] < self.ttl and _holds(entry[1], now_us):
                found.append(entry[1])
            else:
                missing.append(key)
        loaded = load_contexts(db, missing, now_us) if missing else []
        if len(self._entries) + len(loaded) > self.most:
            self._entries.clear()
        for ctx in loaded:  # a customer without a subscription is asked again next time
            self._entries[ctx.customer.key] = (now, ctx)
        return found + loaded

    def forget(self) -> None:
        self._entries.clear()


def _holds(ctx: AlertContext, now_us: int) -> bool:
    return ctx.period.start_us <= now_us < ctx.period.end_us


def load_contexts(db: Database, touched: Iterable[str], now_us: int) -> list[AlertContext]:
    """The customers with an active subscription: plan in force now, current period,
    segments, limits and the rules that apply (defaults included)."""
    plans: dict[tuple[str, int], Plan | None] = {}
    with db.read() as conn:
        found = [a for key in sorted(touched) if (a := _account(conn, key, now_us, plans))]
        explicit = AlertRules(conn).applying_to({c.key: p.key for c, p, _, _ in found})
    contexts: list[AlertContext] = []
    for customer, plan, account, limits in found:
        rules = effective_rules(explicit, plan.key, customer.key, list(limits), customer.budget)
        contexts.append(AlertContext(customer, plan, account.period, rules, account, limits))
    return contexts


_Account = tuple[Customer, Plan, SpendAccount, dict[str, Decimal]]


def _account(
    conn: Connection, key: str, now_us: int, plans: dict[tuple[str, int], Plan | None]
) -> _Account | None:
    """A customer, its plan in force, its period's segments and limits; None without an
    active subscription (materialized as of now, without writing: a read)."""
    held = Subscriptions(conn).active_for_customer(key)
    customer = Customers(conn).by_key(key) if held else None
    if held is None or customer is None:
        return None
    sub, segments = lifecycle.materialize(held, Segments(conn).of(held.id), now_us)
    started = [s for s in segments if s.start_us <= now_us]
    if not sub.active or not started:
        return None
    priced: list[tuple[Segment, Plan]] = []
    for segment in started:
        version = (segment.plan_key, segment.plan_version)
        if version not in plans:
            plans[version] = Plans(conn).version(*version)
        plan = plans[version]
        if plan is not None:
            priced.append((segment, plan))
    if not priced or priced[-1][0] is not started[-1]:
        return None
    plan = priced[-1][1]
    account = SpendAccount(key, sub, sub.period_at(from_us(now_us)), priced)
    return customer, plan, account, limits_in_force(plan, Limits(conn).overrides(key))


def limits_in_force(plan: Plan, overrides: Mapping[str, Override]) -> dict[str, Decimal]:
    """Each meter's limit: the plan charge's, replaced by the customer's override."""
    found: dict[str, Decimal] = {}
    for meter in {*plan.meters, *overrides}:
        charge = plan.charge_for(meter)
        limit = charge.limit if charge else None
        override = overrides.get(meter)
        in_force = override.applied_to(limit) if override else limit
        if in_force is not None:
            found[meter] = in_force.limit
    return found


def base_of(ctx: AlertContext, rule: AlertRule) -> Decimal | None:
    """What a percentage rule is a percentage of, for this customer now."""
    if rule.base is Base.BUDGET:
        return ctx.customer.budget
    if rule.base is Base.LIMIT:
        return ctx.limits.get(rule.meter) if rule.meter else None
    charge = ctx.plan.charge_for(rule.meter) if rule.meter else None
    if rule.base is Base.INCLUDED and charge is not None:
        return charge.included
    return None
