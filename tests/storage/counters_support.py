"""Helpers for the counters suites: stores under test, a unique Redis prefix per test, a
fake database for loaders, and a brute-force model of the admission rule."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from decimal import Decimal

import pytest
import redis

from fairmeter.domain.numbers import EXACT
from fairmeter.storage.counters import Admission, Bucket, CounterKey, Counters, Period
from fairmeter.storage.counters_local import LocalCounters
from fairmeter.storage.counters_redis import RedisCounters

REDIS_URL = "redis://127.0.0.1:6379/0"
KEY: CounterKey = ("acme", "api_calls")
SECOND = 1_000_000
P1 = Period(1_000 * SECOND, 2_000 * SECOND)
P2 = Period(2_000 * SECOND, 3_000 * SECOND)


def redis_client() -> redis.Redis:
    client = redis.Redis.from_url(REDIS_URL, decode_responses=True, socket_timeout=5)
    try:
        client.ping()
    except redis.RedisError as exc:
        pytest.fail(f"Redis at {REDIS_URL} is unreachable: {exc}", pytrace=False)
    return client


def unique_prefix() -> str:
    return f"fmtest:{uuid.uuid4().hex[:12]}:"


def forget(client: redis.Redis, prefix: str) -> int:
    """Delete every key under `prefix`: Redis "losing its data" for this test only
    (never FLUSHDB: other tests share the server)."""
    keys = list(client.scan_iter(match=prefix + "*", count=500))
    return int(client.delete(*keys)) if keys else 0


def make_store(kind: str, prefix: str) -> Counters:
    if kind == "local":
        return LocalCounters()
    return RedisCounters(REDIS_URL, prefix=prefix)


def settle_adds(store: Counters) -> None:
    """Wait until usage given to `add` is applied (RedisCounters sends it in the
    background; LocalCounters applies it at once)."""
    flush = getattr(store, "flush", None)
    if flush is not None:
        assert flush(10.0)


@dataclass
class FakeRecord:
    """Stands for the database: the usage a loader reads, and how often it was read."""

    usage: dict[Period, Decimal] = field(default_factory=dict)
    reads: int = 0

    def loader(self, period: Period):  # type: ignore[no-untyped-def]
        def load() -> Decimal:
            self.reads += 1
            return self.usage.get(period, Decimal(0))

        return load


def admit(
    store: Counters,
    quantity: Decimal | int | str,
    *,
    record: FakeRecord | None = None,
    period: Period = P1,
    key: CounterKey = KEY,
    ceiling: Decimal | int | str | None = None,
    soft_limit: Decimal | int | None = None,
    throttle: Bucket | None = None,
    rate: Bucket | None = None,
    now_us: int = P1.start_us,
) -> Admission:
    record = record or FakeRecord()
    return store.admit(
        key,
        period,
        Decimal(quantity),
        ceiling=None if ceiling is None else Decimal(ceiling),
        soft_limit=None if soft_limit is None else Decimal(soft_limit),
        throttle=throttle,
        rate=rate,
        now_us=now_us,
        load=record.loader(period),
    )


@dataclass
class Model:
    """The admission rule written the slow, obvious way (one counter, no buckets)."""

    used: Decimal = Decimal(0)

    def admit(self, quantity: Decimal, ceiling: Decimal | None) -> tuple[bool, Decimal]:
        total = EXACT.add(self.used, quantity)
        if ceiling is not None and total > ceiling:
            return False, self.used
        self.used = total
        return True, total
