"""A customer as alert evaluation sees it for the current period, read in one transaction
for every customer of a pass: plan in force, period, limits (the plan's or the customer's
overrides), budget and the rules that apply."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping
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
from fairmeter.domain.windows import NEVER_US, Span, from_us, next_instant_us
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
    # The terms version it was read at (migration 0009: every write to a table it is built
    # from bumps it), and the first instant at which time alone changes it: a scheduled
    # plan change or cancel, the period's end.
    version: int = -1
    changes_at_us: int = NEVER_US


@dataclass
class ContextCache:
    """Contexts remembered while nothing they are built from changed: a busy customer's
    plan, rules and limits are read once, not once a second.

    An entry older than `ttl` seconds is kept when the terms version is the one it was read
    at (one read for all the entries of a pass) and time alone has not changed it
    (`changes_at_us`, the period's end); else it is read again. Changes made through this
    process's API are seen at once (`forget`); others within `ttl`."""

    ttl: float = 1.0
    most: int = 100_000
    monotonic: Callable[[], float] = time.monotonic
    _entries: dict[str, tuple[float, AlertContext]] = field(default_factory=dict)

    def contexts(self, db: Database, customers: Iterable[str], now_us: int) -> list[AlertContext]:
        now = self.monotonic()
        found: list[AlertContext] = []
        missing: list[str] = []
        version: int | None = None
        for key in customers:
            entry = self._entries.get(key)
            if entry is None or now_us >= entry[1].changes_at_us or not _holds(entry[1], now_us):
                missing.append(key)
                continue
            read_at, ctx = entry
            if now - read_at < self.ttl:
                found.append(ctx)
                continue
            if version is None:
                with db.read() as conn:
                    version = Limits(conn).terms_version()
            if version == ctx.version:
                self._entries[key] = (now, ctx)  # kept for another `ttl`
                found.append(ctx)
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
        version = Limits(conn).terms_version()  # first: a write after it shows as a change
        found = [a for key in sorted(touched) if (a := _account(conn, key, now_us, plans))]
        explicit = AlertRules(conn).applying_to({a[0].key: a[1].key for a in found})
    contexts: list[AlertContext] = []
    for customer, plan, account, limits, changes_at in found:
        rules = effective_rules(explicit, plan.key, customer.key, list(limits), customer.budget)
        contexts.append(AlertContext(customer, plan, account.period, rules, account, limits,
                                     version, changes_at))  # fmt: skip
    return contexts


_Account = tuple[Customer, Plan, SpendAccount, dict[str, Decimal], int]


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
    # When time alone changes this: a segment starting or ending (a scheduled plan
    # change), a scheduled cancel; the period's end is checked apart (`_holds`).
    instants = [sub.cancel_at_us, *(t for s in segments for t in (s.start_us, s.end_us))]
    changes_at = next_instant_us(instants, now_us)
    limits = limits_in_force(plan, Limits(conn).overrides(key))
    return customer, plan, account, limits, changes_at


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
