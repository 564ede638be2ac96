"""Subscription use cases and the repositories the billing run reads: periods anchored in
the customer's zone, lazy materialization of scheduled changes and cancels, and the
questions `storage.billing` answers. The clock stands at 2026-11-15T12:00Z."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from fairmeter.domain.customers import Customer
from fairmeter.domain.meters import parse_meter
from fairmeter.domain.plans import parse_plan
from fairmeter.domain.subscriptions import Status
from fairmeter.domain.windows import to_us
from fairmeter.services import catalog, plans
from fairmeter.services.clock import FixedClock
from fairmeter.services.runtime import Runtime
from fairmeter.services.subscriptions import (
    cancel_subscription,
    change_plan,
    create_subscription,
    get_subscription,
    materialize_due,
)
from fairmeter.storage.billing import Plans, Segments, Subscriptions

NY = ZoneInfo("America/New_York")


def _utc(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=UTC)  # type: ignore[misc]


@pytest.fixture
def rt(runtime: Runtime) -> Runtime:
    catalog.create_meter(
        runtime.db,
        runtime.clock,
        parse_meter({"key": "api_calls", "event_type": "api.request", "aggregation": "count"}),
    )
    for key, zone in (("acme", "UTC"), ("nyc", "America/New_York")):
        catalog.create_customer(runtime.db, runtime.clock, Customer(key, key, None, "USD", zone))
    for key, fee, interval in (
        ("pro", "49", "month"),
        ("scale", "199", "month"),
        ("annual", "500", "year"),
    ):
        body = {"key": key, "currency": "USD", "base_fee": fee, "interval": interval}
        plans.create_plan(runtime.db, runtime.clock, parse_plan(body))
    return runtime


def test_monthly_periods_anchored_on_the_31st_clamp_and_come_back(rt: Runtime) -> None:
    start = datetime(2027, 1, 31, 10, tzinfo=NY)
    view = create_subscription(rt.db, rt.clock, "nyc", "pro", start)
    sub = get_subscription(rt.db, rt.clock, view.subscription.id).subscription
    starts = []
    period = sub.period_at(start)
    for _ in range(4):
        starts.append(period.start.astimezone(NY).date().isoformat())
        following = sub.next_period(period)
        assert following is not None and following.start == period.end  # they tile
        period = following
    assert starts == ["2027-01-31", "2027-02-28", "2027-03-31", "2027-04-30"]
    assert sub.period_at(start + timedelta(days=60)).start == datetime(2027, 3, 31, 10, tzinfo=NY)


def test_yearly_periods_anchored_on_feb_29_fall_on_feb_28_in_common_years(rt: Runtime) -> None:
    start = _utc(2028, 2, 29)
    sub = create_subscription(rt.db, rt.clock, "acme", "annual", start).subscription
    assert sub.period_at(start).end == _utc(2029, 2, 28)
    assert sub.period_at(_utc(2031, 6, 1)).end == _utc(2032, 2, 29)


def test_a_limit_upgrade_is_a_change_with_its_own_reason(rt: Runtime) -> None:
    sub = create_subscription(rt.db, rt.clock, "acme", "pro", _utc(2026, 11, 1)).subscription
    view = change_plan(rt.db, rt.clock, sub.id, "scale", "now", reason="upgrade")
    assert [(s.plan_key, s.reason) for s in view.segments] == [
        ("pro", "start"),
        ("scale", "upgrade"),
    ]
    assert view.segments[0].end_us == to_us(rt.clock.now()) == view.segments[1].start_us


def test_materialize_due_applies_what_fell_due_once(rt: Runtime, clock: FixedClock) -> None:
    changing = create_subscription(rt.db, rt.clock, "acme", "pro", _utc(2026, 11, 1)).subscription
    ending = create_subscription(rt.db, rt.clock, "nyc", "pro", _utc(2026, 11, 1)).subscription
    change_plan(rt.db, rt.clock, changing.id, "scale", "period_end")
    cancel_subscription(rt.db, rt.clock, ending.id, "period_end")
    assert materialize_due(rt.db, rt.clock) == 0
    clock.at = _utc(2026, 12, 3)
    assert materialize_due(rt.db, rt.clock) == 2
    assert materialize_due(rt.db, rt.clock) == 0
    with rt.db.read() as conn:
        changed, ended = (Subscriptions(conn).by_id(s.id) for s in (changing, ending))
        segments = Segments(conn).of(changing.id)
    assert changed is not None and ended is not None
    assert (changed.plan_key, changed.pending_plan_key) == ("scale", None)
    assert [(s.plan_key, s.start_us, s.end_us) for s in segments] == [
        ("pro", to_us(_utc(2026, 11, 1)), to_us(_utc(2026, 12, 1))),
        ("scale", to_us(_utc(2026, 12, 1)), None),
    ]
    # Nov 1 00:00 UTC is Oct 31 20:00 in New York: nyc's periods end on the 30th at 20:00.
    assert (ended.status, ended.ended_us) == (
        Status.CANCELED,
        to_us(datetime(2026, 11, 30, 20, tzinfo=NY)),
    )


def test_the_billing_run_finds_every_subscription_active_in_a_range(
    rt: Runtime, clock: FixedClock
) -> None:
    old = create_subscription(rt.db, rt.clock, "acme", "pro", _utc(2026, 10, 1)).subscription
    clock.at = _utc(2026, 10, 20)
    cancel_subscription(rt.db, rt.clock, old.id, "now")
    clock.at = _utc(2026, 11, 15)
    new = create_subscription(rt.db, rt.clock, "acme", "pro", _utc(2026, 11, 5)).subscription
    later = create_subscription(rt.db, rt.clock, "nyc", "pro", _utc(2027, 1, 1)).subscription

    def active(start: datetime, end: datetime) -> set[str]:
        with rt.db.read() as conn:
            return {s.id for s in Subscriptions(conn).active_between(to_us(start), to_us(end))}

    assert active(_utc(2026, 10, 1), _utc(2026, 11, 1)) == {old.id}
    assert active(_utc(2026, 10, 20), _utc(2026, 11, 5)) == set()
    assert active(_utc(2026, 11, 1), _utc(2026, 12, 1)) == {new.id}
    assert active(_utc(2026, 12, 1), _utc(2027, 2, 1)) == {new.id, later.id}
    with rt.db.read() as conn:
        repo = Subscriptions(conn)
        assert [s.id for s in repo.for_customer("acme")] == [new.id, old.id]
        assert repo.active_for_customer("acme") == repo.by_id(new.id)


def test_plans_answer_by_version_and_by_latest(rt: Runtime) -> None:
    create_subscription(rt.db, rt.clock, "acme", "pro")
    edited = parse_plan({"key": "pro", "currency": "USD", "base_fee": "59"})
    entry, _ = plans.edit_plan(rt.db, rt.clock, "pro", edited)
    with rt.db.read() as conn:
        repo = Plans(conn)
        first, current = repo.version("pro", 1), repo.current("pro")
        assert repo.version("pro", 3) is None and repo.current("nope") is None
    assert first is not None and current is not None
    assert (first.version, str(first.base_fee)) == (1, "49")
    assert current == entry.plan and (current.version, str(current.base_fee)) == (2, "59")
