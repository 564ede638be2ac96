"""Clients that post event batches to a live server, for threads and spawned processes.

A plain module (not a test module) so a spawned process can import it by name."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from multiprocessing.queues import Queue
from typing import Any

import httpx

BATCH = "application/cloudevents-batch+json"
Outcome = tuple[int, int, int]  # accepted, duplicates, rejected


def event(source: str, number: int, start: datetime, n: int = 1) -> dict[str, Any]:
    """Event `number`, timed inside the hour after `start` so it lands in whole buckets."""
    moment = start + timedelta(milliseconds=number % 3_600_000)
    return {
        "specversion": "1.0",
        "id": f"evt-{number:06d}",
        "source": source,
        "type": "api.request",
        "subject": "acme",
        "time": moment.isoformat(),
        "data": {"n": n},
    }


def encode(events: list[dict[str, Any]]) -> bytes:
    return json.dumps(events).encode()


def post_all(url: str, key: str, batches: list[bytes], barrier: Any = None) -> list[Outcome]:
    """Post each batch once, after every submitter is ready; returns each outcome."""
    headers = {"Authorization": f"Bearer {key}", "content-type": BATCH}
    outcomes: list[Outcome] = []
    with httpx.Client(base_url=url, headers=headers, timeout=60) as client:
        client.get("/healthz")  # connect before the start line, not after it
        if barrier is not None:
            barrier.wait(timeout=60)
        for body in batches:
            response = client.post("/v1/events", content=body)
            response.raise_for_status()
            result = response.json()
            outcomes.append((result["accepted"], result["duplicates"], len(result["rejected"])))
    return outcomes


def post_all_into(
    queue: Queue[tuple[str, list[Outcome] | str]],
    name: str,
    url: str,
    key: str,
    batches: list[bytes],
    barrier: Any,
) -> None:
    """Process entry point: the outcomes (or what went wrong) travel back through `queue`."""
    try:
        queue.put((name, post_all(url, key, batches, barrier)))
    except Exception as exc:  # the parent reports it; a dead child would only time out
        queue.put((name, repr(exc)))
