"""Two server processes, one PostgreSQL database, counters in Redis: 50 concurrent clients
(threads here and in two spawned processes) never pass a block limit or a spend cap
together, and counters lost from Redis are rebuilt from the database.

Each run is 20,000 consume calls of sizes 1-5 (about 100 s on a 2-core machine). CI runs
one seed for block and one for the spend cap; FAIRMETER_LIMITS_E2E_SEEDS=20 repeats each
with 20 seeds."""

from __future__ import annotations

import multiprocessing
import os
import uuid
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import httpx
import pytest
import redis
from consumers import consume_in_threads, consume_into
from tests.conftest import LiveServer

from fairmeter.domain.keys import Scope
from fairmeter.services.keys import create_key
from fairmeter.services.runtime import Runtime
from fairmeter.storage.database import Database, make_engine

pytestmark = [pytest.mark.slow, pytest.mark.postgres]

REDIS_URL = "redis://127.0.0.1:6379/0"
LIMIT = 10_000
CALLS, THREADS, PROCESSES, THREADS_PER_PROCESS = 20_000, 30, 2, 10
CLIENTS = THREADS + PROCESSES * THREADS_PER_PROCESS  # 50
SEEDS = range(1, 1 + int(os.environ.get("FAIRMETER_LIMITS_E2E_SEEDS", "1")))


@pytest.fixture
def prefix() -> Iterator[str]:
    client = redis.Redis.from_url(REDIS_URL, socket_timeout=5)
    try:
        client.ping()
    except redis.RedisError as exc:
        pytest.fail(f"Redis at {REDIS_URL} is unreachable: {exc}", pytrace=False)
    name = f"fmtest:{uuid.uuid4().hex[:12]}:"
    yield name
    _forget(name)


def _forget(prefix: str) -> int:
    client = redis.Redis.from_url(REDIS_URL, socket_timeout=5)
    keys = list(client.scan_iter(match=prefix + "*", count=500))
    return int(client.delete(*keys)) if keys else 0


@pytest.fixture
def nodes(pg_url: str, prefix: str) -> Iterator[tuple[list[str], str]]:
    """Two live servers sharing the database and the Redis prefix; an admin key."""
    rt = Runtime(Database(make_engine(pg_url)))
    try:
        key = create_key(rt.db, rt.clock, Scope.ADMIN, "limits e2e")
    finally:
        rt.close()
    env = {"FAIRMETER_REDIS_URL": REDIS_URL, "FAIRMETER_REDIS_PREFIX": prefix}
    servers = [LiveServer(pg_url, env=env).start() for _ in range(2)]
    try:
        _catalog(servers[0].url, key)
        yield [server.url for server in servers], key
    finally:
        for server in servers:
            server.stop()


def _catalog(url: str, key: str) -> None:
    """Customer acme on plan pro: `tokens` blocked at LIMIT, `spend` with overage at 0.01
    past 1,000 and a spend cap of 90 (so at most 10,000 can be billed)."""
    charge = {"model": "per_unit", "unit_price": "0.01"}
    plan = {
        "key": "pro", "currency": "USD", "base_fee": "10",
        "charges": [
            {"meter": "tokens", **charge, "limit": str(LIMIT), "policy": "block"},
            {"meter": "spend", **charge, "limit": "1000", "policy": "overage"},
        ],
    }  # fmt: skip
    calls = [
        ("POST", "/v1/meters", {"key": "tokens", "event_type": "llm.tokens",
                                "aggregation": "sum", "value_property": "$.n"}),
        ("POST", "/v1/meters", {"key": "spend", "event_type": "llm.spend",
                                "aggregation": "sum", "value_property": "$.n"}),
        ("POST", "/v1/customers", {"key": "acme"}),
        ("POST", "/v1/plans", plan),
        ("POST", "/v1/subscriptions", {"customer": "acme", "plan": "pro"}),
        ("PUT", "/v1/customers/acme/limits/spend", {"max_overage_amount": "90"}),
    ]  # fmt: skip
    with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {key}"}) as client:
        for method, path, body in calls:
            response = client.request(method, path, json=body)
            assert response.status_code in (200, 201), response.text


def _race(urls: list[str], key: str, meter: str, seed: int) -> list[int]:
    """CALLS consumes from CLIENTS concurrent clients; the sizes admitted."""
    per_client = CALLS // CLIENTS
    seeds = [seed * 1000 + n for n in range(CLIENTS)]
    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Barrier(CLIENTS)
    results: Any = ctx.Queue()
    groups = [seeds[THREADS + i * THREADS_PER_PROCESS :][:THREADS_PER_PROCESS]
              for i in range(PROCESSES)]  # fmt: skip
    workers = [
        ctx.Process(target=consume_into,
                    args=(results, str(i), urls, key, meter, group, per_client, barrier))
        for i, group in enumerate(groups)
    ]  # fmt: skip
    for worker in workers:
        worker.start()
    try:
        admitted = consume_in_threads(urls, key, meter, seeds[:THREADS], per_client, barrier)
        found = dict(results.get(timeout=300) for _ in workers)
    finally:
        for worker in workers:
            worker.join(timeout=30)
    for name, outcome in found.items():
        assert isinstance(outcome, list), f"process {name}: {outcome}"
        admitted += outcome
    return admitted


def _usage(url: str, key: str, meter: str) -> Decimal:
    """The usage the node answers with (from its counters: Redis, rebuilt when missing)."""
    headers = {"Authorization": f"Bearer {key}"}
    response = httpx.get(f"{url}/v1/customers/acme/entitlements", headers=headers)
    assert response.status_code == 200, response.text
    [found] = [m for m in response.json()["meters"] if m["meter"] == meter]
    return Decimal(found["usage"])


@pytest.mark.parametrize("seed", SEEDS)
def test_two_nodes_never_admit_past_a_block_limit_together(
    nodes: tuple[list[str], str], prefix: str, seed: int
) -> None:
    urls, key = nodes
    admitted = sum(_race(urls, key, "tokens", seed))
    assert LIMIT - 5 < admitted <= LIMIT
    assert _usage(urls[0], key, "tokens") == _usage(urls[1], key, "tokens") == admitted
    _forget(prefix)  # rebuilt from the database: every admitted unit was recorded, once
    assert _usage(urls[1], key, "tokens") == admitted


@pytest.mark.parametrize("seed", SEEDS)
def test_two_nodes_never_bill_past_a_spend_cap_together(
    nodes: tuple[list[str], str], prefix: str, seed: int
) -> None:
    urls, key = nodes
    admitted = sum(_race(urls, key, "spend", 100 + seed))
    assert LIMIT - 5 < admitted <= LIMIT
    assert Decimal("0.01") * (admitted - 1000) <= 90
    _forget(prefix)
    assert _usage(urls[0], key, "spend") == admitted


def test_counters_lost_mid_period_are_rebuilt_from_the_database(
    nodes: tuple[list[str], str], prefix: str
) -> None:
    urls, key = nodes
    headers = {"Authorization": f"Bearer {key}"}
    with httpx.Client(headers=headers) as client:
        for n, url in enumerate(urls * 3):
            body = {"customer": "acme", "meter": "tokens", "quantity": "1500",
                    "idempotency_key": f"big-{n}"}  # fmt: skip
            assert client.post(f"{url}/v1/entitlements/consume", json=body).json()["allowed"]
    assert _usage(urls[0], key, "tokens") == 9000
    assert _forget(prefix) > 0  # Redis lost this deployment's counters
    assert _usage(urls[1], key, "tokens") == 9000
    with httpx.Client(headers=headers) as client:
        over = {"customer": "acme", "meter": "tokens", "quantity": "1001"}
        refused = client.post(f"{urls[0]}/v1/entitlements/consume", json=over)
        assert refused.status_code != 200 or not refused.json()["allowed"]
        fits = {**over, "quantity": "1000"}
        assert client.post(f"{urls[1]}/v1/entitlements/consume", json=fits).json()["allowed"]
    assert _usage(urls[0], key, "tokens") == LIMIT
