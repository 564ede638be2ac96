"""Alert rules as values: parsing with field pointers, defaults, thresholds, projections."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fairmeter.domain.alert_crossings import (
    BUDGET_RULE,
    MIN_WINDOW_US,
    TRAILING_US,
    crossed,
    dedupe_key,
    effective_rules,
    project_spend,
    project_usage,
    recorded_until,
    targets,
    trailing_window,
)
from fairmeter.domain.alerts import (
    AlertRule,
    Base,
    Measure,
    RuleKind,
    RuleScope,
    parse_rule,
    parse_rule_changes,
)
from fairmeter.domain.errors import InvalidInput
from fairmeter.domain.windows import BUCKET_US

DAY = 24 * 3600 * 1_000_000


def rule(**body: object) -> AlertRule:
    return parse_rule({"customer": "acme", **body}, "alr_1", 7)


def pointers(body: dict[str, object]) -> list[str]:
    with pytest.raises(InvalidInput) as caught:
        parse_rule(body, "alr_1", 7)
    return [e.pointer for e in caught.value.errors]


def test_a_usage_threshold_defaults_to_50_80_100_percent_of_the_limit() -> None:
    found = rule(kind="usage_threshold", meter="api_calls")
    assert (found.scope, found.measure, found.base) == (
        RuleScope.CUSTOMER,
        Measure.PERCENT,
        Base.LIMIT,
    )
    assert found.thresholds == (Decimal(50), Decimal(80), Decimal(100))
    assert found.notification_kind == "alert.usage_threshold"


def test_spend_defaults_to_the_budget_and_forecast_to_100_percent() -> None:
    spend = rule(kind="spend_threshold")
    assert (spend.base, spend.thresholds, spend.notification_kind) == (
        Base.BUDGET,
        (Decimal(80), Decimal(100)),
        "alert.budget",
    )
    amounts = rule(kind="spend_threshold", measure="amount", thresholds=["1000", "500.00"])
    assert amounts.thresholds == (Decimal(500), Decimal(1000))
    assert amounts.notification_kind == "alert.spend_threshold"
    forecast = rule(kind="forecast", meter="api_calls", of="included")
    assert (forecast.base, forecast.thresholds) == (Base.INCLUDED, (Decimal(100),))


def test_a_plan_rule_names_the_plan_only() -> None:
    found = parse_rule({"plan": "pro", "kind": "forecast"}, "alr_2", 1)
    assert (found.scope, found.plan_key, found.customer_key) == (RuleScope.PLAN, "pro", None)


def test_every_fault_is_reported_at_its_field_at_once() -> None:
    assert pointers({"plan": "Pro!", "kind": "x", "enabled": 1}) == ["/plan", "/kind", "/enabled"]
    assert pointers(
        {"customer": "acme", "kind": "usage_threshold", "meter": "m", "thresholds": ["0", "2000"]}
    ) == ["/thresholds/0", "/thresholds/1"]


def test_changes_keep_what_they_do_not_name() -> None:
    before = rule(kind="usage_threshold", meter="api_calls", of="included", thresholds=["90"])
    after = parse_rule_changes(before, {"enabled": False}, 99)
    assert (after.base, after.thresholds, after.enabled, after.updated_us) == (
        Base.INCLUDED,
        (Decimal(90),),
        False,
        99,
    )
    switched = parse_rule_changes(before, {"measure": "quantity", "thresholds": ["5000"]}, 99)
    assert (switched.measure, switched.base, switched.thresholds) == (
        Measure.QUANTITY,
        None,
        (Decimal(5000),),
    )
    with pytest.raises(InvalidInput):
        parse_rule_changes(before, {"measure": "quantity"}, 99)  # quantities must be given


def test_limited_meters_get_default_rules_unless_a_usage_rule_names_them() -> None:
    own = rule(kind="usage_threshold", meter="tokens", enabled=False)
    found = effective_rules([own], "pro", "acme", ["api_calls", "tokens"], None)
    assert [(r.id, r.meter) for r in found] == [("default:api_calls", "api_calls")]


def test_a_budget_gets_80_and_100_percent_unless_a_budget_rule_exists() -> None:
    found = effective_rules([], "pro", "acme", [], Decimal(500))
    assert [(r.id, r.thresholds) for r in found] == [(BUDGET_RULE, (Decimal(80), Decimal(100)))]
    own = rule(kind="spend_threshold", thresholds=["50"])
    assert effective_rules([own], "pro", "acme", [], Decimal(500)) == [own]


def test_rules_of_other_customers_and_plans_do_not_apply() -> None:
    other = parse_rule({"customer": "globex", "kind": "forecast"}, "a", 1)
    other_plan = parse_rule({"plan": "basic", "kind": "forecast"}, "b", 1)
    mine = parse_rule({"plan": "pro", "kind": "forecast"}, "c", 1)
    assert effective_rules([other, other_plan, mine], "pro", "acme", [], None) == [mine]


def test_percentages_of_an_unknown_or_zero_base_have_no_targets() -> None:
    found = rule(kind="usage_threshold", meter="api_calls")
    assert targets(found, None) == () and targets(found, Decimal(0)) == ()
    assert [t.value for t in targets(found, Decimal(1000))] == [500, 800, 1000]


def test_a_threshold_is_reached_at_equality() -> None:
    found = targets(rule(kind="usage_threshold", meter="m", thresholds=["80"]), Decimal(10))
    assert crossed(found, Decimal("7.999")) == []
    assert [t.percent for t in crossed(found, Decimal(8))] == [Decimal(80)]


@given(st.integers(-(10**6), 10**6), st.integers(1, 10**6))
def test_crossed_is_monotone_in_usage(usage: int, more: int) -> None:
    found = targets(rule(kind="usage_threshold", meter="m"), Decimal(1000))
    before = crossed(found, Decimal(usage))
    assert set(before) <= set(crossed(found, Decimal(usage + more)))


def test_dedupe_keys_name_rule_customer_period_and_threshold() -> None:
    assert dedupe_key("alr_1", "acme", 123, Decimal("80.0")) == "alert:alr_1:acme:123:80"


def test_no_forecast_before_a_day_of_the_period_has_gone_by() -> None:
    assert trailing_window(0, MIN_WINDOW_US - 1) is None
    assert trailing_window(0, MIN_WINDOW_US + BUCKET_US - 1) == (0, MIN_WINDOW_US)
    assert trailing_window(0, 30 * DAY) == (30 * DAY - TRAILING_US, 30 * DAY)


def test_the_projection_carries_the_trailing_rate_to_the_period_end() -> None:
    projection = project_usage(Decimal(100), Decimal(100), (0, DAY), DAY, 30 * DAY)
    assert projection.projected == 3000
    (limit,) = targets(rule(kind="forecast", meter="m"), Decimal(2900))
    assert projection.crosses(limit)
    assert projection.crossing_us(limit) == DAY + 28 * DAY
    flat = project_usage(Decimal(100), Decimal(0), (0, DAY), DAY, 30 * DAY)
    assert flat.projected == 100 and not flat.crosses(limit)


def test_a_reached_target_is_no_forecast() -> None:
    projection = project_usage(Decimal(3000), Decimal(100), (0, DAY), DAY, 30 * DAY)
    (limit,) = targets(rule(kind="forecast", meter="m"), Decimal(2900))
    assert not projection.crosses(limit)


def test_spend_is_projected_on_a_straight_line_to_the_upcoming_projection() -> None:
    projection = project_spend(Decimal(100), Decimal(400), 10 * DAY, 40 * DAY)
    (budget,) = targets(rule(kind="forecast"), Decimal(250))
    assert projection.crosses(budget)
    assert projection.crossing_us(budget) == 25 * DAY


def test_a_rule_guards_its_invariants() -> None:
    with pytest.raises(ValueError):
        AlertRule(
            "x",
            RuleScope.PLAN,
            "acme",
            None,
            RuleKind.FORECAST,
            None,
            Measure.PERCENT,
            Base.BUDGET,
            (Decimal(1),),
        )
    with pytest.raises(ValueError):
        AlertRule(
            "x",
            RuleScope.CUSTOMER,
            "acme",
            None,
            RuleKind.USAGE_THRESHOLD,
            "m",
            Measure.AMOUNT,
            None,
            (Decimal(1),),
        )


def test_usage_is_read_up_to_a_bucket_past_what_can_have_been_recorded() -> None:
    now = 10 * DAY + 7
    end = recorded_until(now, 30 * DAY)
    assert end % BUCKET_US == 0 and end >= now + 5 * 60 * 1_000_000 + BUCKET_US
    assert recorded_until(now, now + 60) == now + 60  # a period ending sooner ends there
