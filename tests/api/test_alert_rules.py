"""POST/GET/PATCH/DELETE /v1/alert-rules, and the customer's budget field."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import pytest

Problem = Callable[[httpx.Response, int, str], dict[str, Any]]


@pytest.fixture
def catalog(api: httpx.Client, new_meter: Any, new_customer: Any) -> httpx.Client:
    new_meter("api_calls")
    new_customer("acme")
    plan = {
        "key": "pro",
        "name": "Pro",
        "currency": "USD",
        "charges": [
            {
                "meter": "api_calls",
                "model": "per_unit",
                "unit_price": "0.01",
                "limit": "1000",
                "policy": "block",
            }
        ],
    }
    assert api.post("/v1/plans", json=plan).status_code == 201
    return api


def pointers(body: dict[str, Any]) -> list[str]:
    return [e["pointer"] for e in body["errors"]]


def test_a_rule_is_created_read_changed_listed_and_deleted(catalog: httpx.Client) -> None:
    created = catalog.post(
        "/v1/alert-rules",
        json={"customer": "acme", "kind": "usage_threshold", "meter": "api_calls"},
    )
    assert created.status_code == 201, created.text
    rule = created.json()
    assert rule["id"].startswith("alr_")
    assert rule["scope"] == "customer" and rule["plan"] is None
    assert (rule["measure"], rule["of"], rule["thresholds"]) == (
        "percent",
        "limit",
        ["50", "80", "100"],
    )
    assert rule["enabled"] is True and rule["created_at"].endswith("Z")
    assert catalog.get(f"/v1/alert-rules/{rule['id']}").json() == rule
    patched = catalog.patch(
        f"/v1/alert-rules/{rule['id']}", json={"thresholds": ["90", "75"], "enabled": False}
    )
    assert patched.status_code == 200, patched.text
    assert patched.json()["thresholds"] == ["75", "90"] and patched.json()["enabled"] is False
    listed = catalog.get("/v1/alert-rules", params={"customer": "acme"}).json()["data"]
    assert [r["id"] for r in listed] == [rule["id"]]
    assert catalog.get("/v1/alert-rules", params={"customer": "other"}).json()["data"] == []
    assert catalog.delete(f"/v1/alert-rules/{rule['id']}").status_code == 204
    assert catalog.get(f"/v1/alert-rules/{rule['id']}").status_code == 404


def test_plan_spend_and_forecast_rules(catalog: httpx.Client) -> None:
    spend = catalog.post(
        "/v1/alert-rules",
        json={
            "plan": "pro",
            "kind": "spend_threshold",
            "measure": "amount",
            "thresholds": ["500.00", "1000"],
        },
    ).json()
    assert (spend["scope"], spend["plan"], spend["of"]) == ("plan", "pro", None)
    assert spend["thresholds"] == ["500", "1000"]
    forecast = catalog.post("/v1/alert-rules", json={"customer": "acme", "kind": "forecast"}).json()
    assert (forecast["meter"], forecast["of"], forecast["thresholds"]) == (None, "budget", ["100"])
    kinds = catalog.get("/v1/alert-rules", params={"kind": "forecast"}).json()["data"]
    assert [r["id"] for r in kinds] == [forecast["id"]]


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ({"kind": "usage_threshold", "meter": "api_calls"}, ["/customer"]),
        ({"customer": "acme", "plan": "pro", "kind": "forecast"}, ["/plan"]),
        ({"customer": "acme", "kind": "sometimes"}, ["/kind"]),
        ({"customer": "acme", "kind": "usage_threshold"}, ["/meter"]),
        ({"customer": "acme", "kind": "spend_threshold", "meter": "api_calls"}, ["/meter"]),
        (
            {
                "customer": "acme",
                "kind": "usage_threshold",
                "meter": "api_calls",
                "thresholds": ["80", "-1", 0.5, "1e9"],
            },
            ["/thresholds/1", "/thresholds/2", "/thresholds/3"],
        ),
        (
            {
                "customer": "acme",
                "kind": "usage_threshold",
                "meter": "api_calls",
                "measure": "amount",
            },
            ["/measure"],
        ),
        (
            {"customer": "acme", "kind": "usage_threshold", "meter": "api_calls", "of": "budget"},
            ["/of"],
        ),
        ({"customer": "acme", "kind": "spend_threshold", "measure": "amount"}, ["/thresholds"]),
        (
            {
                "customer": "acme",
                "kind": "spend_threshold",
                "measure": "amount",
                "of": "budget",
                "thresholds": ["5"],
            },
            ["/of"],
        ),
        ({"customer": "acme", "kind": "forecast", "enabled": "yes"}, ["/enabled"]),
        (
            {"customer": "acme", "kind": "usage_threshold", "meter": "api_calls", "thresholds": []},
            ["/thresholds"],
        ),
    ],
)
def test_bad_rules_are_refused_with_the_field_at_fault(
    catalog: httpx.Client, problem: Problem, body: dict[str, Any], expected: list[str]
) -> None:
    response = catalog.post("/v1/alert-rules", json=body)
    assert pointers(problem(response, 422, "invalid_input")) == expected


def test_unknown_references_are_refused_at_their_field(
    catalog: httpx.Client, problem: Problem
) -> None:
    response = catalog.post(
        "/v1/alert-rules", json={"customer": "nobody", "kind": "usage_threshold", "meter": "nope"}
    )
    body = problem(response, 422, "invalid_input")
    assert [(e["pointer"], e["code"]) for e in body["errors"]] == [
        ("/customer", "unknown_customer"),
        ("/meter", "unknown_meter"),
    ]
    response = catalog.post("/v1/alert-rules", json={"plan": "gold", "kind": "forecast"})
    assert pointers(problem(response, 422, "invalid_input")) == ["/plan"]


def test_patch_refuses_what_cannot_change_and_unknown_ids(
    catalog: httpx.Client, problem: Problem
) -> None:
    rule = catalog.post(
        "/v1/alert-rules",
        json={"customer": "acme", "kind": "usage_threshold", "meter": "api_calls"},
    ).json()
    response = catalog.patch(f"/v1/alert-rules/{rule['id']}", json={"meter": "x", "of": "x"})
    assert pointers(problem(response, 422, "invalid_input")) == ["/meter", "/of"]
    problem(catalog.patch("/v1/alert-rules/alr_none", json={}), 404, "not_found")
    problem(catalog.delete("/v1/alert-rules/alr_none"), 404, "not_found")
    problem(catalog.get("/v1/alert-rules/alr_none"), 404, "not_found")


def test_a_customer_has_a_budget_that_can_be_set_and_cleared(
    api: httpx.Client, new_customer: Any, problem: Problem
) -> None:
    assert new_customer("acme", budget="500.00")["budget"] == "500"
    assert api.patch("/v1/customers/acme", json={"budget": "750.5"}).json()["budget"] == "750.5"
    assert api.patch("/v1/customers/acme", json={"budget": None}).json()["budget"] is None
    refused = api.patch("/v1/customers/acme", json={"budget": "-3"})
    assert pointers(problem(refused, 422, "invalid_input")) == ["/budget"]
