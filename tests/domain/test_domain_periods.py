"""Billing periods are calendar months or years in the customer's zone and tile time."""

from __future__ import annotations

import itertools
from calendar import monthrange
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from enum import StrEnum
from fractions import Fraction
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fairmeter.domain.periods import (
    Anchor,
    BillingInterval,
    anchor_from,
    first_period,
    fraction_elapsed,
    fraction_of,
    next_period,
    nth_period,
    period_containing,
    period_index,
    period_start,
    periods_between,
)
from fairmeter.domain.windows import Span

MONTH, YEAR = BillingInterval.MONTH, BillingInterval.YEAR
ONE_US = timedelta(microseconds=1)
ZONES = [
    "UTC",
    "Europe/Madrid",
    "America/New_York",
    "Asia/Kolkata",
    "Asia/Tokyo",
    "Pacific/Kiritimati",  # +14
    "Pacific/Pago_Pago",  # -11
    "Australia/Lord_Howe",  # moves its clock by 30 minutes
    "America/Santiago",  # DST starts at midnight: some days have no 00:00
    "Asia/Kathmandu",  # +5:45
    "Pacific/Chatham",  # +12:45 / +13:45
]


def _local(moment: datetime, zone: str) -> datetime:
    return moment.astimezone(ZoneInfo(zone))


def _starts(anchor: Anchor, count: int, first: int = 0) -> list[datetime]:
    return [period_start(anchor, n) for n in range(first, first + count)]


def _local_dates(anchor: Anchor, count: int, first: int = 0) -> list[date]:
    return [_local(s, anchor.zone).date() for s in _starts(anchor, count, first)]


@pytest.mark.parametrize(("year", "february"), [(2025, 28), (2024, 29)])
def test_a_31st_anchor_clamps_to_short_months_and_returns_to_the_31st(
    year: int, february: int
) -> None:
    anchor = Anchor(datetime(year, 1, 31), "UTC", MONTH)
    assert _local_dates(anchor, 5) == [
        date(year, 1, 31),
        date(year, 2, february),
        date(year, 3, 31),
        date(year, 4, 30),
        date(year, 5, 31),
    ]


def test_periods_far_from_the_anchor_are_derived_from_it_not_from_clamped_ends() -> None:
    anchor = Anchor(datetime(2024, 1, 31, 9, 15), "Europe/Madrid", MONTH)
    assert _local_dates(anchor, 3, first=12) == [
        date(2025, 1, 31),
        date(2025, 2, 28),
        date(2025, 3, 31),
    ]
    earlier = [date(2023, 11, 30), date(2023, 12, 31), date(2024, 1, 31)]
    assert _local_dates(anchor, 3, first=-2) == earlier
    assert all(_local(s, anchor.zone).time() == time(9, 15) for s in _starts(anchor, 40, -20))


def test_a_february_29_yearly_anchor_falls_on_the_28th_in_common_years() -> None:
    anchor = Anchor(datetime(2024, 2, 29), "America/New_York", YEAR)
    assert _local_dates(anchor, 6) == [
        date(2024, 2, 29),
        date(2025, 2, 28),
        date(2026, 2, 28),
        date(2027, 2, 28),
        date(2028, 2, 29),
        date(2029, 2, 28),
    ]


def test_an_anchor_on_the_30th_clamps_only_in_february() -> None:
    anchor = Anchor(datetime(2025, 1, 30), "UTC", MONTH)
    days = [d.day for d in _local_dates(anchor, 12)]
    assert days == [30, 28] + [30] * 10


@pytest.mark.parametrize(
    "zone",
    [
        "Europe/Madrid",
        "America/New_York",
        "Asia/Kolkata",
        "Asia/Tokyo",
        "Pacific/Kiritimati",
        "Pacific/Pago_Pago",
    ],
)
def test_a_local_midnight_anchor_starts_every_period_at_local_midnight(zone: str) -> None:
    anchor = Anchor(datetime(2025, 1, 31), zone, MONTH)
    starts = _starts(anchor, 30, first=-6)
    for n, start in enumerate(starts, start=-6):
        local = _local(start, zone)
        assert local.time() == time(0)
        assert local.day == min(31, monthrange(local.year, local.month)[1])
        assert nth_period(anchor, n) == Span(start, period_start(anchor, n + 1))
    assert all(a < b for a, b in itertools.pairwise(starts))


def test_an_anchor_east_of_utc_starts_on_the_previous_utc_day_and_still_tiles() -> None:
    anchor = Anchor(datetime(2025, 1, 31), "Asia/Tokyo", MONTH)
    february, march = nth_period(anchor, 1), nth_period(anchor, 2)
    assert february.start == datetime(2025, 2, 28, tzinfo=ZoneInfo("Asia/Tokyo"))
    assert february.start.date() == date(2025, 2, 27)  # the UTC day before
    assert february.end == march.start
    # 00:30 on Mar 1 in Tokyo is still Feb 28 in UTC: it belongs to one period only.
    instant = datetime(2025, 2, 28, 15, 30, tzinfo=UTC)
    assert period_containing(anchor, instant) == february
    assert period_containing(anchor, february.end) == march
    assert period_containing(anchor, february.end - ONE_US) == february


def test_a_wall_time_the_clock_skips_starts_the_period_when_the_clock_resumes() -> None:
    anchor = Anchor(datetime(2026, 1, 29, 2, 30), "Europe/Madrid", MONTH)
    march = period_start(anchor, 2)  # 2026-03-29: the clock jumps 02:00 -> 03:00
    assert _local(march, "Europe/Madrid").replace(tzinfo=None) == datetime(2026, 3, 29, 3)
    assert _local(march - ONE_US, "Europe/Madrid").time() < time(2)
    assert _local(period_start(anchor, 3), "Europe/Madrid").time() == time(2, 30)


@pytest.mark.parametrize(
    ("zone", "wall", "resumes"),
    [
        ("America/Santiago", datetime(2026, 9, 6, 0, 0), time(1)),  # 00:00 -> 01:00
        ("Australia/Lord_Howe", datetime(2026, 10, 4, 2, 10), time(2, 30)),  # 02:00 -> 02:30
    ],
)
def test_a_skipped_midnight_or_half_hour_starts_the_period_when_the_clock_resumes(
    zone: str, wall: datetime, resumes: time
) -> None:
    anchor = Anchor(wall.replace(month=1), zone, MONTH)
    start = period_start(anchor, wall.month - 1)
    assert _local(start, zone).replace(tzinfo=None) == datetime.combine(wall.date(), resumes)
    assert period_start(anchor, wall.month - 2) < start < period_start(anchor, wall.month)


def test_a_repeated_wall_time_starts_the_period_at_its_first_occurrence() -> None:
    zone = "America/New_York"
    anchor = Anchor(datetime(2026, 10, 1, 1, 30), zone, MONTH)
    november = period_start(anchor, 1)  # 2026-11-01 01:30 happens twice
    assert _local(november, zone).time() == time(1, 30)
    assert _local(november, zone).utcoffset() == timedelta(hours=-4)
    # A fold=1 time never compares equal across zones (PEP 495): compare in UTC.
    second = datetime(2026, 11, 1, 1, 30, tzinfo=ZoneInfo(zone), fold=1).astimezone(UTC)
    assert november + timedelta(hours=1) == second


@pytest.mark.parametrize("zone", ["Europe/Madrid", "Asia/Tokyo", "America/Santiago"])
@pytest.mark.parametrize("day", [1, 15, 28, 29, 30, 31])
def test_monthly_periods_last_28_to_31_local_days(zone: str, day: int) -> None:
    anchor = Anchor(datetime(2024, 1, day, 0, 30), zone, MONTH)
    dates = _local_dates(anchor, 61)
    assert {(b - a).days for a, b in itertools.pairwise(dates)} <= {28, 29, 30, 31}


def test_anchor_from_reads_the_billing_anchor_as_wall_time_in_the_zone() -> None:
    start_at = datetime(2025, 3, 10, 8, tzinfo=UTC)
    billing = datetime(2025, 3, 31, 15, tzinfo=UTC)  # Apr 1 00:00 in Tokyo
    assert anchor_from(start_at, "Asia/Tokyo", MONTH, billing).local == datetime(2025, 4, 1)
    assert anchor_from(start_at, "Asia/Tokyo", YEAR).local == datetime(2025, 3, 10, 17)


class OtherInterval(StrEnum):  # shaped like fairmeter.domain.plans.Interval
    MONTH = "month"
    YEAR = "year"


@pytest.mark.parametrize("interval", ["month", OtherInterval.MONTH, MONTH])
def test_any_interval_valued_month_steps_by_months(interval: str) -> None:
    anchor = anchor_from(datetime(2025, 1, 31, tzinfo=UTC), "UTC", interval)
    assert period_start(anchor, 1) == datetime(2025, 2, 28, tzinfo=UTC)


def test_an_anchor_refuses_aware_wall_time_unknown_zones_and_intervals() -> None:
    with pytest.raises(ValueError):
        Anchor(datetime(2025, 1, 1, tzinfo=UTC), "UTC", MONTH)
    for zone in ["Mars/Olympus", "America", "../etc", ""]:
        with pytest.raises(ValueError):
            Anchor(datetime(2025, 1, 1), zone, MONTH)
    with pytest.raises(ValueError):
        Anchor(datetime(2025, 1, 1), "UTC", "week")
    with pytest.raises(ValueError):
        anchor_from(datetime(2025, 1, 1), "UTC", MONTH)


def test_without_a_billing_anchor_the_first_period_is_whole() -> None:
    start_at = datetime(2025, 1, 31, 22, 5, 7, 123, tzinfo=UTC)
    anchor = anchor_from(start_at, "Europe/Madrid", MONTH)
    assert first_period(anchor, start_at) == nth_period(anchor, 0)
    assert nth_period(anchor, 0).start == start_at


@pytest.mark.parametrize("billing_day", [1, 20])  # before and after the start
def test_a_billing_anchor_makes_the_first_period_partial_up_to_the_next_boundary(
    billing_day: int,
) -> None:
    zone = ZoneInfo("America/New_York")
    start_at = datetime(2025, 1, 10, 12, tzinfo=zone)
    anchor = anchor_from(
        start_at, "America/New_York", MONTH, datetime(2025, 1, billing_day, tzinfo=zone)
    )
    first = first_period(anchor, start_at)
    assert first.start == start_at
    assert first.end == datetime(2025, 1 + (billing_day == 1), billing_day, tzinfo=zone)
    following = next_period(anchor, first)
    assert following == period_containing(anchor, first.end)
    assert following.start == first.end
    whole = period_containing(anchor, start_at)
    assert whole.start < first.start and whole.end == first.end
    share = Fraction(first.end_us - first.start_us, whole.end_us - whole.start_us)
    assert _close(fraction_of(whole, first), share)


def test_next_period_refuses_a_span_that_ends_inside_a_period() -> None:
    anchor = Anchor(datetime(2025, 1, 1), "UTC", MONTH)
    period = nth_period(anchor, 0)
    with pytest.raises(ValueError):
        next_period(anchor, Span(period.start, period.end - ONE_US))
    assert next_period(anchor, period) == nth_period(anchor, 1)


def test_a_boundary_instant_belongs_to_the_period_it_starts() -> None:
    anchor = Anchor(datetime(2025, 1, 31, 6), "Asia/Kolkata", MONTH)
    boundary = period_start(anchor, 1)
    assert period_index(anchor, boundary) == 1
    assert period_index(anchor, boundary - ONE_US) == 0


def test_periods_between_lists_overlapping_periods_and_clipped_ones_tile_the_range() -> None:
    anchor = Anchor(datetime(2024, 1, 31), "Asia/Tokyo", MONTH)
    start = datetime(2024, 2, 10, tzinfo=UTC)
    end = datetime(2024, 5, 2, tzinfo=UTC)
    whole = periods_between(anchor, start, end)
    assert whole == [nth_period(anchor, n) for n in range(0, 4)]
    clipped = periods_between(anchor, start, end, clip=True)
    assert clipped[0].start == start and clipped[-1].end == end
    assert all(a.end == b.start for a, b in itertools.pairwise(clipped))
    assert [c.end for c in clipped[:-1]] == [w.end for w in whole[:-1]]
    assert periods_between(anchor, end, start) == []
    assert periods_between(anchor, start, start + ONE_US) == [whole[0]]


def _close(share: Decimal, exact: Fraction) -> bool:
    """Equal to 30 decimal places: a fraction like 1/3 has no exact Decimal."""
    return abs(Fraction(share) - exact) < Fraction(1, 10**30)


def test_fraction_elapsed_is_exact_and_clamped_to_the_period() -> None:
    february = Span(datetime(2025, 2, 1, tzinfo=UTC), datetime(2025, 3, 1, tzinfo=UTC))
    assert fraction_elapsed(february, datetime(2025, 2, 8, tzinfo=UTC)) == Decimal("0.25")
    assert fraction_elapsed(february, february.start) == 0
    assert fraction_elapsed(february, february.start - ONE_US) == 0
    assert fraction_elapsed(february, february.end) == 1
    assert fraction_elapsed(february, february.end + timedelta(days=400)) == 1
    third = fraction_elapsed(february, february.start + (february.end - february.start) / 3)
    assert _close(third, Fraction(1, 3))


def test_fraction_of_counts_only_the_overlap() -> None:
    day = Span(datetime(2025, 2, 1, tzinfo=UTC), datetime(2025, 2, 2, tzinfo=UTC))
    evening = Span(datetime(2025, 2, 1, 18, tzinfo=UTC), datetime(2025, 2, 3, tzinfo=UTC))
    assert fraction_of(day, evening) == Decimal("0.25")
    assert fraction_of(day, day) == 1
    assert fraction_of(day, Span(day.end, day.end + ONE_US)) == 0


LOW, HIGH = datetime(2024, 1, 1), datetime(2100, 12, 31, 23, 59, 59)


@st.composite
def anchors(draw: st.DrawFn) -> Anchor:
    year = draw(st.integers(LOW.year, HIGH.year))
    month = draw(st.integers(1, 12))
    # Days 29-31 are drawn as often as any other, then clamped: month ends come up often.
    day = min(draw(st.integers(1, 31)), monthrange(year, month)[1])
    wall = datetime.combine(date(year, month, day), draw(st.times()))
    return Anchor(wall, draw(st.sampled_from(ZONES)), draw(st.sampled_from([MONTH, YEAR])))


def _steps(anchor: Anchor) -> st.SearchStrategy[int]:
    # Keep periods within about 2024-2100 whatever the anchor's year.
    per_year = 12 if anchor.interval == MONTH else 1
    return st.integers(
        (LOW.year - anchor.local.year) * per_year, (HIGH.year - anchor.local.year) * per_year
    )


@settings(max_examples=300, deadline=None)
@given(st.data())
def test_consecutive_periods_tile_for_any_anchor_and_zone(data: st.DataObject) -> None:
    anchor = data.draw(anchors())
    n = data.draw(_steps(anchor))
    starts = _starts(anchor, 4, first=n)
    assert all(a < b for a, b in itertools.pairwise(starts))
    for k, start in enumerate(starts[:-1], start=n):
        period = nth_period(anchor, k)
        assert period.start == start and period.end == starts[k - n + 1]
        assert period_index(anchor, start) == k
        assert period_index(anchor, period.end - ONE_US) == k


def _occurrences(wall: datetime, zone: ZoneInfo) -> list[datetime]:
    """Every instant whose wall time in `zone` is `wall`."""
    instants = [wall.replace(tzinfo=zone, fold=f).astimezone(UTC) for f in (0, 1)]
    return sorted({i for i in instants if i.astimezone(zone).replace(tzinfo=None) == wall})


@settings(max_examples=300, deadline=None)
@given(st.data())
def test_each_period_starts_at_the_clamped_anchor_wall_time(data: st.DataObject) -> None:
    anchor = data.draw(anchors())
    n = data.draw(_steps(anchor))
    start = period_start(anchor, n)
    per_step = 1 if anchor.interval == MONTH else 12
    year, month = divmod(anchor.local.year * 12 + anchor.local.month - 1 + n * per_step, 12)
    day = min(anchor.local.day, monthrange(year, month + 1)[1])
    wall = anchor.local.replace(year=year, month=month + 1, day=day)
    occurrences = _occurrences(wall, anchor.tz)
    if occurrences:
        assert start == occurrences[0]
    else:  # the clock skipped `wall`: the period starts the instant it resumes
        assert start.astimezone(anchor.tz).replace(tzinfo=None) > wall
        assert (start - ONE_US).astimezone(anchor.tz).replace(tzinfo=None) < wall
    if anchor.interval == MONTH:
        following = period_start(anchor, n + 1).astimezone(anchor.tz).date()
        assert 28 <= (following - start.astimezone(anchor.tz).date()).days <= 31


@settings(max_examples=300, deadline=None)
@given(
    anchors(),
    st.datetimes(LOW, HIGH, timezones=st.just(UTC)),
)
def test_the_period_index_of_an_instant_names_the_period_holding_it(
    anchor: Anchor, instant: datetime
) -> None:
    n = period_index(anchor, instant)
    assert period_start(anchor, n) <= instant < period_start(anchor, n + 1)
    assert period_containing(anchor, instant) == nth_period(anchor, n)


@settings(max_examples=200, deadline=None)
@given(
    anchors(),
    st.datetimes(LOW, HIGH, timezones=st.just(UTC)),
    st.integers(1, 400),
)
def test_a_partial_first_period_is_followed_by_whole_periods_without_gap(
    anchor: Anchor, start_at: datetime, days: int
) -> None:
    first = first_period(anchor, start_at)
    assert first.start == start_at
    assert first.end == period_containing(anchor, start_at).end
    spans = [first]
    for _ in range(3):
        spans.append(next_period(anchor, spans[-1]))
    assert all(a.end == b.start for a, b in itertools.pairwise(spans))
    end = start_at + timedelta(days=days)
    clipped = periods_between(anchor, start_at, end, clip=True)
    assert clipped[0].start == start_at and clipped[-1].end == end
    assert all(a.end == b.start for a, b in itertools.pairwise(clipped))
    shares = sum((Fraction(fraction_of(Span(start_at, end), c)) for c in clipped), Fraction(0))
    assert abs(shares - 1) < Fraction(len(clipped), 10**30)


def _clock_changes(zone: ZoneInfo, year: int) -> list[tuple[datetime, timedelta]]:
    """The instants in `year` the zone's offset changes, each with the offset before it."""
    changes = []
    hour = datetime(year, 1, 1, tzinfo=UTC)
    while hour.year == year:
        old = hour.astimezone(zone).utcoffset()
        assert old is not None
        if (hour + timedelta(hours=1)).astimezone(zone).utcoffset() != old:
            minute = hour
            while minute.astimezone(zone).utcoffset() == old:
                minute += timedelta(minutes=1)
            changes.append((minute, old))
        hour += timedelta(hours=1)
    return changes


DST_ZONES = [
    "Europe/Madrid",
    "America/New_York",
    "Australia/Lord_Howe",
    "America/Santiago",
    "Pacific/Chatham",
]


@settings(max_examples=100, deadline=None)
@given(st.sampled_from(DST_ZONES), st.integers(2024, 2099), st.data())
def test_anchors_near_a_clock_change_still_tile(zone: str, year: int, data: st.DataObject) -> None:
    tz = ZoneInfo(zone)
    changes = _clock_changes(tz, year)
    if not changes:  # a zone without daylight saving that year
        return
    change, old = data.draw(st.sampled_from(changes))
    # The wall clock reads `change + old` as it changes: skipped or repeated times lie
    # within an hour after (clock set forward) or before (set back) it.
    minutes = data.draw(st.integers(-75, 75))
    wall = (change + old).replace(tzinfo=None) + timedelta(minutes=minutes)
    anchor = Anchor(wall, zone, data.draw(st.sampled_from([MONTH, YEAR])))
    start = period_start(anchor, 0)
    occurrences = _occurrences(wall, tz)
    assert start == (occurrences[0] if occurrences else start)
    if not occurrences:
        assert start.astimezone(tz).replace(tzinfo=None) > wall
        assert (start - ONE_US).astimezone(tz).replace(tzinfo=None) < wall
    starts = _starts(anchor, 3, first=-1)
    assert starts[0] < starts[1] < starts[2]
    assert nth_period(anchor, 0) == Span(starts[1], starts[2])
    assert period_index(anchor, start) == 0
