"""Subscriptions over HTTP: periods in the customer's zone, one active subscription per
customer, plan changes now or at the period's end, cancellation now or at the period's end.
The clock stands at 2026-11-15T12:00Z and moves where a test says."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from fairmeter.services.clock import FixedClock

NOV_1 = "2026-11-01T00:00:00Z"
DEC_1 = "2026-12-01T00:00:00Z"
JAN_1 = "2027-01-01T00:00:00Z"


def _plan(key: str, fee: str, currency: str = "USD", **fields: Any) -> dict[str, Any]:
    charge = {"meter": "api_calls", "model": "per_unit", "unit_price": "0.002"}
    return {"key": key, "currency": currency, "base_fee": fee, "charges": [charge], **fields}


@pytest.fixture
def shop(api: httpx.Client, new_meter, new_customer) -> httpx.Client:
    new_meter("api_calls")
    new_customer("acme")
    new_customer("nyc", timezone="America/New_York")
    new_customer("euro", currency="EUR")
    for body in (_plan("pro", "49"), _plan("scale", "199"), _plan("euro_pro", "45", "EUR")):
        assert api.post("/v1/plans", json=body).status_code == 201
    return api


def _subscribe(api: httpx.Client, customer: str = "acme", **fields: Any) -> dict[str, Any]:
    response = api.post(
        "/v1/subscriptions", json={"customer": customer, "plan": "pro", "start_at": NOV_1, **fields}
    )
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


def _period(body: dict[str, Any], name: str = "current_period") -> tuple[str, str] | None:
    span = body[name]
    return None if span is None else (span["from"], span["to"])


def test_a_subscription_starts_a_segment_and_shows_its_periods(shop: httpx.Client) -> None:
    sub = _subscribe(shop)
    assert sub["id"].startswith("sub_")
    assert (sub["status"], sub["plan"]) == ("active", {"key": "pro", "version": 1})
    assert _period(sub) == (NOV_1, DEC_1)
    assert _period(sub, "next_period") == (DEC_1, JAN_1)
    assert [(s["plan"]["key"], s["from"], s["to"], s["reason"]) for s in sub["segments"]] == [
        ("pro", NOV_1, None, "start")
    ]
    assert shop.get(f"/v1/subscriptions/{sub['id']}").json() == sub
    assert shop.get("/v1/customers/acme/subscription").json() == sub
    assert shop.get("/v1/subscriptions", params={"customer": "acme"}).json()["data"] == [sub]


def test_periods_follow_the_customers_zone_and_clamp_the_31st(shop: httpx.Client) -> None:
    # 10:00 in New York on Oct 31 (EDT); the next starts fall on the 30th of November and
    # the 31st of December at 10:00 EST.
    sub = _subscribe(shop, "nyc", start_at="2026-10-31T10:00:00-04:00")
    assert sub["billing_anchor"] == "2026-10-31T10:00:00"
    assert _period(sub) == ("2026-10-31T14:00:00Z", "2026-11-30T15:00:00Z")
    assert _period(sub, "next_period") == ("2026-11-30T15:00:00Z", "2026-12-31T15:00:00Z")


def test_a_billing_anchor_makes_the_first_period_partial(shop: httpx.Client) -> None:
    sub = _subscribe(shop, start_at="2026-11-15T12:00:00Z", billing_anchor=DEC_1)
    assert _period(sub) == ("2026-11-15T12:00:00Z", DEC_1)
    assert _period(sub, "next_period") == (DEC_1, JAN_1)


def test_a_customer_has_one_active_subscription(shop: httpx.Client, problem) -> None:
    _subscribe(shop)
    refused = shop.post("/v1/subscriptions", json={"customer": "acme", "plan": "scale"})
    assert problem(refused, 409, "already_subscribed")["errors"][0]["pointer"] == "/customer"


def test_a_plan_in_another_currency_is_a_conflict(shop: httpx.Client, problem) -> None:
    refused = shop.post("/v1/subscriptions", json={"customer": "acme", "plan": "euro_pro"})
    body = problem(refused, 409, "currency_mismatch")
    assert body["errors"][0]["pointer"] == "/plan"
    assert _subscribe(shop, "euro", plan="euro_pro")["plan"]["key"] == "euro_pro"


@pytest.mark.parametrize(
    ("body", "pointer"),
    [
        ({"customer": "ghost", "plan": "pro"}, "/customer"),
        ({"customer": "acme", "plan": "nope"}, "/plan"),
        ({"customer": "acme"}, "/plan"),
        ({"customer": "acme", "plan": "pro", "start_at": "yesterday"}, "/start_at"),
        ({"customer": "acme", "plan": "pro", "start_at": "2026-11-01T00:00:00"}, "/start_at"),
        ({"customer": "acme", "plan": "pro", "billing_anchor": 17}, "/billing_anchor"),
        ({"customer": "acme", "plan": "pro", "trial": True}, "/trial"),
    ],
)
def test_a_bad_subscription_names_the_field(
    shop: httpx.Client, problem, body: dict[str, Any], pointer: str
) -> None:
    refused = problem(shop.post("/v1/subscriptions", json=body), 422, "invalid_input")
    assert [error["pointer"] for error in refused["errors"]] == [pointer]


def test_a_change_now_closes_the_segment_and_opens_one_on_the_new_plan(
    shop: httpx.Client, clock: FixedClock
) -> None:
    sub = _subscribe(shop)
    clock.at = datetime(2026, 11, 16, tzinfo=UTC)
    changed = shop.post(
        f"/v1/subscriptions/{sub['id']}/change", json={"plan": "scale", "at": "now"}
    )
    assert changed.status_code == 200, changed.text
    body = changed.json()
    assert body["plan"] == {"key": "scale", "version": 1}
    assert [(s["plan"]["key"], s["from"], s["to"], s["reason"]) for s in body["segments"]] == [
        ("pro", NOV_1, "2026-11-16T00:00:00Z", "start"),
        ("scale", "2026-11-16T00:00:00Z", None, "change"),
    ]
    assert _period(body) == (NOV_1, DEC_1)


def test_a_change_at_period_end_waits_then_applies(shop: httpx.Client, clock: FixedClock) -> None:
    sub = _subscribe(shop)
    path = f"/v1/subscriptions/{sub['id']}"
    pending = shop.post(f"{path}/change", json={"plan": "scale", "at": "period_end"}).json()
    assert pending["plan"]["key"] == "pro"
    assert pending["pending_change"] == {"plan": {"key": "scale", "version": 1}, "at": DEC_1}
    clock.at = datetime(2026, 12, 2, tzinfo=UTC)
    applied = shop.get(path).json()
    assert (applied["plan"]["key"], applied["pending_change"]) == ("scale", None)
    assert [(s["plan"]["key"], s["from"], s["to"], s["reason"]) for s in applied["segments"]] == [
        ("pro", NOV_1, DEC_1, "start"),
        ("scale", DEC_1, None, "scheduled_change"),
    ]
    assert _period(applied) == (DEC_1, JAN_1)
    assert shop.get(path).json() == applied


def test_asking_for_the_current_plan_withdraws_a_pending_change(
    shop: httpx.Client, problem
) -> None:
    path = f"/v1/subscriptions/{_subscribe(shop)['id']}"
    shop.post(f"{path}/change", json={"plan": "scale", "at": "period_end"})
    withdrawn = shop.post(f"{path}/change", json={"plan": "pro", "at": "period_end"}).json()
    assert withdrawn["pending_change"] is None
    assert withdrawn["segments"][0]["to"] is None
    same = shop.post(f"{path}/change", json={"plan": "pro", "at": "now"})
    assert problem(same, 422, "invalid_input")["errors"][0]["pointer"] == "/plan"


def test_a_change_to_another_currency_is_a_conflict(shop: httpx.Client, problem) -> None:
    path = f"/v1/subscriptions/{_subscribe(shop)['id']}"
    refused = shop.post(f"{path}/change", json={"plan": "euro_pro", "at": "now"})
    assert problem(refused, 409, "currency_mismatch")["errors"][0]["pointer"] == "/plan"


def test_a_cancel_now_ends_the_subscription_and_frees_the_customer(
    shop: httpx.Client, clock: FixedClock, problem
) -> None:
    path = f"/v1/subscriptions/{_subscribe(shop)['id']}"
    clock.at = datetime(2026, 11, 16, tzinfo=UTC)
    ended = shop.post(f"{path}/cancel", json={"at": "now"}).json()
    assert (ended["status"], ended["ended_at"]) == ("canceled", "2026-11-16T00:00:00Z")
    assert ended["segments"][-1]["to"] == "2026-11-16T00:00:00Z"
    assert (ended["current_period"], ended["next_period"]) == (None, None)
    refused = shop.post(f"{path}/change", json={"plan": "scale", "at": "now"})
    assert problem(refused, 409, "subscription_canceled")["errors"][0]["pointer"] == "/plan"
    problem(shop.post(f"{path}/cancel", json={"at": "now"}), 409, "subscription_canceled")
    problem(shop.get("/v1/customers/acme/subscription"), 404, "no_subscription")
    again = _subscribe(shop, start_at="2026-11-16T00:00:00Z")
    listed = shop.get("/v1/subscriptions", params={"customer": "acme"}).json()["data"]
    assert [s["status"] for s in listed] == ["active", "canceled"]
    assert listed[0]["id"] == again["id"]


def test_a_cancel_at_period_end_keeps_the_subscription_until_then(
    shop: httpx.Client, clock: FixedClock, problem
) -> None:
    path = f"/v1/subscriptions/{_subscribe(shop)['id']}"
    canceling = shop.post(f"{path}/cancel", json={"at": "period_end"}).json()
    assert (canceling["status"], canceling["cancel_at"]) == ("active", DEC_1)
    assert _period(canceling, "next_period") is None
    refused = shop.post(f"{path}/change", json={"plan": "scale", "at": "period_end"})
    assert problem(refused, 409, "cancel_scheduled")["errors"][0]["pointer"] == "/at"
    clock.at = datetime(2026, 12, 1, tzinfo=UTC)
    ended = shop.get(path).json()
    assert (ended["status"], ended["ended_at"]) == ("canceled", DEC_1)
    assert ended["segments"][-1]["to"] == DEC_1


def test_a_bad_change_or_cancel_names_the_field(shop: httpx.Client, problem) -> None:
    path = f"/v1/subscriptions/{_subscribe(shop)['id']}"
    for verb, body, pointer in [
        ("change", {"plan": "scale", "at": "tomorrow"}, "/at"),
        ("change", {"at": "now"}, "/plan"),
        ("change", {"plan": "nope", "at": "now"}, "/plan"),
        ("cancel", {}, "/at"),
    ]:
        refused = problem(shop.post(f"{path}/{verb}", json=body), 422, "invalid_input")
        assert [error["pointer"] for error in refused["errors"]] == [pointer]
    problem(shop.post("/v1/subscriptions/sub_nope/cancel", json={"at": "now"}), 404, "not_found")
