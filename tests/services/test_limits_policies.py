"""Each limit policy at its boundary (limit - 1, limit, limit + 1), period reset, upgrade
chains, throttle rate, spend cap, suspension and idempotent consume."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from decimal import Decimal

import msgspec
import pytest
from sqlalchemy import func, select
from tests.services.limits_world import Limited

from fairmeter.api.codec import parse_batch
from fairmeter.config import Settings
from fairmeter.domain.entitlements import Reason
from fairmeter.domain.errors import Conflict, IdempotencyConflict, InvalidInput, NotFound
from fairmeter.domain.events import IngestPolicy
from fairmeter.domain.limits import Override, Per, RateLimit
from fairmeter.domain.subscriptions import ChangeAt
from fairmeter.services import limits
from fairmeter.services.entitlement_view import customer_entitlements
from fairmeter.services.hooks import Lifecycle
from fairmeter.services.ingest import IngestRequest
from fairmeter.services.notification_log import customer_log
from fairmeter.services.subscriptions import change_plan, customer_subscription
from fairmeter.services.upcoming import usage_between
from fairmeter.storage.tables import events
from fairmeter.wiring import build

D = Decimal


@pytest.fixture
def database_url(sqlite_url: str) -> str:
    """The rules do not depend on the database; the concurrency tests run on both."""
    return sqlite_url


@pytest.fixture
def world(runtime) -> Limited:
    return Limited(runtime).meter().customer()


def _events(count: int) -> bytes:
    body = [
        {"specversion": "1.0", "id": f"e{n}", "source": "test", "type": "api.request",
         "subject": "acme"}
        for n in range(count)
    ]  # fmt: skip
    return msgspec.json.encode(body)


def _stored(world: Limited) -> int:
    with world.rt.db.read() as conn:
        return conn.execute(select(func.count()).select_from(events)).scalar_one()


@pytest.mark.parametrize(("used", "allowed"), [(9, True), (10, False), (11, False)])
def test_block_refuses_the_call_that_would_pass_the_limit(world, used, allowed):
    world.plan(limit="10").subscribe()
    if used:
        assert world.consume(min(used, 10)).allowed
    first = world.consume(1)
    assert first.allowed is allowed
    if not allowed:
        assert first.reason is Reason.LIMIT_REACHED and first.usage == 10
        assert first.retry_after_us == first.resets_at_us
    assert _stored(world) == min(used, 10) + allowed


def test_block_admits_the_call_that_lands_exactly_on_the_limit(world):
    world.plan(limit="10").subscribe()
    assert world.consume(9).allowed
    decision = world.consume(1)
    assert decision.allowed and decision.remaining == 0 and decision.usage == 10


def test_overage_goes_on_past_the_limit_and_prices_it(world):
    world.plan(limit="10", policy="overage").subscribe()
    assert world.consume(9).reason is Reason.WITHIN_ALLOWANCE
    assert world.consume(1).reason is Reason.WITHIN_ALLOWANCE
    past = world.consume(1)
    assert past.allowed and past.reason is Reason.OVERAGE and past.overage_amount == D("0.01")


def test_spend_cap_refuses_the_call_whose_overage_would_pass_it(world):
    world.plan(limit="10", policy="overage").subscribe(cap="0.05")
    assert world.consume(15).allowed  # 5 over at 0.01: exactly the cap
    refused = world.consume(1)
    assert not refused.allowed and refused.reason is Reason.SPEND_CAP_REACHED
    assert refused.overage_amount == D("0.05")


def test_a_customer_spend_cap_override_wins_over_the_subscription(world):
    world.plan(limit="10", policy="overage").subscribe(cap="100")
    limits.put_override(world.rt, "acme", "calls", Override(max_overage_amount=D("0.02")))
    assert world.consume(12).allowed
    assert world.consume(1).reason is Reason.SPEND_CAP_REACHED


def test_throttle_admits_at_the_throttle_rate_past_the_limit(world):
    world.plan(limit="10", policy="throttle", throttle_rate="5").subscribe()
    assert world.consume(10).reason is Reason.WITHIN_ALLOWANCE
    admitted = 0
    for _ in range(100):  # 10 s at 10 calls a second
        admitted += world.engine.admit("acme", "calls", D(1)).allowed
        world.clock.advance(timedelta(milliseconds=100))
    # The bucket starts full (5) and refills 5 a second: 5 + 5 * 10 s, give or take one.
    assert 54 <= admitted <= 56


def test_throttle_refusal_says_when_a_token_comes_back(world):
    world.plan(limit="1", policy="throttle", throttle_rate="2").subscribe()
    world.consume(1)
    world.consume(2)  # past the limit: empties the bucket of 2
    refused = world.consume(1)
    assert refused.reason is Reason.THROTTLED and not refused.allowed
    now_us = int(world.clock.now().timestamp()) * 1_000_000
    assert refused.retry_after_us == now_us + 500_000  # one token at 2 a second


def test_usage_starts_again_when_the_period_resets(world):
    world.plan(limit="10").subscribe()
    assert world.consume(10).allowed and not world.consume(1).allowed
    world.clock.advance(timedelta(days=31))
    fresh = world.consume(1)
    assert fresh.allowed and fresh.usage == 1


def test_upgrade_moves_the_customer_up_twice_in_one_period(world):
    world.plan("large", limit="30", policy="block")
    world.plan("medium", limit="20", policy="upgrade", next_plan="large")
    world.plan("starter", limit="10", policy="upgrade", next_plan="medium").subscribe()
    assert world.consume(10).allowed
    world.clock.advance(timedelta(hours=1))
    first = world.consume(5)
    assert first.reason is Reason.UPGRADED and first.upgraded_to == "medium"
    world.clock.advance(timedelta(hours=1))
    second = world.consume(10)
    assert second.reason is Reason.UPGRADED and second.upgraded_to == "large"
    assert second.usage == 25 and second.limit == 30
    view = customer_subscription(world.rt.db, world.rt.clock, "acme")
    assert [s.reason for s in view.segments] == ["start", "upgrade", "upgrade"]
    assert world.consume(6).reason is Reason.LIMIT_REACHED  # the last plan blocks


def test_upgrade_without_a_next_plan_behaves_as_block(world):
    world.plan(limit="10").subscribe()
    limits.put_override(world.rt, "acme", "calls", Override(policy=None, limit=D(3)))
    assert world.consume(3).allowed and world.consume(1).reason is Reason.LIMIT_REACHED


def test_a_rate_limit_applies_whatever_the_allowance(world):
    world.plan(limit=None).subscribe()
    rate = Override(rate_limit=RateLimit(D(3), Per.SECOND))
    limits.put_override(world.rt, "acme", "calls", rate)
    answers = [world.consume(1).allowed for _ in range(5)]
    assert answers == [True, True, True, False, False]
    world.clock.advance(timedelta(seconds=1))
    assert world.consume(3).allowed


def test_suspension_refuses_every_call_until_restored(world):
    world.plan(limit="10").subscribe()
    limits.suspend(world.rt, "acme", "past due")
    assert world.consume(1).reason is Reason.SUSPENDED
    limits.restore(world.rt, "acme")
    assert world.consume(1).allowed
    # queued in the suspension's and the restoration's own transactions (the outbox)
    assert sorted(_told(world)) == ["access.restored", "access.suspended"]


def test_no_subscription_and_unpriced_meters_are_refused(world):
    assert world.check(1).reason is Reason.NO_SUBSCRIPTION
    world.meter("tokens", "sum").plan(limit="10").subscribe()
    assert world.consume(1, meter="tokens").reason is Reason.NO_SUBSCRIPTION


def test_check_records_nothing_and_answers_as_consume_would(world):
    world.plan(limit="10").subscribe()
    world.consume(10)
    assert world.check(1).reason is Reason.LIMIT_REACHED
    assert _stored(world) == 10


def test_a_repeated_idempotency_key_is_a_duplicate_counted_once(world):
    world.plan(limit="10").subscribe()
    first = world.consume(2, idempotency_key="req-1")
    again = world.consume(2, idempotency_key="req-1")
    assert not first.duplicate and again.duplicate and again.usage == 2
    with pytest.raises(IdempotencyConflict):
        world.consume(3, idempotency_key="req-1")
    assert world.consume(1).usage == 3


def test_sum_meters_record_one_event_with_the_quantity(world):
    world.meter("tokens", "sum").plan(meter="tokens", limit="100").subscribe()
    world.consume("2.5", meter="tokens", data={"model": "large"})
    span = customer_subscription(world.rt.db, world.rt.clock, "acme").subscription
    usage = usage_between(world.rt.db, "acme", ["tokens"], span.period_at(world.clock.now()))
    assert usage == {"tokens": D("2.5")} and _stored(world) == 1


def test_ingested_events_reach_the_counters_at_once(world):
    world.plan(limit="10").subscribe()
    world.consume(1)
    items, rejected = parse_batch(_events(4), world.clock.now(), IngestPolicy())
    world.rt.ingest.record(IngestRequest(items, rejected, 0))
    assert world.check(1).usage == 5  # a check reports usage as it stands


def test_a_check_reports_usage_before_the_quantity_and_judges_after_it(world):
    world.plan(limit="10").subscribe()
    world.consume(8)
    fits, too_much = world.check(2), world.check(3)
    assert (fits.allowed, fits.usage, fits.remaining) == (True, 8, 2)
    assert (too_much.allowed, too_much.usage, too_much.remaining) == (False, 8, 2)
    assert too_much.reason is Reason.LIMIT_REACHED


def test_bad_quantities_and_unknown_names_are_refused(world):
    world.plan(limit="10").subscribe()
    with pytest.raises(InvalidInput) as caught:
        world.consume("1.5")
    assert caught.value.errors[0].pointer == "/quantity"
    with pytest.raises(NotFound):
        world.consume(1, customer="nobody")
    with pytest.raises(NotFound):
        world.consume(1, meter="nothing")


def test_limit_reached_is_announced_once_per_period(world):
    world.plan(limit="1").subscribe()
    heard = []
    world.rt.hooks.on_lifecycle(heard.append)
    world.consume(1)
    world.consume(1)
    world.consume(1)
    reached = [n for n in heard if n.kind is Lifecycle.LIMIT_REACHED]
    assert len(reached) == 1 and reached[0].dedupe_key.startswith("limit.reached:acme:calls:")


def test_check_under_upgrade_says_it_would_upgrade_and_changes_nothing(world):
    world.plan("bigger", limit="100")
    world.plan(limit="10", policy="upgrade", next_plan="bigger").subscribe()
    world.consume(10)
    answer = world.check(1)
    assert answer.allowed and answer.reason is Reason.UPGRADED and answer.upgraded_to == "bigger"
    plan = customer_subscription(world.rt.db, world.rt.clock, "acme").subscription.plan_key
    assert plan == "starter"


def test_the_entitlements_view_lists_denials_and_upgrades(world):
    world.plan("bigger", limit="20")
    world.plan(limit="10", policy="upgrade", next_plan="bigger").subscribe()
    world.consume(10)
    world.clock.advance(timedelta(minutes=5))
    world.consume(5)  # upgrades
    world.consume(6)  # refused: 21 > 20
    found = customer_entitlements(world.engine, "acme")
    (calls,) = found.meters
    assert found.plan == "bigger" and calls.usage == 15 and calls.remaining == 5
    assert calls.denials == {"limit_reached": 1}
    assert [(u.from_plan, u.to_plan) for u in found.upgrades] == [("starter", "bigger")]


def test_a_count_meter_consume_records_one_event_per_unit(world):
    world.plan(limit="10").subscribe()
    world.consume(3, idempotency_key="req-9")
    with world.rt.db.read() as conn:
        ids = conn.execute(select(events.c.id).order_by(events.c.id)).scalars().all()
    assert ids == ["req-9", "req-9:2", "req-9:3"]


@pytest.mark.parametrize(("failure", "allowed"), [("closed", False), ("open", True)])
def test_unreachable_redis_fails_as_configured(sqlite_url, clock, failure, allowed):
    settings = Settings(
        database_url=sqlite_url, redis_url="redis://127.0.0.1:1/0", redis_failure=failure
    )
    rt = build(settings, clock=clock)
    try:
        world = Limited(rt).meter().customer().plan(limit="10")
        world.subscribe()
        decision = world.consume(1)
        assert decision.reason is Reason.LIMITS_UNAVAILABLE and decision.allowed is allowed
        assert _stored(world) == int(allowed)  # fail open still records the usage
        assert world.engine.stats.unavailable == 1
    finally:
        rt.close()


def test_an_upgrade_expecting_a_plan_the_subscription_left_changes_nothing(world):
    world.plan("large", limit="30")
    world.plan("medium", limit="20", policy="upgrade", next_plan="large")
    subscription = world.plan(limit="10", policy="upgrade", next_plan="medium").subscribe()
    world.clock.advance(timedelta(hours=1))  # a change at the start instant replaces it
    world.consume(10)
    assert world.consume(1).upgraded_to == "medium"  # moved on by one refusal
    with pytest.raises(Conflict):  # a second refusal that saw "starter" must not move it
        change_plan(
            world.rt.db,
            world.rt.clock,
            subscription.id,
            "medium",
            ChangeAt.NOW,
            reason="upgrade",
            expect=("starter", 1),
        )
    view = customer_subscription(world.rt.db, world.rt.clock, "acme")
    assert [s.plan_key for s in view.segments] == ["starter", "medium"]


def test_two_engines_on_one_database_upgrade_once(world, sqlite_url, clock):
    """Two processes' engines (here two runtimes on one SQLite file) refused at once."""
    world.plan("bigger", limit="100")
    world.plan(limit="10", policy="upgrade", next_plan="bigger").subscribe()
    world.clock.advance(timedelta(hours=1))
    other = build(Settings(database_url=sqlite_url), clock=clock)
    try:
        assert world.consume(10).allowed
        engines = [world.engine, other.limits]
        with ThreadPoolExecutor(2) as pool:
            answers = list(pool.map(lambda e: e.consume("acme", "calls", D(1)), engines))
        # An engine that first looks after the other's upgrade committed simply finds the
        # customer on "bigger": admitted under it, with nothing left to upgrade.
        assert all(a.allowed and a.plan == "bigger" for a in answers), answers
        assert any(a.upgraded_to == "bigger" for a in answers), answers
    finally:
        other.close()
    view = customer_subscription(world.rt.db, world.rt.clock, "acme")
    assert [s.reason for s in view.segments] == ["start", "upgrade"]


def test_upgrades_and_throttling_are_announced(world):
    heard = []
    world.rt.hooks.on_lifecycle(heard.append)
    world.plan("bigger", limit="5", policy="throttle", throttle_rate="1")
    world.plan(limit="2", policy="upgrade", next_plan="bigger").subscribe()
    world.clock.advance(timedelta(hours=1))
    world.consume(2)
    assert world.consume(1).reason is Reason.UPGRADED
    world.consume(3)  # past the new limit of 5: throttled
    assert [n.kind for n in heard] == [Lifecycle.ACCESS_THROTTLED]
    # the upgrade is queued in the plan change's own transaction
    [upgraded] = [r for r in customer_log(world.rt, "acme")
                  if r.notification["kind"] == "plan.upgraded"]  # fmt: skip
    assert upgraded.details["next_plan"] == "bigger"


def test_usage_admitted_before_a_period_ends_is_recorded_in_that_period(world):
    subscription = world.plan(limit="10").subscribe()
    period = subscription.period_at(world.clock.now())
    world.engine.admit("acme", "calls", D(2))
    world.clock.at = period.end + timedelta(minutes=1)  # flushed after the period ended
    world.engine.flush()
    assert usage_between(world.rt.db, "acme", ["calls"], period) == {"calls": D(2)}
    assert world.consume(1).usage == 1  # the new period starts from zero


def _told(world) -> list[str]:
    """The kinds of the customer's notifications, oldest first."""
    records = customer_log(world.rt, "acme")
    return [
        r.notification["kind"] for r in sorted(records, key=lambda r: r.notification["created_us"])
    ]
