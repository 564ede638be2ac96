"""Counters kept in this process: exact for a single server process, no network on the path.

Each (customer, meter) has one `_Counter` with its own lock, so decisions for different
customers never wait on each other and a warm `admit` is a dict lookup, a lock, a few
Decimal operations (exact: `EXACT` context, never rounded) and integer/float bucket math.

Loading. A counter missing for the requested period (never loaded, or of another period)
is read with `load()` outside the lock -- a database read must not stall other threads --
and installed only if nothing touched the counter while the database was read (no admit,
settle, release or add in between: any of those could be counted twice or lost by the
swap). Otherwise the load is retried (a few times, then installed anyway).

Freshness (writes by other processes: a CLI import, another worker on the same SQLite
file). With `refresh_after_s` set, a counter older than that is re-read with `load()` when
it has NO admission in flight (admitted but neither settled nor released: its usage may or
may not be in the database yet) and nothing was admitted, settled, released or added while
the database was read. Otherwise it keeps counting in memory and tries again a little
later. Usage ingested by this process reaches the counters through `add` at once; the
refresh only matters for writers this process does not hear about.

Token buckets keep floats (they are not money) and use the caller's `now_us` (µs ints), so
tests can move time; a clock going backwards refills nothing.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable, Container, Iterator, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Final, Protocol

from fairmeter.domain.numbers import EXACT
from fairmeter.storage.counters import Admission, Bucket, CounterKey, Loader, Period

log = logging.getLogger("fairmeter.limits")
_LOAD_ATTEMPTS = 3
_ZERO = Decimal(0)
_UNBOUNDED = Decimal("Infinity")  # a lane's bound when there is none
_add: Final = EXACT.add  # bound once (compiled, a C static): the lane calls it always


class _Counter:
    __slots__ = (
        "buckets",
        "deferred",
        "in_flight",
        "loaded_at",
        "lock",
        "next_refresh",
        "period",
        "refreshing",
        "used",
        "version",
    )  # fmt: skip

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.period: Period | None = None
        self.used = _ZERO
        self.version = 0  # bumped by every change; a load that saw another version is stale
        self.in_flight = 0
        self.loaded_at = 0.0
        self.next_refresh = math.inf
        self.refreshing = False
        self.deferred = False  # a re-read waits for the admissions in flight
        self.buckets: dict[str, tuple[float, int]] = {}  # name -> (tokens, last_us)


class LocalCounters:
    def __init__(
        self,
        *,
        refresh_after_s: float | None = None,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._counters: dict[CounterKey, _Counter] = {}
        self._create = threading.Lock()
        self._refresh_after = refresh_after_s
        self._monotonic = monotonic

    # -- the Protocol -------------------------------------------------------------------

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
        terms = (quantity, ceiling, soft_limit, throttle, rate, now_us)
        for _ in range(_LOAD_ATTEMPTS):
            c = self._ready(key, period, load)
            with c.lock:
                if c.period is period or c.period == period:  # `is`: the engine reuses it
                    return _decide(c, *terms)
                late = c.period is not None and period.start_us < c.period.start_us
            if late:
                break  # a late call for the period before: never move a counter back
        # Decide against the record for that period, once, without keeping it: the call's
        # usage is recorded and read by the next load.
        transient = _Counter()
        transient.used, transient.period = load(), period
        with c.lock:
            transient.buckets = c.buckets
            admission = _decide(transient, *terms)
            c.in_flight += admission.admitted
            return admission

    def used(self, key: CounterKey, period: Period, load: Loader) -> Decimal:
        c = self._ready(key, period, load)
        with c.lock:
            if c.period == period:
                return c.used
        return load()  # another period took the counter over meanwhile: ask the record

    def add(self, items: Sequence[tuple[CounterKey, int, Decimal]]) -> None:
        for key, time_us, quantity in items:
            c = self._counters.get(key)
            if c is None:
                continue
            with c.lock:
                c.version += 1  # also spoils a load in progress that may have missed it
                if c.period is not None and time_us in c.period:
                    c.used = EXACT.add(c.used, quantity)

    def release(self, key: CounterKey, period: Period, quantity: Decimal) -> None:
        c = self._counters.get(key)
        if c is None:
            return
        with c.lock:
            c.version += 1
            c.in_flight = max(0, c.in_flight - 1)
            _landed(c)
            if c.period == period:
                c.used = EXACT.subtract(c.used, quantity)

    def settled(
        self, key: CounterKey, period: Period, quantity: Decimal, admissions: int = 1
    ) -> None:
        c = self._counters.get(key)
        if c is None:
            return
        with c.lock:
            c.version += 1
            c.in_flight = max(0, c.in_flight - admissions)
            _landed(c)

    @property
    def held(self) -> Container[CounterKey]:
        """The keys of the counters held here (`add` ignores the others)."""
        return self._counters.keys()

    # -- the fast lane ------------------------------------------------------------------

    def lane(self, period: Period, guard: LaneGuard) -> Lane | None:
        """A shortcut for the common admission on the counter of `guard.key` (see `Lane`),
        or None when the counter does not hold `period` yet (a first `admit` loads it)."""
        c = self._counters.get(guard.key)
        if c is None or c.period != period:
            return None
        return Lane(c, c.period, self._monotonic, guard)

    # -- loading ------------------------------------------------------------------------

    def _ready(self, key: CounterKey, period: Period, load: Loader) -> _Counter:
        """The counter for `key`, holding `period` (loaded if needed) unless another
        thread moved it on meanwhile; refreshed from the database when due."""
        c = self._counters.get(key)
        if c is None:
            with self._create:
                c = self._counters.setdefault(key, _Counter())
        if c.period is not period and c.period != period:
            self._install(c, period, load)
        elif c.next_refresh <= self._monotonic():
            self._refresh(c, load)
        return c

    def _install(self, c: _Counter, period: Period, load: Loader) -> None:
        for attempt in range(_LOAD_ATTEMPTS):
            with c.lock:
                if c.period is not None and period.start_us < c.period.start_us:
                    return
                seen = c.version
            value = load()
            with c.lock:
                if c.period == period:
                    return  # another thread installed it first: its value is as good
                if c.period is not None and period.start_us < c.period.start_us:
                    return
                if c.version == seen or attempt == _LOAD_ATTEMPTS - 1:
                    self._set(c, period, value)
                    return

    def _refresh(self, c: _Counter, load: Loader) -> None:
        with c.lock:
            now = self._monotonic()
            if c.refreshing or c.next_refresh > now:
                return
            if c.in_flight:  # usage on its way to the database: when it is there (settled)
                c.next_refresh = now + min(0.05, self._refresh_after or 0)
                c.deferred = True
                return
            c.refreshing = True
            seen, period = c.version, c.period
        try:
            value: Decimal | None = load()
        except Exception:  # the counter still answers; the record is read again later
            log.warning("re-reading the usage of %s failed", c.period, exc_info=True)
            value = None
        with c.lock:
            c.refreshing = False
            fresh = c.version == seen and c.period == period and not c.in_flight
            if value is not None and fresh:
                self._set(c, period, value)
            else:  # counted meanwhile (or the read failed): keep counting, try again shortly
                c.next_refresh = self._monotonic() + min(0.05, self._refresh_after or 0)

    def _set(self, c: _Counter, period: Period | None, value: Decimal) -> None:
        c.period, c.used = period, value
        c.loaded_at = self._monotonic()
        c.next_refresh = math.inf if self._refresh_after is None else (
            c.loaded_at + self._refresh_after
        )  # fmt: skip


def _landed(c: _Counter) -> None:
    """Nothing in flight any more: a re-read that waited for it is due now."""
    if c.deferred and not c.in_flight:
        c.deferred = False
        c.next_refresh = -math.inf


class Lane:
    """`lane.admit(quantity)` is a whole admission in one call, on one counter in one
    period, with no bucket to ask: it answers the usage after it, or None for "ask
    `LocalCounters.admit`" (the full path), which it does when

    - `now_ns()` reached `gate.open_until_ns`, which the caller lowers (to 0) to close
      the lane at once (its terms were re-read or invalidated);
    - the quantity is not `unit` (what callers pass, the same object every time) nor a
      Decimal of the same value, and `accepts(quantity)` says no;
    - the counter moved to another period or is due to be re-read;
    - or the usage after it would pass `bound` (None: no bound), so that refusals,
      overage and upgrades take the full path.

    Same lock, same bookkeeping as `admit`: the admission ends with `settled` or `release`
    like any other. An admission also counts one in `tally` (a metrics counter).

    The lane keeps what it admitted, by quantity, under that same lock, until `drain`
    hands it over to be written: no second lock on the hot path. The first admission
    after a drain calls `notify(lane)`, so a writer drains only the lanes that admitted
    something. `tag` is the creator's, to know what the admissions are for."""

    __slots__ = (
        "_accepts", "_acquire", "_bound", "_counter", "_gate", "_monotonic", "_notify", "_now_ns",
        "_period", "_release", "_tally", "_unit", "count", "others", "tag",
    )  # fmt: skip

    def __init__(
        self,
        counter: _Counter,
        period: Period,
        monotonic: Callable[[], float],
        guard: LaneGuard,
    ) -> None:
        self._counter, self._period, self._monotonic = counter, period, monotonic
        # The counter's lock, its methods bound once (it never changes): a call each, no
        # method looked up per admission.
        self._acquire, self._release = counter.lock.acquire, counter.lock.release
        self._now_ns, self._gate = guard.now_ns, guard.gate
        self._unit, self._accepts = guard.unit, guard.accepts
        self._bound = _UNBOUNDED if guard.bound is None else guard.bound
        self._tally, self._notify, self.tag = guard.tally, guard.notify, guard.tag
        self.count = 0  # admissions since the last drain
        self.others: dict[Decimal, int] = {}  # of those, the ones of another quantity

    def admit(self, quantity: Decimal) -> Decimal | None:
        if self._now_ns() >= self._gate.open_until_ns:
            return None
        unit = quantity is self._unit
        if not unit:
            # The unit's value in another object (a caller that did not open the lane):
            # accepted as the unit was, without asking `accepts`. (Finite first: comparing
            # a signaling NaN raises; `accepts` refuses it.)
            if type(quantity) is Decimal and quantity.is_finite() and quantity == self._unit:
                unit = True
            elif not self._accepts(quantity):
                return None
        c = self._counter
        self._acquire()
        try:
            if c.period is not self._period or c.next_refresh <= self._monotonic():
                return None
            used = _add(c.used, quantity)
            if used > self._bound:
                return None
            c.used = used
            c.in_flight += 1  # (no version bump: a re-read waits for in-flight admissions)
            self.count += 1
            if not unit:
                self.others[quantity] = self.others.get(quantity, 0) + 1
            if self.count == 1:
                self._notify(self)
        finally:
            self._release()
        next(self._tally)
        return used

    def drain(self) -> dict[Decimal, int]:
        """The admissions since the last drain: quantity -> how many."""
        with self._counter.lock:
            count, counts = self.count, self.others
            self.count, self.others = 0, {}
        units = count - sum(counts.values())
        if units:
            counts[self._unit] = counts.get(self._unit, 0) + units
        return counts


class Gate(Protocol):
    open_until_ns: int  # ns since the epoch (by `now_ns`); 0 closes the lane


@dataclass(frozen=True, slots=True)
class LaneGuard:
    """What a `Lane` is opened with, besides its counter (see `Lane`)."""

    now_ns: Callable[[], int]
    gate: Gate
    key: CounterKey
    unit: Decimal
    accepts: Callable[[Decimal], bool]
    bound: Decimal | None
    tally: Iterator[int]
    notify: Callable[[Lane], Any]
    tag: Any  # (Any, not object: mypyc's dataclasses cannot name `object` in annotations)


def _decide(
    c: _Counter,
    quantity: Decimal,
    ceiling: Decimal | None,
    soft_limit: Decimal | None,
    throttle: Bucket | None,
    rate: Bucket | None,
    now_us: int,
) -> Admission:
    """The admission rule of `Counters.admit`, on a counter whose lock the caller holds."""
    rate_state = throttle_state = None
    if rate is not None:
        rate_state, retry = _take(c, rate, quantity, now_us)
        if rate_state is None:
            return Admission(False, c.used, "rate", retry)
    new_used = EXACT.add(c.used, quantity)
    if ceiling is not None and new_used > ceiling:
        return Admission(False, c.used, "ceiling")
    if throttle is not None and soft_limit is not None and new_used > soft_limit:
        throttle_state, retry = _take(c, throttle, quantity, now_us)
        if throttle_state is None:
            return Admission(False, c.used, "throttle", retry)
        c.buckets[throttle.name] = throttle_state
    if rate is not None and rate_state is not None:
        c.buckets[rate.name] = rate_state
    c.used = new_used
    c.version += 1
    c.in_flight += 1
    return Admission(True, new_used)


def _take(
    c: _Counter, bucket: Bucket, quantity: Decimal, now_us: int
) -> tuple[tuple[float, int] | None, int | None]:
    """The bucket's state after taking `quantity` tokens at `now_us`, or (None, µs until it
    holds them; None when it never refills)."""
    rate, capacity, need = float(bucket.rate), float(bucket.capacity), float(quantity)
    tokens, last_us = c.buckets.get(bucket.name, (capacity, now_us))
    elapsed = max(0, now_us - last_us)
    tokens = min(capacity, tokens + elapsed * rate / 1e6)
    if tokens >= need:
        return (tokens - need, max(now_us, last_us)), None
    if rate <= 0:
        return None, None
    return None, math.ceil((need - tokens) * 1e6 / rate)
