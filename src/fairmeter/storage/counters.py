"""Counters for real-time limits: the usage of a (customer, meter) in its current period,
and token buckets, behind one Protocol with two implementations -- in this process
(`LocalCounters`, exact for a single server process) and in Redis (`RedisCounters`,
shared by many processes and hosts, atomic Lua scripts).

The database stays the record: a counter is loaded from it (`load`) the first time it is
needed in a period, and again whenever the store lost it (a Redis flush, a restart).

`admit` is the one atomic step every decision takes, in this order:
1. `rate` (a bucket independent of the allowance): it must hold `quantity` tokens, else
   refused_by "rate";
2. `used + quantity` must not exceed `ceiling` (None: no ceiling), else "ceiling";
3. past `soft_limit` (None: none), `throttle` must hold `quantity` tokens, else "throttle";
4. admitted: `used += quantity`, and the tokens taken from the buckets that applied.
A refused call changes nothing. Quantities and usage are exact Decimals everywhere (the
Redis scripts add and compare decimal strings, never floats); token buckets are not money
and may use floats.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Literal, Protocol

CounterKey = tuple[str, str]  # (customer key, meter key)
Refusal = Literal["rate", "ceiling", "throttle"]


@dataclass(frozen=True, slots=True)
class Period:
    """The half-open period a counter counts, in µs since the epoch (UTC)."""

    start_us: int
    end_us: int

    def __contains__(self, time_us: object) -> bool:
        return isinstance(time_us, int) and self.start_us <= time_us < self.end_us


@dataclass(frozen=True, slots=True)
class Bucket:
    """A token bucket: `rate` tokens per second, holding at most `capacity` (full at first).
    `name` tells buckets of one counter apart (e.g. "rate", "throttle")."""

    name: str
    rate: Decimal
    capacity: Decimal


@dataclass(frozen=True, slots=True)
class Admission:
    admitted: bool
    used: Decimal  # after the call when admitted, as it stands when refused
    refused_by: Refusal | None = None
    # For a bucket refusal: µs until the bucket holds `quantity` tokens again.
    retry_after_us: int | None = None


class CountersUnavailable(Exception):
    """The shared store cannot be reached; the engine applies the fail-open/closed setting."""


Loader = Callable[[], Decimal]


class Counters(Protocol):
    def admit(
        self,
        key: CounterKey,
        period: Period,
        quantity: Decimal,
        *,
        ceiling: Decimal | None,
        soft_limit: Decimal | None,
        throttle: Bucket | None,
        rate: Bucket | None,
        now_us: int,
        load: Loader,
    ) -> Admission:
        """Atomically decide and count (see the module docstring). A counter missing for
        `period` (never loaded, lost, or of an earlier period) starts from `load()`."""
        ...

    def used(self, key: CounterKey, period: Period, load: Loader) -> Decimal:
        """The usage so far in `period` (loaded when missing); counts nothing."""
        ...

    def add(self, items: Sequence[tuple[CounterKey, int, Decimal]]) -> None:
        """Usage committed elsewhere (ingested events): (key, time_us, quantity). Added to
        a counter only when one exists for a period holding `time_us`: a counter loaded
        later reads it from the database."""
        ...

    def release(self, key: CounterKey, period: Period, quantity: Decimal) -> None:
        """Undo an admission whose usage could not be recorded (the write failed, or the
        idempotency key had been used already)."""
        ...

    def settled(
        self, key: CounterKey, period: Period, quantity: Decimal, admissions: int = 1
    ) -> None:
        """`admissions` admissions, `quantity` in all, are now durably recorded in the
        database. Every admission ends with exactly one `settled` or `release`: a store
        that re-reads counters from the database (to see writes by other processes) must
        not count an admission twice or lose one that is still being written."""
        ...
