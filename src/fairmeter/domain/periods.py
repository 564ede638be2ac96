"""Billing periods: calendar months or years in the customer's time zone, from one anchor.

Period n starts at the anchor's local wall time moved n months (or years) on the calendar,
its day clamped to the month's length (31 -> 28/29/30), then read as an instant in the zone.
Every start is derived from the anchor and n alone, never from the previous period's clamped
end, so a Jan 31 anchor gives Jan 31 -> Feb 28/29 -> Mar 31; and period n ends exactly where
period n + 1 starts, so periods tile: no gap, no overlap, one invoice per period.
"""

from __future__ import annotations

from calendar import monthrange
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import ROUND_HALF_EVEN, Context, Decimal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from fairmeter.domain.plans import Interval
from fairmeter.domain.windows import Span, from_us, to_us

# A period lasts at most ~3.2e13 microseconds (a year), so 34 significant digits carry any
# fraction of one far beyond the 12 decimal places a price keeps.
_FRACTION = Context(prec=34, rounding=ROUND_HALF_EVEN)
_MONTHS_PER_STEP = {"month": 1, "year": 12}


# One month/year enum for plans and periods.
BillingInterval = Interval


@dataclass(frozen=True)
class Anchor:
    """The local wall-clock moment periods start at, in an IANA zone, every month or year.

    `local` is naive wall time (day-of-month and time of day are what repeat). `interval` is
    any str (or StrEnum, such as BillingInterval or plans.Interval) valued "month" or "year".
    """

    local: datetime
    zone: str
    interval: str

    def __post_init__(self) -> None:
        if self.local.tzinfo is not None:
            raise ValueError("an anchor's local time is naive wall time in its zone")
        if self.interval not in _MONTHS_PER_STEP:
            raise ValueError(f"billing interval must be 'month' or 'year', not {self.interval!r}")
        _zone(self.zone)

    @property
    def tz(self) -> ZoneInfo:
        return _zone(self.zone)


def _zone(key: str) -> ZoneInfo:
    try:
        return ZoneInfo(key)
    # A directory name ("America") raises IsADirectoryError, a path ValueError.
    except (ZoneInfoNotFoundError, ValueError, OSError):
        raise ValueError(f"{key!r} is not an IANA time zone") from None


def _aware(moment: datetime, name: str) -> None:
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(f"{name} must be timezone-aware")


def anchor_from(
    start_at: datetime, zone: str, interval: str, billing_anchor: datetime | None = None
) -> Anchor:
    """The anchor of a subscription: `billing_anchor` if given, else `start_at`, as wall time
    in `zone`. The first period is partial when they differ (see `first_period`)."""
    _aware(start_at, "start_at")
    source = start_at if billing_anchor is None else billing_anchor
    _aware(source, "billing_anchor")
    wall = source.astimezone(_zone(zone)).replace(tzinfo=None, fold=0)
    return Anchor(local=wall, zone=zone, interval=interval)


def period_start(anchor: Anchor, n: int) -> datetime:
    """The UTC instant period n starts (n may be negative; period 0 starts at the anchor)."""
    months = anchor.local.month - 1 + n * _MONTHS_PER_STEP[anchor.interval]
    year, month = anchor.local.year + months // 12, months % 12 + 1
    day = min(anchor.local.day, monthrange(year, month)[1])
    return _instant(anchor.local.replace(year=year, month=month, day=day), anchor.tz)


def _instant(wall: datetime, zone: ZoneInfo) -> datetime:
    """The instant a wall time names: the first of two when the clock is set back, and the
    instant the clock resumes when it jumps over `wall` (02:30 in a 02:00 -> 03:00 gap is
    03:00), so a later wall time never maps to an earlier instant."""
    earlier = wall.replace(tzinfo=zone, fold=0).astimezone(UTC)
    if earlier.astimezone(zone).replace(tzinfo=None) == wall:
        return earlier
    # In a gap, fold=1 reads `wall` with the offset after the jump (an instant before it)
    # and fold=0 with the offset before it (an instant after it): the jump lies between.
    before = wall.replace(tzinfo=zone, fold=1).astimezone(UTC)
    return _offset_change(before, earlier, zone)


def _offset_change(before: datetime, after: datetime, zone: ZoneInfo) -> datetime:
    """The first instant in (before, after] whose UTC offset differs from `before`'s."""
    old = before.astimezone(zone).utcoffset()
    low, high = to_us(before), to_us(after)
    while high - low > 1:
        middle = (low + high) // 2
        if from_us(middle).astimezone(zone).utcoffset() == old:
            low = middle
        else:
            high = middle
    return from_us(high)


def period_index(anchor: Anchor, instant: datetime) -> int:
    """The n with period_start(n) <= instant < period_start(n + 1)."""
    _aware(instant, "instant")
    local = instant.astimezone(anchor.tz)
    months = (local.year - anchor.local.year) * 12 + local.month - anchor.local.month
    n = months // _MONTHS_PER_STEP[anchor.interval]
    # The calendar estimate is off by at most one period near a boundary; step until exact.
    while period_start(anchor, n) > instant:
        n -= 1
    while period_start(anchor, n + 1) <= instant:
        n += 1
    return n


def nth_period(anchor: Anchor, n: int) -> Span:
    """Period n as [start, end): its end is exactly where period n + 1 starts."""
    return Span(period_start(anchor, n), period_start(anchor, n + 1))


def period_containing(anchor: Anchor, instant: datetime) -> Span:
    return nth_period(anchor, period_index(anchor, instant))


def periods_between(
    anchor: Anchor, start: datetime, end: datetime, *, clip: bool = False
) -> list[Span]:
    """The periods overlapping [start, end), in order; with `clip`, cut to [start, end) so
    they tile it. An empty range (end <= start) overlaps none."""
    _aware(start, "start")
    _aware(end, "end")
    if end <= start:
        return []
    periods: list[Span] = []
    n = period_index(anchor, start)
    while (begin := period_start(anchor, n)) < end:
        finish = period_start(anchor, n + 1)
        periods.append(Span(max(begin, start), min(finish, end)) if clip else Span(begin, finish))
        n += 1
    return periods


def next_period(anchor: Anchor, span: Span) -> Span:
    """The period that starts where `span` ends; `span` must end on a period boundary (a
    period, or a partial first period), else no period follows it without a gap or overlap."""
    n = period_index(anchor, span.end)
    if period_start(anchor, n) != span.end:
        raise ValueError("the span does not end on a period boundary")
    return nth_period(anchor, n)


def first_period(anchor: Anchor, start_at: datetime) -> Span:
    """A subscription's first period: [start_at, next boundary). It is a whole period when
    start_at is the anchor (no billing_anchor), and partial when start_at falls inside a
    period: a billing_anchor other than start_at, or a start_at whose wall time repeats
    (the anchor takes the first occurrence). Later periods follow with `next_period`."""
    return Span(start_at, period_start(anchor, period_index(anchor, start_at) + 1))


def fraction_elapsed(span: Span, instant: datetime) -> Decimal:
    """How much of `span` lies before `instant`, in [0, 1], from whole microseconds."""
    _aware(instant, "instant")
    elapsed = min(max(to_us(instant), span.start_us), span.end_us) - span.start_us
    return _ratio(elapsed, span.end_us - span.start_us)


def fraction_of(span: Span, part: Span) -> Decimal:
    """How much of `span` `part` covers (only their overlap counts), in [0, 1]: the share of
    a period's base fee a partial period owes."""
    overlap = min(span.end_us, part.end_us) - max(span.start_us, part.start_us)
    return _ratio(max(overlap, 0), span.end_us - span.start_us)


def _ratio(numerator: int, denominator: int) -> Decimal:
    # Exact whenever the quotient has a finite decimal expansion (7 days of 28 -> 0.25);
    # otherwise rounded at the 34th significant digit.
    return _FRACTION.divide(Decimal(numerator), Decimal(denominator))
