"""Admitted usage as usage events: what consume() writes at once, and what admit() gathers
to write in batches.

The event of a consume: source "fairmeter.entitlements", id = the idempotency key, type =
the meter's event type, subject = the customer, time = now, and data = the caller's data
with the quantity at the meter's value property (`{"tokens": 3}` for `$.tokens`). A count
meter counts events, so a quantity q is q events with ids `key`, `key:2` .. `key:q`. The
time is left out of the fingerprint: a retry with the same key and content, a moment
later, is a duplicate, not a conflict.
"""

from __future__ import annotations

import hashlib
import secrets
import threading
import time
import uuid
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Protocol

import msgspec

from fairmeter.domain.events import UsageEvent
from fairmeter.domain.meters import Meter
from fairmeter.domain.numbers import EXACT
from fairmeter.services.entitlement_terms import Armed
from fairmeter.storage.counters import Period

SOURCE = "fairmeter.entitlements"
MAX_EVENTS = 10_000  # a count meter's quantity is that many events, written at once
_CANONICAL = msgspec.json.Encoder(decimal_format="number", order="sorted")
_new_tuple = tuple.__new__


def new_event_id() -> str:
    """A UUIDv7 (RFC 9562): milliseconds first, so ids of one process grow with time."""
    millis = time.time_ns() // 1_000_000
    rand_a, rand_b = secrets.randbits(12), secrets.randbits(62)
    value = (millis << 80) | (0x7 << 76) | (rand_a << 64) | (0b10 << 62) | rand_b
    return str(uuid.UUID(int=value))


def usage_events(first: UsageEvent, count: int) -> list[tuple[int, UsageEvent]]:
    """A `usage_run`'s events one by one (ids `id`, `id:2` .. `id:<count>`), indexed."""
    if count == 1:
        return [(0, first)]
    ids = [first.id, *(f"{first.id}:{n}" for n in range(2, count + 1))]
    rest = tuple(first[2:])
    return [(index, _new_tuple(UsageEvent, (SOURCE, id_, *rest))) for index, id_ in enumerate(ids)]


def usage_run(
    meter: Meter,
    customer: str,
    quantity: Decimal,
    event_id: str,
    data: Mapping[str, object] | None,
    time_us: int,
) -> tuple[UsageEvent, int]:
    """The first event of the usage, and how many events it is: one for a meter with a
    value property (the quantity in its data), `quantity` for a count meter (the others
    differ only by id: `event_id:2` .. `event_id:<quantity>`)."""
    payload: dict[str, object] = dict(data or {})
    if meter.value_property is not None:
        payload = _with_value(payload, meter.value_property.segments, quantity)
        count = 1
    else:
        count = int(quantity)
    data_json = _CANONICAL.encode(payload)
    # A count meter's quantity is in no event's data: the fingerprint carries it, so a
    # key reused with another quantity is a conflict, not a duplicate.
    extent = "" if meter.value_property is not None else str(count)
    head = f"{meter.event_type}\x00{customer}\x00\x00{extent}".encode()
    digest = hashlib.blake2b(head + data_json, digest_size=16).digest()
    first = UsageEvent(SOURCE, event_id, meter.event_type, customer, time_us, payload,
                       data_json, digest)  # fmt: skip
    return first, count


def _with_value(
    payload: dict[str, object], path: tuple[str, ...], quantity: Decimal
) -> dict[str, object]:
    """A copy of `payload` with `quantity` at `path` (objects created along the way)."""
    head, rest = path[0], path[1:]
    if not rest:
        return {**payload, head: quantity}
    inner = payload.get(head)
    inner = dict(inner) if isinstance(inner, Mapping) else {}
    return {**payload, head: _with_value(inner, rest, quantity)}


def encodable(data: Mapping[str, object]) -> bool:
    try:
        _CANONICAL.encode(data)
    except (TypeError, msgspec.EncodeError):
        return False
    return True


@dataclass(slots=True)
class Batch:
    """Usage admit() admitted for one counter in one period, not written yet.

    While it gathers, admissions are counted per quantity (`counts`: no Decimal sum on
    the hot path); `PendingUsage.take` sums them into `quantity` and `admissions`."""

    armed: Armed
    period: Period
    quantity: Decimal = Decimal(0)
    admissions: int = 0
    attempts: int = 0
    counted: int = 0  # admissions a counter counted (each ends with settled or release)
    written: Decimal = Decimal(0)  # of `quantity`, what is in the database already
    counts: dict[Decimal, int] = field(default_factory=dict)  # quantity -> admissions

    def settle_counts(self) -> None:
        for quantity, times in self.counts.items():
            self.quantity = EXACT.add(self.quantity, EXACT.multiply(quantity, Decimal(times)))
            self.admissions += times
        self.counts = {}


BatchKey = tuple[str, str, int]  # (customer, meter, period start): cheaper to hash than a Period


def batch_key(armed: Armed, period: Period) -> BatchKey:
    return (*armed.key, period.start_us)


class PendingUsage:
    """Admitted usage gathered per (counter, period) until the next flush.

    The full path adds each admission here (`add`); a fast lane tallies its own under
    its counter's lock and is drained by `take` (`notice` queues it when it has some)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._batches: dict[BatchKey, Batch] = {}
        self._lanes: deque[TallyingLane] = deque()  # lanes with admissions since a drain

    def add(
        self,
        armed: Armed,
        period: Period,
        quantity: Decimal,
        counted: bool,
        key: BatchKey | None = None,
        times: int = 1,
    ) -> None:
        """`times` admissions of `quantity`; `key` is `batch_key(armed, period)` when the
        caller has it."""
        if key is None:
            key = (*armed.key, period.start_us)
        with self._lock:
            batch = self._batches.get(key)
            if batch is None:
                batch = self._batches[key] = Batch(armed, period)
            counts = batch.counts
            counts[quantity] = counts.get(quantity, 0) + times
            batch.counted += times if counted else 0

    def notice(self, lane: TallyingLane) -> None:
        """For a lane's `notify`: it has admissions to drain (`lane.tag` = (armed, period))."""
        self._lanes.append(lane)

    def take(self) -> list[Batch]:
        self._drain_lanes()
        with self._lock:
            batches, self._batches = list(self._batches.values()), {}
        for batch in batches:
            batch.settle_counts()
        return batches

    def _drain_lanes(self) -> None:
        lanes = self._lanes
        while lanes:
            lane = lanes.popleft()
            armed, period = lane.tag
            key = batch_key(armed, period)
            for quantity, times in lane.drain().items():
                self.add(armed, period, quantity, True, key, times)

    def put_back(self, batch: Batch) -> None:
        """A batch whose write failed waits for the next flush (merged with newer usage)."""
        key = (*batch.armed.key, batch.period.start_us)
        with self._lock:
            newer = self._batches.get(key)
            if newer is not None:
                for quantity, times in newer.counts.items():
                    batch.counts[quantity] = batch.counts.get(quantity, 0) + times
                batch.counted += newer.counted
            self._batches[key] = batch

    def __bool__(self) -> bool:
        return bool(self._batches) or bool(self._lanes)


class TallyingLane(Protocol):
    """What `PendingUsage` drains: `storage.counters_local.Lane`."""

    tag: Any

    def drain(self) -> dict[Decimal, int]: ...
