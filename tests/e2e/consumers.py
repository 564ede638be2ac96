"""Clients that call POST /v1/entitlements/consume on live servers, for threads and
spawned processes. A plain module (not a test module) so a spawned process imports it."""

from __future__ import annotations

import random
from concurrent.futures import ThreadPoolExecutor
from multiprocessing.queues import Queue
from typing import Any

import httpx

REFUSED = (402, 403, 429)


def consume_many(
    urls: list[str], key: str, meter: str, seed: int, calls: int, barrier: Any = None
) -> list[int]:
    """`calls` consumes of random sizes 1-5, spread over the servers; the admitted sizes."""
    rng = random.Random(seed)
    admitted: list[int] = []
    headers = {"Authorization": f"Bearer {key}"}
    clients = [httpx.Client(base_url=url, headers=headers, timeout=60) for url in urls]
    try:
        for client in clients:
            client.get("/healthz")
        if barrier is not None:
            barrier.wait(timeout=60)
        for call in range(calls):
            quantity = rng.randint(1, 5)
            body = {"customer": "acme", "meter": meter, "quantity": str(quantity),
                    "idempotency_key": f"{meter}-{seed}-{call}"}  # fmt: skip
            response = post_consume(clients[call % len(clients)], body)
            if response.status_code == 200 and response.json()["allowed"]:
                admitted.append(quantity)
            elif response.status_code not in (200, *REFUSED):
                raise RuntimeError(f"{response.status_code}: {response.text}")
    finally:
        for client in clients:
            client.close()
    return admitted


def post_consume(client: httpx.Client, body: dict[str, str], attempts: int = 3) -> httpx.Response:
    """POST a consume that carries an idempotency key; a connection dropped on the way
    (a loaded machine) is retried with the same key, so the usage counts once."""
    assert "idempotency_key" in body
    for attempt in range(attempts):
        try:
            return client.post("/v1/entitlements/consume", json=body)
        except httpx.TransportError:
            if attempt == attempts - 1:
                raise
    raise AssertionError("unreachable")


def consume_in_threads(
    urls: list[str], key: str, meter: str, seeds: list[int], calls: int, barrier: Any = None
) -> list[int]:
    with ThreadPoolExecutor(len(seeds)) as pool:
        runs = [pool.submit(consume_many, urls, key, meter, s, calls, barrier) for s in seeds]
        return [q for run in runs for q in run.result()]


def consume_into(
    queue: Queue[tuple[str, list[int] | str]],
    name: str,
    urls: list[str],
    key: str,
    meter: str,
    seeds: list[int],
    calls: int,
    barrier: Any,
) -> None:
    """Process entry point: admitted sizes (or what went wrong) travel back by `queue`."""
    try:
        queue.put((name, consume_in_threads(urls, key, meter, seeds, calls, barrier)))
    except Exception as exc:  # the parent reports it; a dead child would only time out
        queue.put((name, repr(exc)))
