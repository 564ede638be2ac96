"""Subscriptions: subscribe, change plan, cancel, and read them as of now.

A change or cancel scheduled for a period's end is applied lazily by `materialize`: every
use case here calls it first, and so must whoever rates segments (the billing run): a
subscription read at any time after the boundary is as if it had been applied then.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime
from decimal import Decimal

from sqlalchemy.engine import Connection

from fairmeter.domain import subscriptions as rules
from fairmeter.domain.customers import Customer
from fairmeter.domain.errors import Conflict, FieldError, InvalidInput, NotFound
from fairmeter.domain.periods import anchor_from
from fairmeter.domain.plans import Plan
from fairmeter.domain.subscriptions import (
    AlreadySubscribed,
    ChangeAt,
    CurrencyMismatch,
    NoSubscription,
    Reason,
    Segment,
    Status,
    Subscription,
)
from fairmeter.domain.windows import to_us
from fairmeter.services.clock import Clock
from fairmeter.storage.billing import Plans, Segments, Subscriptions
from fairmeter.storage.catalog import Customers
from fairmeter.storage.database import Database


@dataclass(frozen=True)
class SubscriptionView:
    """A subscription and its segments as of `as_of` (materialized)."""

    subscription: Subscription
    segments: list[Segment]
    as_of: datetime


def create_subscription(
    db: Database,
    clock: Clock,
    customer_key: str,
    plan_key: str,
    start_at: datetime | None = None,
    billing_anchor: datetime | None = None,
    max_overage_amount: Decimal | None = None,
) -> SubscriptionView:
    """Subscribe a customer (at most one active subscription each) to a plan's latest
    version, from `start_at` (default now); periods repeat from `billing_anchor` (default
    `start_at`) in the customer's time zone, and the first segment starts."""
    now = clock.now()
    start = start_at or now
    with db.write() as conn:
        subs = Subscriptions(conn)
        customer = (
            Customers(conn).by_key(customer_key) if subs.lock_customer(customer_key) else None
        )
        if customer is None:
            detail = f"no customer has the key {customer_key!r}"
            raise _invalid("/customer", detail, "unknown_customer")
        plan = _plan(conn, plan_key, customer.currency)
        held = subs.active_for_customer(customer_key)
        if held is not None:
            raise AlreadySubscribed(
                f"customer {customer_key!r} is subscribed ({held.id}); change its plan instead",
                errors=(FieldError("/customer", f"has {held.id}", "already_subscribed"),),
            )
        subscription = _new(customer, plan, start, billing_anchor, now)
        subscription = replace(subscription, max_overage_amount=max_overage_amount)
        subs.add(subscription)
        first = Segment(subscription.id, plan.key, plan.version, to_us(start), None, Reason.START)
        segment = Segments(conn).add(first, to_us(now))
    return SubscriptionView(subscription, [segment], now)


def _new(
    customer: Customer, plan: Plan, start: datetime, billing_anchor: datetime | None, now: datetime
) -> Subscription:
    anchor = anchor_from(start, customer.timezone, plan.interval, billing_anchor)
    return Subscription(
        id="sub_" + secrets.token_hex(12),
        customer_key=customer.key,
        plan_key=plan.key,
        plan_version=plan.version,
        status=Status.ACTIVE,
        interval=plan.interval.value,
        zone=customer.timezone,
        anchor_local=anchor.local,
        start_us=to_us(start),
        created_us=to_us(now),
        updated_us=to_us(now),
    )


def _invalid(pointer: str, detail: str, code: str) -> InvalidInput:
    return InvalidInput(detail, errors=(FieldError(pointer, detail, code),))


def _plan(conn: Connection, plan_key: str, currency: str, interval: str | None = None) -> Plan:
    """The latest version of a plan a customer billed in `currency` may hold."""
    plan = Plans(conn).current(plan_key)
    if plan is None:
        raise _invalid("/plan", f"no plan has the key {plan_key!r}", "unknown_plan")
    if plan.currency != currency:
        raise CurrencyMismatch(
            f"plan {plan.key!r} bills in {plan.currency}; the customer is billed in {currency}",
            errors=(FieldError("/plan", f"bills in {plan.currency}", "currency_mismatch"),),
        )
    if interval is not None and plan.interval.value != interval:
        detail = f"bills every {plan.interval.value}; the subscription bills every {interval}"
        raise _invalid("/plan", detail, "interval_mismatch")
    return plan


def materialize(conn: Connection, subscription: Subscription, now: datetime) -> Subscription:
    """Apply, and store, what fell due by `now` (see `domain.subscriptions.materialize`);
    returns the subscription as of `now`. Run inside a write transaction; the row is read
    again under a lock, so a stale `subscription` never overwrites a concurrent change."""
    stored = Subscriptions(conn).by_id(subscription.id, lock=True) or subscription
    segments = Segments(conn).of(subscription.id)
    after, after_segments = rules.materialize(stored, segments, to_us(now))
    _store(conn, (stored, segments), (after, after_segments), to_us(now))
    return after


def materialize_due(db: Database, clock: Clock) -> int:
    """Materialize every subscription with a change or cancel waiting; how many changed.
    The billing run calls it before reading segments."""
    now = clock.now()
    changed = 0
    with db.write() as conn:
        for subscription in Subscriptions(conn).due(to_us(now)):
            changed += materialize(conn, subscription, now) != subscription
    return changed


def _store(
    conn: Connection,
    before: tuple[Subscription, list[Segment]],
    after: tuple[Subscription, list[Segment]],
    now_us: int,
) -> list[Segment]:
    """Write what differs between `before` and `after`; the segments as stored."""
    if after[0] != before[0]:
        Subscriptions(conn).save(after[0])
    repo = Segments(conn)
    old = {segment.id: segment for segment in before[1]}
    stored: list[Segment] = []
    for segment in after[1]:
        if segment.id == 0:
            stored.append(repo.add(segment, now_us))
            continue
        if old.get(segment.id) != segment:
            repo.save(segment)
        stored.append(segment)
    repo.remove(sorted(set(old) - {segment.id for segment in after[1]}))
    return stored


def _load(
    conn: Connection, clock: Clock, subscription_id: str
) -> tuple[Subscription, list[Segment], int]:
    """The subscription, locked and materialized as of now, its segments and now."""
    now = clock.now()
    subscription = Subscriptions(conn).by_id(subscription_id, lock=True)
    if subscription is None:
        raise NotFound(f"no subscription with id {subscription_id!r}")
    segments = Segments(conn).of(subscription_id)
    after = rules.materialize(subscription, segments, to_us(now))
    stored = _store(conn, (subscription, segments), after, to_us(now))
    return after[0], stored, to_us(now)


def get_subscription(db: Database, clock: Clock, subscription_id: str) -> SubscriptionView:
    now = clock.now()
    with db.read() as conn:
        subscription = Subscriptions(conn).by_id(subscription_id)
        segments = Segments(conn).of(subscription_id) if subscription else []
    if subscription is None:
        raise NotFound(f"no subscription with id {subscription_id!r}")
    after, after_segments = rules.materialize(subscription, segments, to_us(now))
    if after == subscription and after_segments == segments:
        return SubscriptionView(subscription, segments, now)
    # Something fell due: store it, under the row lock so that it is stored once.
    with db.write() as conn:
        stored, stored_segments, _ = _load(conn, clock, subscription_id)
    return SubscriptionView(stored, stored_segments, now)


def list_subscriptions(
    db: Database, clock: Clock, customer_key: str | None = None
) -> list[SubscriptionView]:
    """A customer's subscriptions (latest start first), or every subscription by id."""
    with db.read() as conn:
        subs = Subscriptions(conn)
        found = subs.for_customer(customer_key) if customer_key else subs.listing()
    return [get_subscription(db, clock, s.id) for s in found]


def customer_subscription(db: Database, clock: Clock, customer_key: str) -> SubscriptionView:
    """The customer's active subscription; NoSubscription (404) when it has none."""
    with db.read() as conn:
        if Customers(conn).by_key(customer_key) is None:
            raise NotFound(f"no customer with key {customer_key!r}")
        held = Subscriptions(conn).active_for_customer(customer_key)
    view = get_subscription(db, clock, held.id) if held else None
    if view is None or not view.subscription.active:
        raise NoSubscription(f"customer {customer_key!r} has no active subscription")
    return view


def change_plan(
    db: Database,
    clock: Clock,
    subscription_id: str,
    plan_key: str,
    at: ChangeAt | str,
    reason: str = Reason.CHANGE,
    expect: tuple[str, int] | None = None,
    also: Callable[[Connection], object] | None = None,
) -> SubscriptionView:
    """Move a subscription to the latest version of `plan_key`, now (the open segment ends
    and one on the new plan starts) or at the current period's end. `reason` is kept on
    the new segment ("change", or "upgrade" when a limit moves a customer up). With
    `expect` (plan key, version), only a subscription still on that version changes
    (checked under the row lock; Conflict otherwise): two upgrades decided at once by
    different processes move the customer up once. `also` runs in the change's transaction
    (e.g. queuing the notification that tells of it)."""
    when = ChangeAt(at)
    with db.write() as conn:
        sub, segments, now_us = _load(conn, clock, subscription_id)
        rules.require_active(sub, "/plan")
        if expect is not None and (sub.plan_key, sub.plan_version) != expect:
            raise Conflict(f"subscription {sub.id} is no longer on plan {expect[0]!r}")
        customer = Customers(conn).by_key(sub.customer_key)
        assert customer is not None
        plan = _plan(conn, plan_key, customer.currency, sub.interval)
        target = (plan.key, plan.version)
        if when is ChangeAt.NOW:
            after = rules.change_now(sub, segments, target, now_us, reason)
        else:
            after = rules.schedule_change(sub, segments, target, now_us)
        stored = _store(conn, (sub, segments), after, now_us)
        if also is not None:
            also(conn)
    return SubscriptionView(after[0], stored, clock.now())


def cancel_subscription(
    db: Database, clock: Clock, subscription_id: str, at: ChangeAt | str
) -> SubscriptionView:
    """End a subscription now, or at the end of the current period."""
    when = ChangeAt(at)
    with db.write() as conn:
        sub, segments, now_us = _load(conn, clock, subscription_id)
        if when is ChangeAt.NOW:
            after = rules.cancel_now(sub, segments, now_us)
        else:
            after = rules.schedule_cancel(sub, segments, now_us)
        stored = _store(conn, (sub, segments), after, now_us)
    return SubscriptionView(after[0], stored, clock.now())
