"""The entitlements HTTP API: check, consume, overrides, suspension, the customer view and
/metrics, with problem+json for every bad input."""

from __future__ import annotations

import pytest

PLAN = {
    "key": "starter",
    "currency": "USD",
    "charges": [
        {"meter": "calls", "model": "per_unit", "unit_price": "0.01", "limit": "3",
         "policy": "block"}
    ],
}  # fmt: skip


@pytest.fixture
def database_url(sqlite_url: str) -> str:
    return sqlite_url


@pytest.fixture
def subscribed(api):
    meter = {"key": "calls", "event_type": "api.request", "aggregation": "count"}
    assert api.post("/v1/meters", json=meter).status_code == 201
    assert api.post("/v1/customers", json={"key": "acme", "currency": "USD"}).status_code == 201
    assert api.post("/v1/plans", json=PLAN).status_code == 201
    body = {"customer": "acme", "plan": "starter"}
    assert api.post("/v1/subscriptions", json=body).status_code == 201
    return api


def _call(api, path, **body):
    return api.post(f"/v1/entitlements/{path}", json={"customer": "acme", "meter": "calls", **body})


def test_check_and_consume_answer_200_with_the_decision_fields(subscribed):
    answer = _call(subscribed, "check", quantity="1")
    assert answer.status_code == 200
    assert set(answer.json()) >= {
        "allowed", "policy", "usage", "limit", "remaining", "overage_amount", "reason",
        "retry_after", "resets_at", "customer", "meter", "plan", "upgraded_to", "duplicate",
        "currency",
    }  # fmt: skip
    for _ in range(3):
        assert _call(subscribed, "consume", quantity="1").json()["allowed"]
    refused = _call(subscribed, "consume", quantity="1")
    assert refused.status_code == 200
    body = refused.json()
    assert body["allowed"] is False and body["reason"] == "limit_reached"
    assert body["usage"] == "3" and body["remaining"] == "0"
    assert body["retry_after"] == body["resets_at"] and body["resets_at"].endswith("Z")


def test_consume_with_an_idempotency_key_counts_once(subscribed):
    first = _call(subscribed, "consume", quantity="1", idempotency_key="req-1").json()
    again = _call(subscribed, "consume", quantity="1", idempotency_key="req-1").json()
    assert first["duplicate"] is False and again["duplicate"] is True and again["usage"] == "1"
    conflict = _call(subscribed, "consume", quantity="2", idempotency_key="req-1")
    assert conflict.status_code == 409 and conflict.json()["code"] == "idempotency_conflict"


@pytest.mark.parametrize(
    ("body", "pointer"),
    [
        ({"quantity": "0"}, "/quantity"),
        ({"quantity": "-1"}, "/quantity"),
        ({"quantity": 1.5}, "/quantity"),
        ({"quantity": "1.5"}, "/quantity"),
        ({"quantity": "1", "data": [1]}, "/data"),
        ({"quantity": "1", "extra": 1}, "/extra"),
    ],
)
def test_bad_input_is_a_422_naming_the_field(subscribed, body, pointer):
    answer = _call(subscribed, "consume", **body)
    assert answer.status_code == 422
    assert answer.headers["content-type"] == "application/problem+json"
    assert pointer in {error["pointer"] for error in answer.json()["errors"]}


def test_unknown_customer_and_meter_are_404(subscribed):
    body = {"customer": "nobody", "meter": "calls"}
    assert subscribed.post("/v1/entitlements/check", json=body).json()["code"] == "not_found"
    body = {"customer": "acme", "meter": "nothing"}
    answer = subscribed.post("/v1/entitlements/consume", json=body)
    assert answer.status_code == 404 and answer.json()["code"] == "not_found"


def test_overrides_can_be_set_read_listed_and_removed(subscribed):
    path = "/v1/customers/acme/limits/calls"
    put = subscribed.put(path, json={"limit": "5", "rate_limit": {"limit": "10", "per": "minute"}})
    assert put.status_code == 200 and put.json()["limit"] == "5"
    assert subscribed.get(path).json()["rate_limit"] == {"limit": "10", "per": "minute"}
    assert [o["meter"] for o in subscribed.get("/v1/customers/acme/limits").json()["data"]] == [
        "calls"
    ]
    assert _call(subscribed, "consume", quantity="5").json()["allowed"]
    assert subscribed.delete(path).status_code == 204
    assert subscribed.get(path).status_code == 404
    assert _call(subscribed, "check", quantity="1").json()["reason"] == "limit_reached"


def test_override_errors_are_problems_naming_fields(subscribed):
    answer = subscribed.put("/v1/customers/acme/limits/calls", json={"policy": "throttle"})
    assert answer.status_code == 422
    assert answer.json()["errors"][0]["pointer"] == "/throttle_rate"
    missing = subscribed.put("/v1/customers/nobody/limits/calls", json={"limit": "1"})
    assert missing.status_code == 404


def test_suspend_and_restore(subscribed):
    suspended = subscribed.post("/v1/customers/acme/suspend", json={"reason": "past due"})
    assert suspended.status_code == 200 and suspended.json()["suspended"] is True
    assert _call(subscribed, "check").json()["reason"] == "suspended"
    assert subscribed.post("/v1/customers/acme/suspend", json={}).status_code == 422
    assert subscribed.post("/v1/customers/acme/restore").json()["suspended"] is False
    again = subscribed.post("/v1/customers/acme/restore")
    assert again.status_code == 409 and again.json()["code"] == "not_suspended"
    assert _call(subscribed, "check").json()["allowed"] is True


def test_customer_entitlements_show_usage_denials_and_policy(subscribed):
    for _ in range(5):
        _call(subscribed, "consume")
    view = subscribed.get("/v1/customers/acme/entitlements")
    assert view.status_code == 200
    (calls,) = view.json()["meters"]
    assert calls["usage"] == "3" and calls["limit"] == "3" and calls["remaining"] == "0"
    assert calls["policy"] == "block" and calls["denials"] == {"limit_reached": 2}
    assert calls["resets_at"].endswith("Z")
    assert subscribed.get("/v1/customers/nobody/entitlements").status_code == 404


def test_metrics_count_decisions_by_reason(subscribed):
    for _ in range(4):
        _call(subscribed, "consume")
    text = subscribed.get("/metrics").text
    assert (
        'fairmeter_limit_decisions_total{allowed="false",operation="consume",'
        'policy="block",reason="limit_reached"} 1.0'
    ) in text


def test_an_ingest_key_may_check_and_consume(subscribed, ingest_key):
    headers = {"Authorization": f"Bearer {ingest_key}"}
    body = {"customer": "acme", "meter": "calls"}
    assert subscribed.post("/v1/entitlements/check", json=body, headers=headers).status_code == 200
    view = subscribed.get("/v1/customers/acme/entitlements", headers=headers)
    assert view.status_code == 403


def test_a_subscription_spend_cap_stops_overage_over_http(api):
    meter = {"key": "calls", "event_type": "api.request", "aggregation": "count"}
    api.post("/v1/meters", json=meter)
    api.post("/v1/customers", json={"key": "acme", "currency": "USD"})
    charge = {**PLAN["charges"][0], "policy": "overage"}
    api.post("/v1/plans", json={**PLAN, "charges": [charge]})
    body = {"customer": "acme", "plan": "starter", "max_overage_amount": "0.02"}
    created = api.post("/v1/subscriptions", json=body)
    assert created.status_code == 201 and created.json()["max_overage_amount"] == "0.02"
    assert _call(api, "consume", quantity="5").json()["reason"] == "overage"
    capped = _call(api, "consume", quantity="1").json()
    assert capped["reason"] == "spend_cap_reached" and capped["overage_amount"] == "0.02"
    bad = api.post("/v1/subscriptions", json={**body, "max_overage_amount": "-1"})
    assert bad.status_code == 422 and bad.json()["errors"][0]["pointer"] == "/max_overage_amount"
