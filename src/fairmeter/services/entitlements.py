"""The limits engine: check, consume and admit usage against a customer's terms.

Every decision is one atomic `Counters.admit` (see `storage.counters`), so concurrent calls
never pass a ceiling together. `consume` then writes the usage as events before answering
(released from the counter if the write fails or the idempotency key was used already);
`admit` answers at once and writes the usage in batches, at most `flush_interval_s` later
(and on close): a crash in between loses that usage from the record, never a refusal.
`check` records nothing and answers whether a consume of the same quantity would be
allowed, and why, with usage, remaining and overage as they stand (before the quantity);
it takes no tokens, so it cannot see a rate or throttle bucket run dry.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Container, Mapping, Sequence
from decimal import Decimal
from typing import TYPE_CHECKING

from fairmeter.domain.entitlements import Decision, Reason, decide, refusal, unchecked
from fairmeter.domain.numbers import EXACT
from fairmeter.domain.windows import to_us
from fairmeter.services.clock import SystemClock
from fairmeter.services.entitlement_lanes import Lane, lane_guard, require_quantity
from fairmeter.services.entitlement_notices import Notices
from fairmeter.services.entitlement_recording import PendingUsage
from fairmeter.services.entitlement_stats import DecisionStats
from fairmeter.services.entitlement_terms import ADDITIVE, Armed, TermsCache
from fairmeter.services.entitlement_upgrades import Upgrader
from fairmeter.services.entitlement_writer import Writer
from fairmeter.services.hooks import Origin, Recorded
from fairmeter.storage.counters import CounterKey, Counters, CountersUnavailable

if TYPE_CHECKING:
    from fairmeter.services.runtime import Runtime

log = logging.getLogger("fairmeter.limits")
MAX_UPGRADES = 5  # upgrades one call may chain (a plan cycle must not loop forever)


class Enforcer:
    def __init__(
        self,
        rt: Runtime,
        counters: Counters,
        *,
        fail_open: bool = False,
        flush_interval_s: float = 0.2,
        terms_refresh_s: float = 1.0,
    ) -> None:
        self.rt, self.counters, self.fail_open = rt, counters, fail_open
        self.terms = TermsCache(rt.db, rt.clock, int(terms_refresh_s * 1_000_000), rt.heads)
        self.stats = DecisionStats()
        self.notices = Notices(rt.hooks)
        self.upgrader = Upgrader(rt, self.terms, self.notices)
        self.pending = PendingUsage()
        self.writer = Writer(rt, counters, self.pending, self.stats, flush_interval_s)
        self._now = _micros(rt.clock)
        self._now_ns = _nanos(rt.clock)
        # A store that can answer a check from what it saw a moment ago (Redis: no round
        # trip); None: `used` answers (the local store is memory anyway).
        self._recent = getattr(counters, "recent", None)
        # Counters in this process offer a shortcut for the common admission.
        self._counter_lane = getattr(counters, "lane", None)
        # The keys a store in this process counts (None: a shared store wants them all).
        self._held: Container[CounterKey] | None = getattr(counters, "held", None)
        # (customer, meter) -> its fast lane: `lane.counter.admit(quantity)` is the whole
        # admission when it can answer (see `Lane`); EmbeddedEngine uses them directly.
        self.lanes: dict[CounterKey, Lane] = {}
        self._closed = False
        rt.hooks.on_usage(self._on_usage)

    # -- decisions ----------------------------------------------------------------------

    def check(self, customer: str, meter: str, quantity: Decimal) -> Decision:
        """What a consume of `quantity` would answer now; records nothing."""
        now_us = self._now()
        armed = self.terms.get(customer, meter, now_us)
        require_quantity(armed, quantity)
        decision = self._peek(armed, quantity, now_us)
        self.stats.count("check", decision, armed.terms.period_start_us)
        return decision

    def consume(
        self,
        customer: str,
        meter: str,
        quantity: Decimal,
        idempotency_key: str | None = None,
        data: Mapping[str, object] | None = None,
    ) -> Decision:
        """Decide and, when allowed, write the usage before answering."""
        now_us = self._now()
        armed = self.terms.get(customer, meter, now_us)
        require_quantity(armed, quantity)
        decision, counted_in, counted = self._decide(armed, quantity, now_us, "consume")
        if counted_in is None:
            return decision
        return self.writer.write_now(counted_in, decision, quantity, counted, now_us,
                                     idempotency_key, data)  # fmt: skip

    def admit(self, customer: str, meter: str, quantity: Decimal) -> Decision:
        """Decide and count now; the usage is written with the next batch."""
        lane = self.lanes.get((customer, meter))
        if lane is not None:
            decision = lane.admit(quantity)
            if decision is not None:
                return decision
        now_us = self._now()
        return self._admit(self.terms.get(customer, meter, now_us), quantity, now_us)

    def _admit(self, armed: Armed, quantity: Decimal, now_us: int) -> Decision:
        require_quantity(armed, quantity)
        decision, counted_in, counted = self._decide(armed, quantity, now_us, "admit")
        if counted_in is not None and counted_in.period is not None:
            self.pending.add(counted_in, counted_in.period, quantity, counted)
            self.writer.start()
            if decision.reason is Reason.WITHIN_ALLOWANCE and counted_in is armed:
                self._open_lane(armed, quantity)
        return decision

    def _open_lane(self, armed: Armed, quantity: Decimal) -> None:
        """The next admissions like this one take the fast lane (see `Lane`), when the
        counters can (in this process) and no bucket applies within the allowance."""
        if self._counter_lane is None or armed.rate is not None or armed.period is None:
            return
        guard = lane_guard(armed, quantity, self.stats, now_ns=self._now_ns,
                           notify=self.pending.notice)  # fmt: skip
        counter = self._counter_lane(armed.period, guard)
        if counter is not None and not self._closed:
            self.lanes[armed.key] = Lane(armed, counter)

    def _peek(self, armed: Armed, quantity: Decimal, now_us: int) -> Decision:
        terms = armed.terms
        if armed.refused is not None or armed.period is None:
            return _early_refusal(armed) or refusal(terms, Reason.NO_SUBSCRIPTION)
        usage = None if self._recent is None else self._recent(armed.key, armed.period)
        if usage is None:
            try:
                usage = self.counters.used(armed.key, armed.period, armed.load)
            except CountersUnavailable:
                return self._unavailable(armed)[0]
        after = EXACT.add(usage, quantity)
        ceiling = terms.ceiling
        if ceiling is not None and after > ceiling:
            if terms.upgrades_to is not None:
                upgrade = terms.upgrades_to
                return decide(terms, allowed=True, usage=after, upgraded_to=upgrade, standing=usage)
            return decide(terms, allowed=False, usage=usage, refused_by="ceiling", now_us=now_us)
        return decide(terms, allowed=True, usage=after, now_us=now_us, standing=usage)

    def _decide(
        self, armed: Armed, quantity: Decimal, now_us: int, operation: str
    ) -> tuple[Decision, Armed | None, bool]:
        """The decision, the terms it was counted under (None when refused) and whether a
        counter counted it (not when admitted with the counters unreachable)."""
        upgraded_to: str | None = None
        for _ in range(MAX_UPGRADES + 1):
            decision, admitted = self._admit_once(armed, quantity, now_us, upgraded_to)
            if decision is not None:
                self.stats.count(operation, decision, armed.terms.period_start_us)
                if decision.reason is Reason.LIMITS_UNAVAILABLE:
                    return decision, armed if decision.allowed else None, False
                return decision, armed if admitted else None, admitted
            upgraded = self.upgrader.upgrade(armed, now_us)
            if upgraded is None:
                break
            armed, upgraded_to = upgraded, upgraded.terms.plan
        decision = self._refused_at_ceiling(armed, now_us)
        self.stats.count(operation, decision, armed.terms.period_start_us)
        return decision, None, False

    def _admit_once(
        self, armed: Armed, quantity: Decimal, now_us: int, upgraded_to: str | None
    ) -> tuple[Decision | None, bool]:
        """(decision, admitted); (None, False) when refused at a ceiling an upgrade lifts."""
        terms = armed.terms
        if armed.refused is not None or armed.period is None:
            return _early_refusal(armed) or refusal(terms, Reason.NO_SUBSCRIPTION), False
        try:
            admission = self.counters.admit(
                armed.key,
                armed.period,
                quantity,
                ceiling=terms.ceiling,
                soft_limit=terms.soft_limit,
                throttle=armed.throttle,
                rate=armed.rate,
                now_us=now_us,
                load=armed.load,
            )
        except CountersUnavailable:
            return self._unavailable(armed)[0], False
        if admission.admitted:
            decision = decide(terms, allowed=True, usage=admission.used, upgraded_to=upgraded_to)
            self.notices.admitted(decision, terms, now_us)
            return decision, True
        if admission.refused_by == "ceiling" and terms.upgrades_to is not None:
            return None, False
        decision = decide(
            terms,
            allowed=False,
            usage=admission.used,
            refused_by=admission.refused_by,
            retry_in_us=admission.retry_after_us,
            now_us=now_us,
        )
        self.notices.refused(decision, terms, admission.refused_by, now_us)
        return decision, False

    def _refused_at_ceiling(self, armed: Armed, now_us: int) -> Decision:
        """No upgrade could lift the ceiling: refused as under block."""
        terms = armed.terms
        usage = self.usage_of(armed)
        decision = decide(
            terms, allowed=False, usage=usage or Decimal(0), refused_by="ceiling", now_us=now_us
        )
        self.notices.refused(decision, terms, "ceiling", now_us)
        return decision

    def usage_of(self, armed: Armed) -> Decimal | None:
        if armed.period is None:
            return None
        try:
            return self.counters.used(armed.key, armed.period, armed.load)
        except CountersUnavailable:
            return None

    def _unavailable(self, armed: Armed) -> tuple[Decision, bool]:
        """The shared counters cannot be reached: FAIRMETER_REDIS_FAILURE decides."""
        self.stats.unavailable += 1
        way = "open" if self.fail_open else "closed"
        log.warning("limits counters unreachable; failing %s", way)
        if self.fail_open:
            return unchecked(armed.terms), True
        return refusal(armed.terms, Reason.LIMITS_UNAVAILABLE), False

    # -- usage recorded elsewhere, lifecycle ---------------------------------------------

    def _on_usage(self, items: Sequence[Recorded]) -> None:
        """Ingested events reach the counters at once (consume's own are counted already)."""
        # Runs for every event ingested, with the write lock just released: locals, and
        # with local counters only the customers and meters this process counts.
        events, additive, held = Origin.EVENTS, ADDITIVE, self._held
        adds = []
        for r in items:
            if r.origin is events and r.meter.aggregation in additive:
                key = (r.subject, r.meter.key)
                if (held is None or key in held) and isinstance(r.value, Decimal):
                    adds.append((key, r.time_us, r.value))
        if adds:
            self.counters.add(adds)

    def invalidate(self, customer: str) -> None:
        self.terms.invalidate(customer)  # a lane holds the terms it was opened with: it closes

    def flush(self) -> None:
        """Write batched usage and denial counts now."""
        self.writer.flush()

    def close(self) -> None:
        """Write what admit() gathered and stop the writer; closes the counters' store."""
        if self._closed:
            return
        self._closed = True
        self.lanes.clear()
        self.writer.close()
        closer = getattr(self.counters, "close", None)
        if callable(closer):
            closer()


def _early_refusal(armed: Armed) -> Decision | None:
    return None if armed.refused is None else refusal(armed.terms, armed.refused)


def _nanos(clock: object) -> Callable[[], int]:
    """Now in ns: the system clock's own function on the hot path."""
    if type(clock) is SystemClock:
        return time.time_ns
    return lambda: to_us(clock.now()) * 1000  # type: ignore[attr-defined]


def _micros(clock: object) -> Callable[[], int]:
    """Now in µs: straight from the system clock on the hot path (no datetime built)."""
    if type(clock) is SystemClock:
        return lambda: time.time_ns() // 1000
    return lambda: to_us(clock.now())  # type: ignore[attr-defined]
