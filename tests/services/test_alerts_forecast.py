"""Forecast alerts on synthetic usage with known trends, the clock driven day by day.

The projection: usage now plus the trailing week's run-rate (whole days here) carried to
the period's end (November: 30 days); no forecast before one day has elapsed. The plan's
limit is 2,900 tokens; the forecast rule is 100% of it."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest
from tests.services.alerts_world import AlertWorld

from fairmeter.services.runtime import Runtime

START = datetime(2026, 11, 1, tzinfo=UTC)


def run(runtime: Runtime, daily: Callable[[int], int]) -> tuple[int | None, str | None]:
    """Record `daily(d)` tokens on each day d of November (at noon), evaluating at the end
    of each day; the day the forecast fired and its message."""
    world = AlertWorld(runtime).meter("tokens", "sum")
    charge = {"meter": "tokens", "model": "per_unit", "unit_price": "0.001"}
    world.plan("pro", charges=[{**charge, "limit": "2900", "policy": "block"}])
    world.customer("acme")
    world.subscribe("acme", "pro", START)
    world.rule(customer="acme", kind="forecast", meter="tokens")
    for day in range(1, 31):
        world.at(START + timedelta(days=day))  # the end of day `day`
        amount = daily(day)
        if amount:
            world.use("acme", "tokens", START + timedelta(days=day - 1, hours=12), amount)
        told = world.told("alert.forecast")
        if told:
            assert len(told) == 1
            return day, told[0]["title"]
    return None, None


def test_linear_usage_on_course_to_pass_the_limit_fires_on_the_first_day(
    runtime: Runtime,
) -> None:
    # 100 a day: 100 + 100 x 29 = 3,000 >= 2,900; 2,800 to go at 100 a day: 28 days.
    day, message = run(runtime, lambda d: 100)
    assert day == 1
    assert message == "At this pace you will reach 2,900 tokens on 30 Nov 2026"


def test_linear_usage_from_mid_period_fires_when_the_week_shows_the_pace(
    runtime: Runtime,
) -> None:
    # 150 a day from day 10: day 15 projects 900 + 900/7 x 15 = 2,828 (no); day 16
    # 1,050 + 150 x 14 = 3,150 (yes), reaching 2,900 12.3 days after 17 Nov 00:00.
    day, message = run(runtime, lambda d: 150 if d >= 10 else 0)
    assert day == 16
    assert message is not None and message.endswith("on 29 Nov 2026")


def test_accelerating_usage_fires_on_the_day_the_projection_crosses(runtime: Runtime) -> None:
    # 10 x d on day d: from day 7 the projection is -5d^2 + 335d - 900: 2,810 on day 14,
    # 3,000 on day 15 (usage 1,200 at 120 a day: 2,900 is reached on 30 Nov).
    day, message = run(runtime, lambda d: 10 * d)
    assert day == 15
    assert message is not None and message.endswith("on 30 Nov 2026")


@pytest.mark.parametrize("per_day", [0, 50, 96])
def test_flat_usage_under_the_pace_never_fires(runtime: Runtime, per_day: int) -> None:
    # 96 a day ends the month at 2,880: under 2,900 every day of it.
    assert run(runtime, lambda d: per_day) == (None, None)
