"""The terms of each (customer, meter), read from the database and kept warm in memory.

A warm check must not touch the database: terms are cached per (customer, meter) and read
again when this process changes them (overrides, suspension, an upgrade: `invalidate`),
and at the end of their period. A change made elsewhere shows within `refresh_us` (and a
tenth): when terms fall due, one read of the terms version (bumped by a trigger on every
table they are built from, migration 0009) tells whether anything changed since they were
read; if not, and no instant that changes them with time alone has come (a period's end,
a scheduled plan change or cancel, a later start), they are kept for another `refresh_us`
instead of read again. That read is shared by every (customer, meter) for a tenth of
`refresh_us`, so hundreds of busy customers cost one query, not hundreds of re-reads. While
one thread re-reads stale terms, the others keep using them, except across a period's end.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal

from fairmeter.domain.entitlements import Reason, Terms, build_terms
from fairmeter.domain.errors import FieldError, InvalidInput, NotFound
from fairmeter.domain.limits import Override
from fairmeter.domain.meters import Aggregation, Meter
from fairmeter.domain.plans import Plan
from fairmeter.domain.pricing.models import ZERO
from fairmeter.domain.subscriptions import NoSubscription, Subscription
from fairmeter.domain.windows import NEVER_US, Span, from_us, next_instant_us, to_us
from fairmeter.services.clock import Clock
from fairmeter.services.subscriptions import customer_subscription
from fairmeter.storage.alert_usage import HeadStore, UsageBatch
from fairmeter.storage.billing import Plans
from fairmeter.storage.catalog import Customers, Meters
from fairmeter.storage.counters import Bucket, CounterKey, Loader, Period
from fairmeter.storage.database import Database
from fairmeter.storage.limits import Limits

ADDITIVE = (Aggregation.COUNT, Aggregation.SUM)
ONE = Decimal(1)


@dataclass(slots=True, eq=False)
class Armed:
    """Terms made ready for the counters: key, period, buckets and the usage loader."""

    terms: Terms
    meter: Meter
    key: CounterKey
    period: Period | None  # None: not subscribed to the meter
    throttle: Bucket | None
    rate: Bucket | None
    load: Loader
    fresh_until_us: int
    # Other count/sum meters of the same event type: the events consume() writes count
    # for them too, so their counters are told (ingest reports them as already counted).
    siblings: tuple[Meter, ...] = ()
    counts_events: bool = False  # a count meter: a quantity is that many events
    # Why every call is refused without asking a counter (suspended, not subscribed).
    refused: Reason | None = None
    # Fast lanes admit under these terms until then (ns): `fresh_until_us`, or 0 once the
    # cache let go of them (re-read, invalidated), which closes their lanes at once.
    open_until_ns: int = 0
    # The terms version they were read at, and the first instant at which they may change
    # with time alone: while the version is the same and that instant has not come, they
    # are kept, not read again.
    version: int = -1
    changes_at_us: int = 0

    def retire(self) -> None:
        self.open_until_ns = 0


class TermsCache:
    def __init__(
        self,
        db: Database,
        clock: Clock,
        refresh_us: int = 1_000_000,
        heads: HeadStore | None = None,
    ) -> None:
        self.db, self.clock, self.refresh_us, self.heads = db, clock, refresh_us, heads
        self._entries: dict[CounterKey, Armed] = {}
        self._locks: dict[CounterKey, threading.Lock] = {}
        self._guard = threading.Lock()
        self._generation = 0
        self._version: tuple[int, int] = (-1, 0)  # the last terms version read, and when

    def get(self, customer: str, meter: str, now_us: int) -> Armed:
        armed = self._entries.get((customer, meter))
        if armed is not None and now_us < armed.fresh_until_us:
            return armed
        return self._refresh((customer, meter), armed, now_us)

    def invalidate(self, customer: str) -> None:
        """Forget the customer's terms: the next call reads them again. (Under the guard,
        like `_kept`: terms being kept are either kept first, then retired, or not kept.)"""
        with self._guard:
            self._generation += 1
            for key in list(self._entries):
                if key[0] == customer:
                    gone = self._entries.pop(key, None)
                    if gone is not None:
                        gone.retire()

    def _refresh(self, key: CounterKey, stale: Armed | None, now_us: int) -> Armed:
        lock = self._lock_for(key)
        usable = stale is not None and (stale.period is None or now_us < stale.period.end_us)
        if usable and not lock.acquire(blocking=False):
            assert stale is not None
            return stale  # another thread is reading them; these are at most a moment old
        if not usable:
            lock.acquire()
        try:
            current = self._entries.get(key)
            if current is not None and current is not stale and now_us < current.fresh_until_us:
                return current
            if current is not None and current is stale and self._kept(current, now_us):
                return current
            generation = self._generation
            armed = self._load(key, now_us)
            if generation != self._generation:
                armed.fresh_until_us = now_us  # changed while read: use once, read again
                armed.retire()
            if current is not None:
                current.retire()
            self._entries[key] = armed
            return armed
        finally:
            lock.release()

    def _kept(self, armed: Armed, now_us: int) -> bool:
        """Keep terms that fell due for another `refresh_us` when nothing they are built from
        changed since they were read and time alone does not change them yet."""
        if now_us >= armed.changes_at_us:
            return False
        if self._current_version(now_us) != armed.version:
            return False
        fresh_until = min(now_us + self.refresh_us, armed.changes_at_us)
        with self._guard:
            if self._entries.get(armed.key) is not armed or armed.open_until_ns == 0:
                return False  # invalidated meanwhile, or changed while it was read
            armed.fresh_until_us = fresh_until
            armed.open_until_ns = fresh_until * 1000
        return True

    def _current_version(self, now_us: int) -> int:
        """The terms version, read at most once per tenth of `refresh_us` for all terms."""
        version, read_at = self._version
        if 0 <= now_us - read_at < self.refresh_us // 10:
            return version
        with self.db.read() as conn:
            version = Limits(conn).terms_version()
        self._version = (version, now_us)
        return version

    def _lock_for(self, key: CounterKey) -> threading.Lock:
        lock = self._locks.get(key)
        if lock is None:
            with self._guard:
                lock = self._locks.setdefault(key, threading.Lock())
        return lock

    def _load(self, key: CounterKey, now_us: int) -> Armed:
        customer, meter_key = key
        with self.db.read() as conn:
            # First: a write after this read bumps the version past it, so terms are never
            # kept at a version older than what they were built from.
            version = Limits(conn).terms_version()
            meter = _meter(Meters(conn), meter_key)
            if Customers(conn).by_key(customer) is None:
                raise NotFound(f"no customer has the key {customer!r}")
            limits = Limits(conn)
            suspended = limits.suspension(customer) is not None
            override = limits.override(customer, meter_key)
            same_type = Meters(conn).active_for_types([meter.event_type])
        siblings = tuple(
            m
            for m in same_type.get(meter.event_type, [])
            if m.key != meter.key and m.aggregation in ADDITIVE
        )
        subscription, plan, changes_at = self._subscription(customer, now_us)
        armed = self._armed(key, meter, subscription, plan, override, suspended, now_us, siblings)
        armed.version = version
        armed.changes_at_us = min(changes_at, armed.changes_at_us)
        return armed

    def _subscription(
        self, customer: str, now_us: int
    ) -> tuple[Subscription | None, Plan | None, int]:
        """The subscription in force and its plan, and the first instant after `now_us` at
        which time alone changes them (a scheduled plan change or cancel, a later start)."""
        try:
            view = customer_subscription(self.db, self.clock, customer)
        except NoSubscription:
            return None, None, NEVER_US
        subscription = view.subscription
        instants = [subscription.start_us, subscription.cancel_at_us]
        instants += [segment.end_us for segment in view.segments]
        changes_at = next_instant_us(instants, now_us)
        if now_us < subscription.start_us:
            return None, None, changes_at  # subscribed from a later instant: not yet
        with self.db.read() as conn:
            plan = Plans(conn).version(subscription.plan_key, subscription.plan_version)
        return subscription, plan, changes_at

    def _armed(
        self,
        key: CounterKey,
        meter: Meter,
        subscription: Subscription | None,
        plan: Plan | None,
        override: Override | None,
        suspended: bool,
        now_us: int,
        siblings: tuple[Meter, ...],
    ) -> Armed:
        span = None if subscription is None else subscription.period_at(from_us(now_us))
        period = None if span is None else Period(to_us(span.start), to_us(span.end))
        terms = build_terms(
            key[0],
            key[1],
            plan=plan,
            period=None if period is None else (period.start_us, period.end_us),
            override=override,
            subscription_cap=None if subscription is None else subscription.max_overage_amount,
            suspended=suspended,
        )
        if not terms.subscribed:
            period = None
        fresh_until = now_us + self.refresh_us
        if period is not None:
            fresh_until = min(fresh_until, period.end_us)
        return Armed(
            terms=terms,
            meter=meter,
            key=key,
            period=period,
            throttle=_throttle(terms),
            rate=_rate(terms),
            load=self._loader(key, meter, span),
            fresh_until_us=fresh_until,
            open_until_ns=fresh_until * 1000,
            siblings=siblings,
            counts_events=meter.value_property is None,
            refused=_refused(terms, period),
            # the period's end (even for a meter the plan has no charge for: a plan change
            # scheduled there may add one)
            changes_at_us=NEVER_US if span is None else to_us(span.end),
        )

    def _loader(self, key: CounterKey, meter: Meter, span: Span | None) -> Callable[[], Decimal]:
        customer = key[0]

        def load() -> Decimal:
            """The usage of the period so far: rollups, less the raw events before the
            period's start in its first bucket, which `heads` keeps (see `UsageBatch`)."""
            if span is None:
                return ZERO
            read = (customer, meter, to_us(span.start), to_us(span.end))
            with self.db.read() as conn:
                partial = UsageBatch(conn).read([read], to_us(self.clock.now()), self.heads)[0]
            return partial.value(meter.aggregation) or ZERO

        return load


def _meter(meters: Meters, key: str) -> Meter:
    meter = meters.by_key(key)
    if meter is None or meter.archived:
        raise NotFound(f"no meter has the key {key!r}")
    if meter.aggregation not in ADDITIVE:
        kind = meter.aggregation.value
        detail = f"meter {key!r} is a {kind} meter; limits apply to count and sum meters"
        raise InvalidInput(detail, errors=(FieldError("/meter", detail, "not_limitable"),))
    return meter


def _refused(terms: Terms, period: Period | None) -> Reason | None:
    if terms.suspended:
        return Reason.SUSPENDED
    if period is None:
        return Reason.NO_SUBSCRIPTION
    return None


def _throttle(terms: Terms) -> Bucket | None:
    limit = terms.limit
    if limit is None or limit.throttle_rate is None or terms.soft_limit is None:
        return None
    rate = limit.throttle_rate
    # A bucket smaller than one unit would never admit a call of one unit.
    return Bucket("throttle", rate=rate, capacity=max(rate, ONE))


def _rate(terms: Terms) -> Bucket | None:
    rule = terms.rate_limit
    if rule is None:
        return None
    return Bucket("rate", rate=rule.per_second, capacity=rule.limit)
