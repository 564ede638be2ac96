"""Half-open time windows that tile a range in a time zone, and rollup buckets."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from enum import StrEnum
from itertools import pairwise
from typing import overload
from zoneinfo import ZoneInfo

from fairmeter.domain.errors import FieldError, InvalidInput

# Rollups are kept per 15 minutes: every UTC offset in use today is a multiple of
# 15 minutes, so hour, day and month windows in any current time zone are unions
# of whole buckets. A boundary that is not (historical offsets) is computed from raw events.
BUCKET_US = 15 * 60 * 1_000_000
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)


class Window(StrEnum):
    HOUR = "hour"
    DAY = "day"
    MONTH = "month"
    NONE = "none"


@dataclass(frozen=True)
class Span:
    """A half-open interval [start, end) of aware UTC instants."""

    start: datetime
    end: datetime

    def __post_init__(self) -> None:
        if self.start.tzinfo is None or self.end.tzinfo is None:
            raise ValueError("span bounds must be timezone-aware")
        if not self.start < self.end:
            raise ValueError("a span's start must be before its end")

    @property
    def start_us(self) -> int:
        return to_us(self.start)

    @property
    def end_us(self) -> int:
        return to_us(self.end)


NEVER_US = 2**62  # µs: an instant that never comes (nothing scheduled)


def next_instant_us(instants: Iterable[int | None], after_us: int) -> int:
    """The first of `instants` (None: none) after `after_us`, or `NEVER_US`."""
    return min((t for t in instants if t is not None and t > after_us), default=NEVER_US)


def to_us(moment: datetime) -> int:
    # One exact integer division of timedeltas, done in C (ingest calls this per event).
    return (moment - _EPOCH) // _MICROSECOND


def from_us(micros: int) -> datetime:
    return _EPOCH + timedelta(microseconds=micros)


@overload
def format_instant(micros: int) -> str: ...
@overload
def format_instant(micros: None) -> None: ...
@overload
def format_instant(micros: int | None) -> str | None: ...
def format_instant(micros: int | None) -> str | None:
    """µs since the epoch as RFC 3339 in UTC with a `Z` (None stays None): how every
    instant leaves the API, webhooks and notifications."""
    if micros is None:
        return None
    return from_us(micros).isoformat().replace("+00:00", "Z")


def bucket_of(micros: int) -> int:
    return micros - micros % BUCKET_US


def tile(span: Span, window: Window, zone: ZoneInfo) -> list[Span]:
    """Windows aligned to calendar boundaries in `zone`, clipped to `span`; they tile it."""
    if window is Window.NONE:
        return [span]
    bounds = [span.start]
    for boundary in _boundaries(span, window, zone):
        if span.start < boundary < span.end:
            bounds.append(boundary)
    bounds.append(span.end)
    return [Span(a, b) for a, b in pairwise(bounds)]


def _boundaries(span: Span, window: Window, zone: ZoneInfo) -> Iterator[datetime]:
    if window is Window.HOUR:
        yield from _hour_boundaries(span, zone)
        return
    local = span.start.astimezone(zone)
    day = local.date().replace(day=1) if window is Window.MONTH else local.date()
    while True:
        # Midnight local time; fold=0 picks the first instant when midnight repeats.
        moment = datetime(day.year, day.month, day.day, tzinfo=zone).astimezone(UTC)
        if moment >= span.end:
            return
        yield moment
        day = _next_month(day) if window is Window.MONTH else day + timedelta(days=1)


def _hour_boundaries(span: Span, zone: ZoneInfo) -> Iterator[datetime]:
    # Walk UTC quarter-hours and keep those that are whole hours on the local clock, and
    # the instants the offset changes (Lord Howe moves its clock by 30 minutes): correct
    # across DST changes and for zones offset by 30 or 45 minutes.
    # From a whole local hour whose offset is still the same an hour later, the walk jumps
    # that hour: no zone changes its offset twice within one hour, so none of the three
    # quarter-hours in between is a boundary (a month of hours: 4x fewer conversions).
    step, hour = timedelta(minutes=15), timedelta(hours=1)
    moment = from_us(bucket_of(span.start_us))
    previous = (moment - step).astimezone(zone).utcoffset()
    local = moment.astimezone(zone)
    while moment < span.end:
        offset = local.utcoffset()
        if local.minute == 0 or offset != previous:
            yield moment
        previous = offset
        if local.minute == 0:
            ahead = (moment + hour).astimezone(zone)
            if ahead.utcoffset() == offset:
                moment, local = moment + hour, ahead
                continue
        moment += step
        local = moment.astimezone(zone)


def _next_month(day: date) -> date:
    return date(day.year + day.month // 12, day.month % 12 + 1, 1)


# How long each window can be: two hours (a clock set back), a day that gains an hour, a
# 31-day month plus an hour. Dividing a span by them bounds its window count from below,
# so a range can be refused before tiling it without refusing any that would fit.
_LONGEST = {
    Window.HOUR: timedelta(hours=2),
    Window.DAY: timedelta(hours=25),
    Window.MONTH: timedelta(days=31, hours=1),
}


def estimate_windows(span: Span, window: Window) -> int:
    """At least how many windows `tile` gives: cheap enough to refuse a range of millions of
    windows before building any."""
    longest = _LONGEST.get(window)
    if longest is None:
        return 1
    return (span.end - span.start) // longest


# Instants users may name: calendar arithmetic near year 1 or 9999 overflows, and no usage
# or billing lives outside these years.
EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)
LATEST = datetime(3000, 1, 1, tzinfo=UTC)


def parse_instant(raw: object, pointer: str) -> datetime:
    """An RFC 3339 timestamp with an offset, between 1970 and 2999, as aware UTC.

    The one parser for instants named in requests (API bodies, query strings, CLI options);
    raises InvalidInput naming `pointer`."""
    try:
        moment = datetime.fromisoformat(raw.strip()) if isinstance(raw, str) else None
    except ValueError:
        moment = None
    if moment is None or moment.tzinfo is None:
        raise InvalidInput(
            f"{raw!r} is not an RFC 3339 timestamp with an offset",
            errors=(
                FieldError(pointer, "must be an RFC 3339 timestamp like 2026-11-01T00:00:00Z"),
            ),
        )
    moment = moment.astimezone(UTC)
    if not EARLIEST <= moment < LATEST:
        raise InvalidInput(
            f"{raw!r} is outside the supported range",
            errors=(FieldError(pointer, "must be between 1970 and 2999"),),
        )
    return moment
