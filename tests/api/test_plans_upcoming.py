"""GET /v1/customers/{key}/upcoming-invoice: the current period to date, growing as events
arrive, with a linear run-rate projection; after a mid-period change, one group of lines
per plan with the prepaid fee credited. Amounts are worked out by hand in each test."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from fairmeter.services.clock import FixedClock

PRO = {
    "key": "pro",
    "name": "Pro",
    "currency": "USD",
    "base_fee": "49",
    "charges": [
        {"meter": "api_calls", "model": "per_unit", "unit_price": "0.002", "included": "1000000"}
    ],
}
SCALE = {
    "key": "scale",
    "name": "Scale",
    "currency": "USD",
    "base_fee": "199",
    "charges": [
        {"meter": "api_calls", "model": "per_unit", "unit_price": "0.001", "included": "5000000"}
    ],
}


@pytest.fixture
def subscribed(api: httpx.Client, new_meter, new_customer, clock: FixedClock) -> str:
    """acme on Pro since Nov 1 (UTC); the clock at Nov 16 00:00, half of November."""
    new_meter("api_calls", "sum", value_property="$.calls")
    new_customer("acme")
    for plan in (PRO, SCALE):
        assert api.post("/v1/plans", json=plan).status_code == 201
    body = {"customer": "acme", "plan": "pro", "start_at": "2026-11-01T00:00:00Z"}
    created = api.post("/v1/subscriptions", json=body)
    assert created.status_code == 201, created.text
    clock.at = datetime(2026, 11, 16, tzinfo=UTC)
    subscription_id: str = created.json()["id"]
    return subscription_id


@pytest.fixture
def send(new_event, post_events):
    counter = iter(range(1_000_000))

    def post(calls: int, time: str) -> None:
        event = new_event(f"e{next(counter)}", time=time, data={"calls": calls})
        assert post_events([event]).json()["accepted"] == 1

    return post


def _upcoming(api: httpx.Client) -> dict[str, Any]:
    response = api.get("/v1/customers/acme/upcoming-invoice")
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def _usage_line(body: dict[str, Any], plan: str = "pro") -> dict[str, Any]:
    found: dict[str, Any] = next(
        line for line in body["lines"] if line["meter"] and line["plan"]["key"] == plan
    )
    return found


def test_before_any_usage_the_projection_is_the_base_fee(api: httpx.Client, subscribed) -> None:
    body = _upcoming(api)
    assert body["period"] == {"from": "2026-11-01T00:00:00Z", "to": "2026-12-01T00:00:00Z"}
    assert (body["total"], body["projected_total"], body["currency"]) == ("49.00", "49.00", "USD")
    assert body["elapsed"] == "0.5"
    assert body["projection_method"] == "linear run-rate over the elapsed part of the period"
    assert _usage_line(body)["included_left"] == "1000000"


def test_the_upcoming_invoice_grows_as_events_arrive(api: httpx.Client, subscribed, send) -> None:
    send(600_000, "2026-11-03T10:00:00Z")
    first = _upcoming(api)
    line = _usage_line(first)
    # Inside the allowance: nothing billable, 400,000 calls left.
    assert (line["quantity"], line["included_left"], line["amount"]) == ("600000", "400000", "0.00")
    assert first["total"] == "49.00"
    send(900_000, "2026-11-15T23:00:00Z")
    second = _upcoming(api)
    line = _usage_line(second)
    # 1,500,000 calls: 500,000 over the allowance at $0.002 = $1,000.
    assert (line["quantity"], line["billable"], line["amount"]) == ("1500000", "500000", "1000.00")
    assert (second["total"], second["total_minor"]) == ("1049.00", 104_900)
    # Half the period gone: 3,000,000 calls by its end, 2,000,000 billable = $4,000.
    assert second["projected_total"] == "4049.00"


def test_events_outside_the_period_do_not_count(api: httpx.Client, subscribed, send) -> None:
    send(5_000_000, "2026-10-31T23:59:59Z")
    assert _upcoming(api)["total"] == "49.00"


def test_a_change_now_rates_each_plan_and_credits_the_unused_fee(
    api: httpx.Client, subscribed: str, send, clock: FixedClock
) -> None:
    send(1_500_000, "2026-11-10T00:00:00Z")
    changed = api.post(
        f"/v1/subscriptions/{subscribed}/change", json={"plan": "scale", "at": "now"}
    )
    assert changed.status_code == 200, changed.text
    clock.at = datetime(2026, 11, 20, tzinfo=UTC)
    send(3_000_000, "2026-11-19T00:00:00Z")
    body = _upcoming(api)
    assert [(line["kind"], line["plan"]["key"], line["amount"]) for line in body["lines"]] == [
        ("base_fee", "pro", "49.00"),
        ("base_fee_credit", "pro", "-24.50"),  # half of November unused
        ("usage", "pro", "2000.00"),  # 1.5M - 500k (half the allowance) at $0.002
        ("base_fee", "scale", "99.50"),  # half of $199
        ("usage", "scale", "500.00"),  # 3M - 2.5M at $0.001
    ]
    assert body["total"] == "2624.00"
    # Scale's 3M calls in 4 of its 15 days run on to 11.25M: 8.75M billable = $8,750.
    assert body["projected_total"] == "10874.00"


def test_without_an_active_subscription_there_is_no_upcoming_invoice(
    api: httpx.Client, subscribed: str, new_customer, problem
) -> None:
    new_customer("beta")
    problem(api.get("/v1/customers/beta/upcoming-invoice"), 404, "no_subscription")
    problem(api.get("/v1/customers/ghost/upcoming-invoice"), 404, "not_found")
    api.post(f"/v1/subscriptions/{subscribed}/cancel", json={"at": "now"})
    problem(api.get("/v1/customers/acme/upcoming-invoice"), 404, "no_subscription")
