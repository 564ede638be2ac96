"""One suite, both stores: LocalCounters and RedisCounters must give the same answers.

Redis tests use a prefix of their own and delete only it; an unreachable Redis fails them."""

from __future__ import annotations

import random
import threading
from collections.abc import Iterator
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from tests.storage.counters_support import (
    KEY,
    P1,
    P2,
    SECOND,
    FakeRecord,
    Model,
    admit,
    forget,
    make_store,
    redis_client,
    settle_adds,
    unique_prefix,
)

from fairmeter.domain.numbers import EXACT
from fairmeter.storage.counters import Bucket, Counters


@pytest.fixture(params=["local", "redis"])
def store(request: pytest.FixtureRequest) -> Iterator[Counters]:
    if request.param == "local":
        yield make_store("local", "")
        return
    client = redis_client()
    prefix = unique_prefix()
    counters = make_store("redis", prefix)
    yield counters
    counters.close()  # type: ignore[attr-defined]
    forget(client, prefix)


# -- ceilings ----------------------------------------------------------------------------


@pytest.mark.parametrize(("quantity", "admitted"), [(9, True), (10, True), (11, False)])
def test_ceiling_admits_up_to_the_limit_and_refuses_past_it(
    store: Counters, quantity: int, admitted: bool
) -> None:
    result = admit(store, quantity, ceiling=10)
    assert result.admitted is admitted
    assert result.used == (quantity if admitted else 0)
    assert result.refused_by == (None if admitted else "ceiling")


def test_the_call_that_would_pass_the_ceiling_is_refused_from_loaded_usage(
    store: Counters,
) -> None:
    record = FakeRecord({P1: Decimal(9)})
    assert admit(store, 1, record=record, ceiling=10).used == 10
    refused = admit(store, 1, record=record, ceiling=10)
    assert (refused.admitted, refused.used, refused.refused_by) == (False, 10, "ceiling")
    assert record.reads == 1


def test_a_refused_call_changes_nothing(store: Counters) -> None:
    rate = Bucket("rate", Decimal(1), Decimal(1))
    assert not admit(store, 5, ceiling=3, rate=rate).admitted
    # the rate token was not spent on the refused call
    assert admit(store, 1, ceiling=3, rate=rate).admitted
    assert store.used(KEY, P1, FakeRecord().loader(P1)) == 1


def test_used_loads_a_missing_counter_once_and_counts_nothing(store: Counters) -> None:
    record = FakeRecord({P1: Decimal("41.5")})
    assert store.used(KEY, P1, record.loader(P1)) == Decimal("41.5")
    assert store.used(KEY, P1, record.loader(P1)) == Decimal("41.5")
    assert record.reads == 1


# -- buckets -----------------------------------------------------------------------------

THROTTLE = Bucket("throttle", Decimal(2), Decimal(2))


def test_below_the_soft_limit_the_throttle_takes_no_tokens(store: Counters) -> None:
    for _ in range(5):
        assert admit(store, 1, soft_limit=5, throttle=THROTTLE).admitted
    # now past the soft limit: the full bucket (2 tokens) is still there
    assert admit(store, 1, soft_limit=5, throttle=THROTTLE).admitted
    assert admit(store, 1, soft_limit=5, throttle=THROTTLE).admitted
    refused = admit(store, 1, soft_limit=5, throttle=THROTTLE)
    assert (refused.admitted, refused.refused_by, refused.used) == (False, "throttle", 7)
    assert refused.retry_after_us == SECOND // 2


def test_throttle_refills_at_its_rate_over_time(store: Counters) -> None:
    record = FakeRecord({P1: Decimal(100)})
    start = P1.start_us
    admitted = 0
    for step in range(1000):  # one call every 10 ms for 10 s
        now = start + step * 10_000
        result = admit(store, 1, record=record, soft_limit=100, throttle=THROTTLE, now_us=now)
        admitted += result.admitted
    # a full bucket (2) plus 2 per second over 9.99 s
    assert admitted == 2 + 19


def test_rate_bucket_refuses_with_the_wait_until_enough_tokens(store: Counters) -> None:
    rate = Bucket("rate", Decimal(3), Decimal(3))
    assert all(admit(store, 1, rate=rate).admitted for _ in range(3))
    refused = admit(store, 1, rate=rate)
    assert (refused.refused_by, refused.used, refused.retry_after_us) == ("rate", 3, 333_334)
    later = admit(store, 1, rate=rate, now_us=P1.start_us + 333_334)
    assert later.admitted and later.used == 4


def test_rate_is_checked_before_the_ceiling(store: Counters) -> None:
    rate = Bucket("rate", Decimal(1), Decimal(1))
    assert admit(store, 1, rate=rate, ceiling=1).admitted
    assert admit(store, 1, rate=rate, ceiling=1).refused_by == "rate"
    assert admit(store, 1, rate=rate, ceiling=1, now_us=P1.start_us + SECOND).refused_by == (
        "ceiling"
    )


# -- periods -----------------------------------------------------------------------------


def test_a_new_period_starts_from_its_own_loaded_usage(store: Counters) -> None:
    record = FakeRecord({P1: Decimal(7), P2: Decimal(2)})
    assert admit(store, 1, record=record, ceiling=8).used == 8
    assert not admit(store, 1, record=record, ceiling=8).admitted
    fresh = admit(store, 1, record=record, period=P2, ceiling=8, now_us=P2.start_us)
    assert fresh.admitted and fresh.used == 3


def test_a_late_call_for_the_previous_period_does_not_move_the_counter_back(
    store: Counters,
) -> None:
    record = FakeRecord({P1: Decimal(5), P2: Decimal(0)})
    assert admit(store, 1, record=record, period=P2, now_us=P2.start_us).used == 1
    late = admit(store, 1, record=record, period=P1, ceiling=10, now_us=P2.start_us)
    assert late.admitted and late.used == 6
    assert admit(store, 1, record=record, period=P2, now_us=P2.start_us).used == 2


# -- add and release ---------------------------------------------------------------------


def test_add_counts_usage_inside_the_counters_period_only(store: Counters) -> None:
    admit(store, 1)
    store.add([(KEY, P1.start_us + 5, Decimal("2.5")), (KEY, P1.end_us, Decimal(100))])
    store.add([(KEY, P1.start_us - 1, Decimal(100))])
    settle_adds(store)
    assert store.used(KEY, P1, FakeRecord().loader(P1)) == Decimal("3.5")


def test_add_to_a_missing_counter_is_left_to_the_next_load(store: Counters) -> None:
    store.add([(("other", "m"), P1.start_us, Decimal(4))])
    settle_adds(store)
    record = FakeRecord({P1: Decimal(4)})  # the database has the event
    assert store.used(("other", "m"), P1, record.loader(P1)) == 4


def test_release_undoes_an_admission(store: Counters) -> None:
    assert admit(store, 3, ceiling=5).admitted
    store.release(KEY, P1, Decimal(3))
    assert admit(store, 5, ceiling=5).admitted


def test_release_for_another_period_changes_nothing(store: Counters) -> None:
    admit(store, 3, period=P2, now_us=P2.start_us)
    store.release(KEY, P1, Decimal(3))
    store.settled(KEY, P2, Decimal(3))
    assert store.used(KEY, P2, FakeRecord().loader(P2)) == 3


# -- exact decimals ----------------------------------------------------------------------


def test_decimal_usage_is_exact(store: Counters) -> None:
    assert admit(store, "0.1", ceiling="0.3").admitted
    exact = admit(store, "0.2", ceiling="0.3")
    assert exact.admitted and exact.used == Decimal("0.3")
    assert not admit(store, "0.000000000001", ceiling="0.3").admitted


def test_usage_near_ten_to_the_twenty_fifth_stays_exact(store: Counters) -> None:
    big = Decimal("9999999999999999999999999.999999999999")
    record = FakeRecord({P1: big})
    result = admit(store, "0.000000000001", record=record, ceiling=Decimal(10) ** 25)
    assert result.admitted and result.used == Decimal(10) ** 25
    assert not admit(store, "0.000000000001", record=record, ceiling=Decimal(10) ** 25).admitted


def test_whole_numbers_stay_exact_past_the_range_of_doubles(store: Counters) -> None:
    record = FakeRecord({P1: Decimal(999_999_999_999_999)})
    assert admit(store, 1, record=record).used == 10**15
    assert admit(store, 2**53, record=record).used == 10**15 + 2**53
    assert admit(store, -(2**53) - 1, record=record).used == 10**15 - 1
    assert admit(store, "0.5", record=record, ceiling=10**15 - 1).refused_by == "ceiling"


def test_negative_values_of_a_sum_meter_lower_usage(store: Counters) -> None:
    record = FakeRecord({P1: Decimal("-1.25")})
    assert admit(store, "0.5", record=record).used == Decimal("-0.75")
    assert admit(store, "-0.75", record=record).used == Decimal("-1.5")
    assert admit(store, "3.5", record=record, ceiling=2).used == 2
    store.add([(KEY, P1.start_us, Decimal("-2"))])
    settle_adds(store)
    assert store.used(KEY, P1, record.loader(P1)) == 0


# -- concurrency -------------------------------------------------------------------------


def test_many_threads_never_admit_past_the_ceiling(store: Counters) -> None:
    ceiling, admitted, lock = Decimal(1000), [], threading.Lock()

    def client(seed: int) -> None:
        rng = random.Random(seed)
        for _ in range(150):
            quantity = Decimal(rng.randint(1, 5))
            if admit(store, quantity, ceiling=ceiling).admitted:
                with lock:
                    admitted.append(quantity)

    threads = [threading.Thread(target=client, args=(seed,)) for seed in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    total = sum(admitted, Decimal(0))
    assert ceiling - 5 < total <= ceiling
    assert store.used(KEY, P1, FakeRecord().loader(P1)) == total


# -- both stores against a brute-force model ---------------------------------------------

_quantities = st.decimals(
    min_value=Decimal("-1000"), max_value=Decimal("1000"), places=3, allow_nan=False
) | st.integers(0, 10**25).map(Decimal)
_ops = st.lists(
    st.one_of(
        st.tuples(st.just("admit"), _quantities, st.none() | _quantities),
        st.tuples(st.just("add"), _quantities, st.booleans()),
        st.tuples(st.just("release"), st.just(Decimal(0)), st.none()),
        st.tuples(st.just("used"), st.just(Decimal(0)), st.none()),
    ),
    max_size=30,
)


@settings(max_examples=60, deadline=None)
@given(start=_quantities, ops=_ops)
def test_random_operations_give_the_same_answers_on_both_stores_and_the_model(
    start: Decimal, ops: list[tuple[str, Decimal, object]]
) -> None:
    client, prefix = redis_client(), unique_prefix()
    stores = [make_store("local", ""), make_store("redis", prefix)]
    try:
        for store in stores:
            _replay(store, start, ops)
    finally:
        stores[1].close()  # type: ignore[attr-defined]
        forget(client, prefix)


def _replay(store: Counters, start: Decimal, ops: list[tuple[str, Decimal, object]]) -> None:
    record, model, admitted = FakeRecord({P1: start}), Model(start), []
    for op, quantity, extra in ops:
        if op == "admit":
            ceiling = extra if isinstance(extra, Decimal) else None
            result = admit(store, quantity, record=record, ceiling=ceiling)
            assert (result.admitted, result.used) == model.admit(quantity, ceiling)
            if result.admitted:
                admitted.append(quantity)
        elif op == "add":
            time_us = P1.start_us if extra else P1.end_us  # inside / just past the period
            store.add([(KEY, time_us, quantity)])
            settle_adds(store)
            if extra:  # committed to the record too: a counter loaded later reads it
                model.used = EXACT.add(model.used, quantity)  # exact: no 28-digit context
                record.usage[P1] = EXACT.add(record.usage[P1], quantity)
        elif op == "release" and admitted:
            released = admitted.pop()
            store.release(KEY, P1, released)
            model.used = EXACT.subtract(model.used, released)
        else:  # the record holds what was admitted (settled), as consume() writes it
            record.usage[P1] = model.used
        assert store.used(KEY, P1, record.loader(P1)) == model.used
