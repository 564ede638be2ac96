"""Usage and spend thresholds fire once per period, rule, customer and threshold, as usage
is recorded: defaults on limited meters, plan and customer rules, budgets."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from tests.services.alerts_world import AlertWorld

from fairmeter.domain.customers import parse_customer_changes
from fairmeter.domain.limits import Override
from fairmeter.services import catalog
from fairmeter.services.runtime import Runtime
from fairmeter.storage.limits import Limits

START = datetime(2026, 11, 1, tzinfo=UTC)
DAY = datetime(2026, 11, 15, 9, 0, tzinfo=UTC)


def limited(rt: Runtime, limit: str = "1000", price: str = "0.01") -> AlertWorld:
    world = AlertWorld(rt).meter("calls", "sum")
    charge = {"meter": "calls", "model": "per_unit", "unit_price": price}
    world.plan("pro", charges=[{**charge, "limit": limit, "policy": "block"}])
    world.customer("acme")
    world.subscribe("acme", "pro", START)
    return world


def percents(rows: list[dict[str, Any]]) -> list[str]:
    """The percentages told, smallest first (one pass may tell several at the same time)."""
    return sorted((str(r["details"]["percent"]) for r in rows), key=Decimal)


def test_limited_meters_alert_at_50_80_100_percent_without_any_rule(runtime: Runtime) -> None:
    world = limited(runtime)
    world.use("acme", "calls", DAY, 499)
    assert world.told() == []
    world.use("acme", "calls", DAY, 1)
    assert percents(world.told()) == ["50"]
    world.use("acme", "calls", DAY, 300)
    assert percents(world.told()) == ["50", "80"]
    world.use("acme", "calls", DAY, 200)
    world.use("acme", "calls", DAY, 5)
    told = world.told()
    assert percents(told) == ["50", "80", "100"]
    assert {r["kind"] for r in told} == {"alert.usage_threshold"}
    assert {r["rule_id"] for r in told} == {"default:calls"}
    last = max(told, key=lambda r: Decimal(r["details"]["percent"]))
    assert last["details"]["limit"] == "1000"
    assert "100% of its calls limit" in last["title"]


def test_one_batch_crossing_several_thresholds_tells_each_once(runtime: Runtime) -> None:
    world = limited(runtime)
    world.use("acme", "calls", DAY, 5000)
    world.use("acme", "calls", DAY, 1)
    assert percents(world.told()) == ["50", "80", "100"]


def test_teetering_around_a_threshold_fires_it_once(runtime: Runtime) -> None:
    world = limited(runtime)
    world.use("acme", "calls", DAY, 790)
    for _ in range(5):
        world.use("acme", "calls", DAY, 20)  # 810: above 80%
        world.drain()
        world.use("acme", "calls", DAY, -20)  # 790: below again
        world.drain()
        assert runtime.alerts is not None
        runtime.alerts.told.keys.clear()  # as if another process evaluated: the store dedupes
    assert percents(world.told()) == ["50", "80"]


def test_out_of_order_events_fire_each_threshold_once(runtime: Runtime) -> None:
    world = limited(runtime)
    moments = [START + timedelta(hours=h) for h in range(1, 300)]
    random.Random(5).shuffle(moments)
    for start in range(0, len(moments), 37):
        world.use_many([("acme", "calls", m, 4) for m in moments[start : start + 37]])
    assert percents(world.told()) == ["50", "80", "100"]


def test_a_new_period_fires_again(runtime: Runtime) -> None:
    world = limited(runtime)
    world.use("acme", "calls", DAY, 600)
    world.drain()
    world.at(datetime(2026, 12, 2, tzinfo=UTC))
    world.use("acme", "calls", datetime(2026, 12, 1, 1, tzinfo=UTC), 600)
    told = world.told()
    assert percents(told) == ["50", "50"]
    assert told[0]["period_start_us"] != told[1]["period_start_us"]


def test_plan_rules_apply_to_every_subscriber(runtime: Runtime) -> None:
    world = AlertWorld(runtime).meter("calls", "sum")
    world.plan("open", charges=[{"meter": "calls", "model": "per_unit", "unit_price": "0"}])
    for key in ("acme", "globex", "initech"):
        world.customer(key)
        world.subscribe(key, "open", START)
    world.rule(
        plan="open", kind="usage_threshold", meter="calls", measure="quantity", thresholds=["100"]
    )
    for key in ("acme", "globex"):
        world.use(key, "calls", DAY, 150)
    world.use("initech", "calls", DAY, 50)
    assert sorted(r["customer_key"] for r in world.told()) == ["acme", "globex"]


def test_a_percentage_of_a_meter_without_limit_never_fires(runtime: Runtime) -> None:
    world = AlertWorld(runtime).meter("calls", "sum")
    world.plan("open", charges=[{"meter": "calls", "model": "per_unit", "unit_price": "0"}])
    world.customer("acme")
    world.subscribe("acme", "open", START)
    world.rule(customer="acme", kind="usage_threshold", meter="calls", thresholds=["10"])
    world.use("acme", "calls", DAY, 10**9)
    assert world.told() == []


def test_percent_of_the_allowance_when_asked(runtime: Runtime) -> None:
    world = AlertWorld(runtime).meter("calls", "sum")
    charge = {"meter": "calls", "model": "per_unit", "unit_price": "1", "included": "200"}
    world.plan("pro", charges=[charge])
    world.customer("acme")
    world.subscribe("acme", "pro", START)
    world.rule(
        customer="acme",
        kind="usage_threshold",
        meter="calls",
        of="included",
        thresholds=["50", "100"],
    )
    world.use("acme", "calls", DAY, 150)
    told = world.told()
    assert percents(told) == ["50"]
    assert told[0]["details"]["allowance"] == "200"
    assert "allowance" in told[0]["title"]


def test_a_customer_rule_replaces_the_defaults_of_its_meter(runtime: Runtime) -> None:
    world = limited(runtime)
    world.rule(customer="acme", kind="usage_threshold", meter="calls", enabled=False)
    world.use("acme", "calls", DAY, 1000)
    assert world.told() == []


def test_spend_thresholds_in_the_customers_currency(runtime: Runtime) -> None:
    world = limited(runtime, limit="100000", price="0.01")
    world.rule(
        customer="acme", kind="spend_threshold", measure="amount", thresholds=["5.00", "10.00"]
    )
    world.use("acme", "calls", DAY, 499)  # 4.99
    assert world.told("alert.spend_threshold") == []
    world.use("acme", "calls", DAY, 1)  # 5.00: reached at equality
    told = world.told("alert.spend_threshold")
    assert [r["details"]["threshold"] for r in told] == ["5"]
    assert told[0]["details"]["amount"] == "5" and told[0]["details"]["currency"] == "USD"
    assert "5.00 USD" in told[0]["title"]


def test_a_budget_alerts_at_80_and_100_percent(runtime: Runtime) -> None:
    world = limited(runtime, limit="100000", price="0.01")
    changes = parse_customer_changes({"budget": "20"})
    catalog.update_customer(runtime.db, runtime.clock, "acme", changes)
    world.use("acme", "calls", DAY, 1500)  # 15.00: 75%
    assert world.told("alert.budget") == []
    world.use("acme", "calls", DAY, 100)  # 16.00: 80%
    world.use("acme", "calls", DAY, 500)  # 21.00
    told = world.told("alert.budget")
    assert percents(told) == ["80", "100"]
    assert told[0]["details"]["budget"] == "20"


@pytest.mark.parametrize("enabled", [True, False])
def test_a_disabled_rule_is_silent(runtime: Runtime, enabled: bool) -> None:
    world = limited(runtime, limit="100000")
    world.rule(
        customer="acme",
        kind="usage_threshold",
        meter="calls",
        measure="quantity",
        thresholds=["10"],
        enabled=enabled,
    )
    world.use("acme", "calls", DAY, 20)
    assert len(world.told("alert.usage_threshold")) == (1 if enabled else 0)


def test_a_customers_limit_override_is_the_base_of_its_percentages(runtime: Runtime) -> None:
    world = limited(runtime, limit="1000")
    with runtime.db.write() as conn:
        Limits(conn).put_override("acme", "calls", Override(limit=Decimal(200)), 0)
    world.use("acme", "calls", DAY, 170)
    told = world.told()
    assert percents(told) == ["50", "80"]
    assert {r["details"]["limit"] for r in told} == {"200"}
