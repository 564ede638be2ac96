"""The fast lane of `Enforcer.admit`: the same answers as the full path, and out of the way
whenever the full path must decide (limit, suspension, new terms, bad quantity, buckets)."""

from __future__ import annotations

import dataclasses
from datetime import timedelta
from decimal import Decimal

import pytest
from tests.services.limits_world import Limited

from fairmeter.domain.entitlements import Reason
from fairmeter.domain.errors import InvalidInput
from fairmeter.domain.limits import Override, Per, RateLimit
from fairmeter.embedded import EmbeddedEngine, to_sdk
from fairmeter.services import limits
from fairmeter.services.hooks import Lifecycle
from fairmeter.services.upcoming import usage_between

D = Decimal


@pytest.fixture
def database_url(sqlite_url: str) -> str:
    return sqlite_url


@pytest.fixture
def world(runtime) -> Limited:
    return Limited(runtime).meter().customer()


def _full_path(world: Limited, quantity: Decimal):
    """What the full path answers (no lane)."""
    world.engine.lanes.clear()
    return world.engine.admit("acme", "calls", quantity)


def test_the_lane_answers_what_the_full_path_answers(world):
    world.plan(limit="1000").subscribe()
    one = D(1)
    first = world.engine.admit("acme", "calls", one)  # full path; opens the lane
    assert ("acme", "calls") in world.engine.lanes
    fast = world.engine.admit("acme", "calls", one)
    slow = _full_path(world, one)
    assert dataclasses.replace(fast, usage=slow.usage, remaining=slow.remaining) == slow
    assert (first.usage, fast.usage, slow.usage) == (1, 2, 3)
    assert fast.remaining == 998 and fast.reason is Reason.WITHIN_ALLOWANCE


def test_lane_admissions_are_written_and_counted_in_metrics(world):
    subscription = world.plan(limit="1000").subscribe()
    for _ in range(25):
        world.engine.admit("acme", "calls", D(2))
    world.engine.admit("acme", "calls", D(3))  # another quantity, same lane
    world.engine.flush()
    period = subscription.period_at(world.clock.now())
    assert usage_between(world.rt.db, "acme", ["calls"], period) == {"calls": D(53)}
    decisions = world.engine.stats.decisions()
    assert decisions[("admit", "within_allowance", "block", True)] == 26


def test_lane_tallies_drained_while_threads_admit_are_written_once(world):
    """Lanes tally under their counter's lock and the writer drains them: flushes racing
    four threads of mixed quantities write exactly what was admitted, and every admission
    is settled (nothing left in flight, so the counter may be re-read)."""
    import threading

    subscription = world.plan(limit="100000000").subscribe()
    world.engine.admit("acme", "calls", D(1))  # opens the lane
    quantities = [D(1), D(1), D(3), D(1), D(7)]
    stop = threading.Event()

    def admit_all(n: int) -> None:
        for i in range(n):
            assert world.engine.admit("acme", "calls", quantities[i % 5]).allowed

    def flush_until_stopped() -> None:
        while not stop.is_set():
            world.engine.flush()

    flusher = threading.Thread(target=flush_until_stopped)
    flusher.start()
    threads = [threading.Thread(target=admit_all, args=(2000,)) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    stop.set()
    flusher.join()
    world.engine.flush()
    period = subscription.period_at(world.clock.now())
    admitted = 1 + 4 * 400 * (1 + 1 + 3 + 1 + 7)
    assert usage_between(world.rt.db, "acme", ["calls"], period) == {"calls": admitted}
    counter = world.engine.counters._counters[("acme", "calls")]
    assert counter.in_flight == 0 and counter.used == admitted


def test_the_full_path_refuses_at_the_limit_and_announces_it(world):
    world.plan(limit="10").subscribe()
    told: list[Lifecycle] = []
    world.rt.hooks.on_lifecycle(lambda notice: told.append(notice.kind))
    answers = [world.engine.admit("acme", "calls", D(3)) for _ in range(4)]
    assert [a.allowed for a in answers] == [True, True, True, False]
    assert answers[-1].reason is Reason.LIMIT_REACHED and answers[-1].usage == 9
    assert Lifecycle.LIMIT_REACHED in told


def test_overage_past_the_limit_is_priced_by_the_full_path(world):
    world.plan(limit="4", policy="overage").subscribe()
    answers = [world.engine.admit("acme", "calls", D(2)) for _ in range(3)]
    assert [a.reason for a in answers] == [Reason.WITHIN_ALLOWANCE] * 2 + [Reason.OVERAGE]
    assert answers[-1].overage_amount == D("0.02")


def test_a_suspension_closes_the_lane_at_once(world):
    world.plan(limit="100").subscribe()
    for _ in range(3):
        assert world.engine.admit("acme", "calls", D(1)).allowed
    limits.suspend(world.rt, "acme", "past due")
    assert world.engine.admit("acme", "calls", D(1)).reason is Reason.SUSPENDED
    limits.restore(world.rt, "acme")
    assert world.engine.admit("acme", "calls", D(1)).usage == 4


def test_an_override_closes_the_lane_at_once(world):
    world.plan(limit="100").subscribe()
    world.engine.admit("acme", "calls", D(1))
    world.engine.admit("acme", "calls", D(1))
    limits.put_override(world.rt, "acme", "calls", Override(limit=D(2)))
    answer = world.engine.admit("acme", "calls", D(1))
    assert answer.reason is Reason.LIMIT_REACHED and answer.limit == 2


def test_a_bad_quantity_is_refused_even_with_the_lane_open(world):
    world.plan(limit="100").subscribe()
    world.engine.admit("acme", "calls", D(1))
    world.engine.admit("acme", "calls", D(1))
    for bad in (D("1.5"), D(0), D("NaN"), D("sNaN"), D(-1), 1):
        with pytest.raises(InvalidInput):
            world.engine.admit("acme", "calls", bad)  # type: ignore[arg-type]
    assert world.engine.admit("acme", "calls", D(1)).usage == 3


def test_the_units_value_in_another_object_takes_the_lane_as_the_unit(world):
    """The lane takes its unit by identity (the middleware passes one object); the same
    value in a new object (another caller) is the unit too, with no check of its own."""
    subscription = world.plan(limit="100").subscribe()
    world.engine.admit("acme", "calls", D(1))  # opens the lane with this object
    counter = world.engine.lanes[("acme", "calls")].counter
    for quantity in (D(1), D("1.0"), D(1)):
        assert world.engine.admit("acme", "calls", quantity).usage is not None
    assert (counter.count, counter.others) == (3, {})
    world.engine.admit("acme", "calls", D(2))  # another quantity: counted apart
    assert (counter.count, counter.others) == (4, {D(2): 1})
    world.engine.flush()
    period = subscription.period_at(world.clock.now())
    assert usage_between(world.rt.db, "acme", ["calls"], period) == {"calls": D(6)}


def test_a_rate_limit_keeps_every_call_on_the_full_path(world):
    world.plan(limit="100").subscribe()
    override = Override(rate_limit=RateLimit(D(2), Per.SECOND))
    limits.put_override(world.rt, "acme", "calls", override)
    answers = [world.engine.admit("acme", "calls", D(1)).allowed for _ in range(4)]
    assert answers == [True, True, False, False]
    assert ("acme", "calls") not in world.engine.lanes


def test_the_lane_closes_when_the_terms_are_due_to_be_read_again(world):
    world.plan(limit="100").subscribe()
    world.engine.admit("acme", "calls", D(1))
    lane = world.engine.lanes[("acme", "calls")]
    assert lane.counter.admit(D(1)) == 2
    world.clock.advance(timedelta(seconds=2))  # past the terms' freshness
    assert lane.counter.admit(D(1)) is None
    assert world.engine.admit("acme", "calls", D(1)).usage == 3  # full path, new lane
    assert world.engine.lanes[("acme", "calls")] is not lane


def test_the_embedded_engine_answers_the_lane_as_the_sdk_value(world):
    world.plan(limit="1000").subscribe()
    engine = EmbeddedEngine(runtime=world.rt)
    first = engine.consume_now("acme", "calls", D(1))
    fast = engine.consume_now("acme", "calls", D(1))
    slow = to_sdk(_full_path(world, D(1)))
    assert fast._replace(usage=slow.usage, remaining=slow.remaining) == slow
    assert (first.usage, fast.usage, fast.remaining, fast.limit) == (1, 2, 998, 1000)
    assert fast.reason == "within_allowance" and fast.policy == "block"
    assert fast.resets_at == slow.resets_at and fast.plan == "starter"
