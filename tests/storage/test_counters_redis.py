"""What only the Redis store has to prove: round trips, rebuild after data loss, the load
marker, key safety, expiry and unavailability."""

from __future__ import annotations

import time
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pytest
import redis
from tests.storage.counters_support import (
    KEY,
    P1,
    P2,
    REDIS_URL,
    FakeRecord,
    admit,
    forget,
    redis_client,
    settle_adds,
    unique_prefix,
)

from fairmeter.storage.counters import CountersUnavailable
from fairmeter.storage.counters_redis import RedisCounters


@pytest.fixture
def client() -> redis.Redis:
    return redis_client()


@pytest.fixture
def store(client: redis.Redis) -> Iterator[RedisCounters]:
    prefix = unique_prefix()
    counters = RedisCounters(REDIS_URL, prefix=prefix)
    yield counters
    counters.close()
    forget(client, prefix)


def count_commands(store: RedisCounters) -> list[str]:
    """Record the name of every command the store sends (one per round trip here)."""
    sent: list[str] = []
    redis_client = store._redis
    original = redis_client.execute_command

    def counting(*args: Any, **options: Any) -> Any:
        sent.append(str(args[0]))
        return original(*args, **options)

    redis_client.execute_command = counting  # type: ignore[method-assign]
    return sent


def test_a_warm_admit_is_one_round_trip_and_a_cold_one_two(store: RedisCounters) -> None:
    admit(store, 1)  # loads the script into Redis too
    sent = count_commands(store)
    admit(store, 1, ceiling=10)
    assert sent == ["EVALSHA"]
    sent.clear()
    admit(store, 1, key=("new", "m"), ceiling=10)
    assert sent == ["EVALSHA", "EVALSHA"]


def test_a_check_right_after_a_decision_needs_no_round_trip(store: RedisCounters) -> None:
    admit(store, 3)
    sent = count_commands(store)
    assert store.recent(KEY, P1) == 3
    assert sent == []  # answered from what this process saw a moment ago
    assert store.recent(KEY, P2) is None  # another period: ask Redis
    store.add([(KEY, P1.start_us, Decimal(2))])
    assert store.recent(KEY, P1) is None  # usage added here spoils the mirrored value
    settle_adds(store)
    assert store.used(KEY, P1, lambda: Decimal(0)) == 5


def test_the_mirror_expires(client: redis.Redis) -> None:
    prefix = unique_prefix()
    counters = RedisCounters(REDIS_URL, prefix=prefix, mirror_s=0)
    try:
        admit(counters, 1)
        assert counters.recent(KEY, P1) is None
    finally:
        counters.close()
        forget(client, prefix)


def test_counters_rebuild_from_the_record_after_redis_loses_them(
    store: RedisCounters, client: redis.Redis
) -> None:
    record = FakeRecord({P1: Decimal(7)})
    assert admit(store, 2, record=record, ceiling=10).used == 9
    record.usage[P1] = Decimal(9)  # the consume was written to the database
    assert forget(client, store.prefix) > 0
    assert not admit(store, 2, record=record, ceiling=10).admitted
    assert admit(store, 1, record=record, ceiling=10).used == 10
    assert record.reads == 2


def test_usage_added_while_the_record_was_read_makes_the_loader_read_again(
    store: RedisCounters,
) -> None:
    record = FakeRecord({P1: Decimal(5)})

    def load_while_another_process_commits() -> Decimal:
        seen = record.usage[P1]
        record.reads += 1
        if record.reads == 1:  # committed after our read, reported before we install
            record.usage[P1] += 3
            store.add([(KEY, P1.start_us, Decimal(3))])
            assert store.flush()
        return seen

    result = store.admit(
        KEY, P1, Decimal(1), ceiling=None, soft_limit=None, throttle=None, rate=None,
        now_us=P1.start_us, load=load_while_another_process_commits,
    )  # fmt: skip
    assert result.used == 9
    assert record.reads == 2


def test_customer_keys_cannot_collide_or_escape_the_prefix(store: RedisCounters) -> None:
    assert admit(store, 1, key=("a/b", "c")).used == 1
    assert admit(store, 2, key=("a", "b/c")).used == 2
    assert admit(store, 3, key=("*:{x}%2F", "m")).used == 3
    for key in [("a/b", "c"), ("a", "b/c"), ("*:{x}%2F", "m")]:
        counter, marker = store.keys_for(key)
        assert counter.startswith(store.prefix) and marker.startswith(store.prefix)
    assert store.keys_for(("a/b", "c")) != store.keys_for(("a", "b/c"))


def test_a_counter_expires_a_day_after_its_period(
    store: RedisCounters, client: redis.Redis
) -> None:
    now_ms = int(time.time() * 1000)
    period_end_us = (now_ms + 3_600_000) * 1000
    from fairmeter.storage.counters import Period

    period = Period(period_end_us - 7_200_000_000, period_end_us)
    admit(store, 1, period=period, now_us=period.start_us)
    ttl_ms = client.pttl(store.keys_for(KEY)[0])
    assert 86_400_000 + 3_500_000 < ttl_ms <= 86_400_000 + 3_600_000


def test_an_unreachable_redis_raises_counters_unavailable() -> None:
    store = RedisCounters("redis://127.0.0.1:1/0", timeout_s=0.2)
    started = time.monotonic()
    with pytest.raises(CountersUnavailable):
        admit(store, 1)
    with pytest.raises(CountersUnavailable):
        store.used(KEY, P1, FakeRecord().loader(P1))
    assert time.monotonic() - started < 5
