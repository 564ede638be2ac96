"""Plans, subscriptions and their segments: the questions billing asks about them.

Stable API (the billing run and invoices read it):
- `Plans(conn).version(key, version) -> Plan | None`, `.current(key) -> Plan | None`
- `Subscriptions(conn).by_id(id) -> Subscription | None`, `.for_customer(key)`,
  `.active_for_customer(key)`, `.active_between(start_us, end_us)`, `.due(now_us)`
- `Segments(conn).of(subscription_id) -> list[Segment]` (ordered by start)
Segments and subscriptions are stored as read; call `services.subscriptions.materialize`
before rating so that a change or cancel that fell due is in them.
"""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import datetime
from decimal import Decimal
from typing import NamedTuple

from sqlalchemy import and_, delete, func, insert, or_, select, update
from sqlalchemy.engine import Connection, RowMapping
from sqlalchemy.exc import IntegrityError

from fairmeter.domain.errors import AlreadyExists, FieldError
from fairmeter.domain.plans import Plan, parse_plan
from fairmeter.domain.subscriptions import Segment, Status, Subscription
from fairmeter.storage.tables import customers, plans, subscription_segments, subscriptions


class PlanEntry(NamedTuple):
    plan: Plan
    created_us: int


class Plans:
    def __init__(self, conn: Connection):
        self.conn = conn

    def add(self, plan: Plan, now_us: int) -> PlanEntry:
        """Store `plan` as its `version`; a (key, version) that exists is AlreadyExists."""
        try:
            with self.conn.begin_nested():
                self.conn.execute(insert(plans).values(**_plan_values(plan), created_us=now_us))
        except IntegrityError:
            raise AlreadyExists(
                f"a plan with key {plan.key!r} exists",
                errors=(FieldError("/key", "is taken", "already_exists"),),
            ) from None
        return PlanEntry(plan, now_us)

    def replace(self, plan: Plan) -> None:
        """Overwrite the terms of `plan.version` in place (only while nobody holds it)."""
        p = plans.c
        self.conn.execute(
            update(plans)
            .where(p.key == plan.key, p.version == plan.version)
            .values(**_plan_values(plan))
        )

    def version(self, key: str, version: int) -> Plan | None:
        found = self.entry(key, version)
        return found.plan if found else None

    def current(self, key: str) -> Plan | None:
        """The latest version of the plan, or None."""
        found = self.entry(key)
        return found.plan if found else None

    def entry(self, key: str, version: int | None = None) -> PlanEntry | None:
        """A version of the plan (the latest when `version` is None) with its creation time."""
        p = plans.c
        query = select(plans).where(p.key == key)
        query = query.order_by(p.version.desc()).limit(1)
        if version is not None:
            query = query.where(p.version == version)
        row = self.conn.execute(query).mappings().first()
        return _entry(row) if row else None

    def catalog(self, include_versions: bool = False) -> list[PlanEntry]:
        """Every plan's latest version by key, or every version (by key, then version)."""
        p = plans.c
        query = select(plans).order_by(p.key, p.version)
        if not include_versions:
            latest = select(p.key, func.max(p.version).label("v")).group_by(p.key).subquery()
            query = query.join(latest, and_(p.key == latest.c.key, p.version == latest.c.v))
        return [_entry(row) for row in self.conn.execute(query).mappings()]

    def climbing_to(self, key: str) -> list[Plan]:
        """The latest versions of the plans whose next_plan is `key`."""
        return [e.plan for e in self.catalog() if e.plan.next_plan == key]

    def in_use(self, key: str, version: int) -> bool:
        """Whether any subscription holds, held or waits for this version."""
        s, g = subscriptions.c, subscription_segments.c
        held = select(g.id).where(g.plan_key == key, g.plan_version == version).limit(1)
        waiting = select(s.id).where(
            or_(
                and_(s.plan_key == key, s.plan_version == version),
                and_(s.pending_plan_key == key, s.pending_plan_version == version),
            )
        )
        return any(self.conn.execute(q.limit(1)).first() for q in (held, waiting))


def _plan_values(plan: Plan) -> dict[str, object]:
    return {
        "key": plan.key,
        "version": plan.version,
        "name": plan.name,
        "currency": plan.currency,
        "interval": plan.interval.value,
        "next_plan": plan.next_plan,
        "definition": json.dumps(plan.as_dict(), sort_keys=True),
    }


def _entry(row: RowMapping) -> PlanEntry:
    plan = parse_plan(json.loads(row["definition"]))
    return PlanEntry(replace(plan, version=row["version"]), row["created_us"])


class Subscriptions:
    def __init__(self, conn: Connection):
        self.conn = conn

    def add(self, subscription: Subscription) -> None:
        self.conn.execute(insert(subscriptions).values(**_subscription_values(subscription)))

    def save(self, subscription: Subscription) -> None:
        """Write every column of an existing subscription."""
        values = _subscription_values(subscription)
        values.pop("created_us")
        self.conn.execute(
            update(subscriptions).where(subscriptions.c.id == subscription.id).values(**values)
        )

    def by_id(self, subscription_id: str, *, lock: bool = False) -> Subscription | None:
        """One subscription; with `lock`, its row stays locked to the end of the
        transaction (PostgreSQL; SQLite writers are serialized anyway)."""
        query = select(subscriptions).where(subscriptions.c.id == subscription_id)
        if lock:
            query = query.with_for_update()
        row = self.conn.execute(query).mappings().first()
        return _subscription(row) if row else None

    def lock_customer(self, customer_key: str) -> bool:
        """Lock the customer's row to the end of the transaction (so that two requests
        cannot both subscribe it); whether the customer exists."""
        query = select(customers.c.id).where(customers.c.key == customer_key).with_for_update()
        return self.conn.execute(query).first() is not None

    def listing(self, limit: int = 1000) -> list[Subscription]:
        """Every subscription, by id (at most `limit`)."""
        query = select(subscriptions).order_by(subscriptions.c.id).limit(limit)
        return [_subscription(row) for row in self.conn.execute(query).mappings()]

    def for_customer(self, customer_key: str) -> list[Subscription]:
        """The customer's subscriptions, the latest start first."""
        s = subscriptions.c
        query = (
            select(subscriptions)
            .where(s.customer_key == customer_key)
            .order_by(s.start_us.desc(), s.created_us.desc(), s.id)
        )
        return [_subscription(row) for row in self.conn.execute(query).mappings()]

    def active_for_customer(self, customer_key: str) -> Subscription | None:
        """The customer's one active subscription (status active), or None."""
        found = [s for s in self.for_customer(customer_key) if s.status is Status.ACTIVE]
        return found[0] if found else None

    def active_between(self, start_us: int, end_us: int) -> list[Subscription]:
        """Every subscription active at some instant of [start_us, end_us), by id: started
        before the range ends, and not ended before it starts (nor before it started)."""
        s = subscriptions.c
        query = (
            select(subscriptions)
            .where(
                s.start_us < end_us,
                or_(s.ended_us.is_(None), and_(s.ended_us > start_us, s.ended_us > s.start_us)),
            )
            .order_by(s.id)
        )
        return [_subscription(row) for row in self.conn.execute(query).mappings()]

    def due(self, now_us: int) -> list[Subscription]:
        """Active subscriptions with a change or cancel waiting: the ones `materialize` may
        have work for at `now_us`."""
        s = subscriptions.c
        query = select(subscriptions).where(
            s.status == Status.ACTIVE.value,
            or_(s.cancel_at_us <= now_us, s.pending_plan_key.is_not(None)),
        )
        return [_subscription(row) for row in self.conn.execute(query.order_by(s.id)).mappings()]


def _subscription_values(sub: Subscription) -> dict[str, object]:
    overage = sub.max_overage_amount
    return {
        "id": sub.id,
        "customer_key": sub.customer_key,
        "plan_key": sub.plan_key,
        "plan_version": sub.plan_version,
        "status": sub.status.value,
        "interval": sub.interval,
        "zone": sub.zone,
        "anchor_local": sub.anchor_local.isoformat(),
        "start_us": sub.start_us,
        "cancel_at_us": sub.cancel_at_us,
        "ended_us": sub.ended_us,
        "pending_plan_key": sub.pending_plan_key,
        "pending_plan_version": sub.pending_plan_version,
        "max_overage_amount": None if overage is None else str(overage),
        "created_us": sub.created_us,
        "updated_us": sub.updated_us,
    }


def _subscription(row: RowMapping) -> Subscription:
    overage = row["max_overage_amount"]
    return Subscription(
        id=row["id"],
        customer_key=row["customer_key"],
        plan_key=row["plan_key"],
        plan_version=row["plan_version"],
        status=Status(row["status"]),
        interval=row["interval"],
        zone=row["zone"],
        anchor_local=datetime.fromisoformat(row["anchor_local"]),
        start_us=row["start_us"],
        cancel_at_us=row["cancel_at_us"],
        ended_us=row["ended_us"],
        pending_plan_key=row["pending_plan_key"],
        pending_plan_version=row["pending_plan_version"],
        max_overage_amount=None if overage is None else Decimal(overage),
        created_us=row["created_us"],
        updated_us=row["updated_us"],
    )


class Segments:
    def __init__(self, conn: Connection):
        self.conn = conn

    def of(self, subscription_id: str) -> list[Segment]:
        """The subscription's segments, ordered by start."""
        g = subscription_segments.c
        query = (
            select(subscription_segments)
            .where(g.subscription_id == subscription_id)
            .order_by(g.start_us, g.id)
        )
        return [_segment(row) for row in self.conn.execute(query).mappings()]

    def add(self, segment: Segment, now_us: int) -> Segment:
        values = _segment_values(segment)
        new_id = self.conn.execute(
            insert(subscription_segments)
            .values(**values, created_us=now_us)
            .returning(subscription_segments.c.id)
        ).scalar_one()
        return replace(segment, id=new_id)

    def save(self, segment: Segment) -> None:
        """Write the plan, end and reason of a stored segment (found by id)."""
        values = _segment_values(segment)
        self.conn.execute(
            update(subscription_segments)
            .where(subscription_segments.c.id == segment.id)
            .values(**values)
        )

    def remove(self, segment_ids: list[int]) -> None:
        if segment_ids:
            g = subscription_segments.c
            self.conn.execute(delete(subscription_segments).where(g.id.in_(segment_ids)))


def _segment_values(segment: Segment) -> dict[str, object]:
    return {
        "subscription_id": segment.subscription_id,
        "plan_key": segment.plan_key,
        "plan_version": segment.plan_version,
        "start_us": segment.start_us,
        "end_us": segment.end_us,
        "reason": segment.reason,
    }


def _segment(row: RowMapping) -> Segment:
    return Segment(
        subscription_id=row["subscription_id"],
        plan_key=row["plan_key"],
        plan_version=row["plan_version"],
        start_us=row["start_us"],
        end_us=row["end_us"],
        reason=row["reason"],
        id=row["id"],
    )
