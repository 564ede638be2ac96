"""POST/PUT/GET /v1/plans and quotes: plans are validated against the catalog, versioned
when subscribers hold them, and priced by the same rule invoices use."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

CALLS = {"meter": "api_calls", "model": "per_unit", "unit_price": "0.002", "included": "1000000"}


def _plan(key: str = "pro", **fields: Any) -> dict[str, Any]:
    return {"key": key, "name": key.title(), "currency": "USD", "charges": [CALLS], **fields}


@pytest.fixture
def catalog(api: httpx.Client, new_meter, new_customer) -> httpx.Client:
    new_meter("api_calls")
    new_meter("storage_gb", "max", value_property="$.gb")
    new_customer("acme")
    return api


def test_a_created_plan_reads_back_as_version_1(catalog: httpx.Client) -> None:
    created = catalog.post("/v1/plans", json=_plan(base_fee="49"))
    assert created.status_code == 201, created.text
    body = catalog.get("/v1/plans/pro").json()
    assert body == created.json()
    assert body["version"] == 1
    assert body["base_fee"] == "49"
    assert body["charges"] == [CALLS]
    assert [p["key"] for p in catalog.get("/v1/plans").json()["data"]] == ["pro"]


def test_a_taken_plan_key_is_a_conflict(catalog: httpx.Client, problem) -> None:
    assert catalog.post("/v1/plans", json=_plan()).status_code == 201
    body = problem(catalog.post("/v1/plans", json=_plan()), 409, "already_exists")
    assert body["errors"][0]["pointer"] == "/key"


def test_an_unknown_plan_is_not_found(catalog: httpx.Client, problem) -> None:
    problem(catalog.get("/v1/plans/nope"), 404, "not_found")
    problem(catalog.put("/v1/plans/nope", json=_plan("nope")), 404, "not_found")


@pytest.mark.parametrize(
    ("change", "pointer"),
    [
        ({"charges": [{**CALLS, "meter": "tokens"}]}, "/charges/0/meter"),
        ({"charges": [{**CALLS, "unit_price": "-0.002"}]}, "/charges/0/unit_price"),
        ({"base_fee": "-1"}, "/base_fee"),
        ({"currency": "XYZ"}, "/currency"),
        (
            {
                "charges": [
                    {
                        "meter": "api_calls",
                        "model": "graduated",
                        "tiers": [
                            {"up_to": "1000", "unit_price": "0.01"},
                            {"up_to": "500", "unit_price": "0.005"},
                            {"up_to": None, "unit_price": "0.001"},
                        ],
                    }
                ]
            },
            "/charges/0/tiers/1/up_to",
        ),
        (
            {
                "charges": [
                    {
                        "meter": "api_calls",
                        "model": "volume",
                        "tiers": [
                            {"up_to": None, "unit_price": "0.01"},
                            {"up_to": "1000", "unit_price": "0.005"},
                        ],
                    }
                ]
            },
            "/charges/0/tiers/0/up_to",
        ),
        ({"next_plan": "scale"}, "/next_plan"),
    ],
    ids=[
        "unknown-meter",
        "negative-price",
        "negative-fee",
        "currency",
        "overlapping-tiers",
        "unordered-tiers",
        "missing-next-plan",
    ],
)
def test_a_bad_plan_is_refused_naming_the_field(
    catalog: httpx.Client, problem, change: dict[str, Any], pointer: str
) -> None:
    body = problem(catalog.post("/v1/plans", json=_plan(**change)), 422, "invalid_input")
    assert pointer in [error["pointer"] for error in body["errors"]]
    problem(catalog.get("/v1/plans/pro"), 404, "not_found")


def test_the_next_plan_bills_in_the_same_currency_and_interval(
    catalog: httpx.Client, problem
) -> None:
    assert catalog.post("/v1/plans", json=_plan("scale", currency="EUR")).status_code == 201
    assert catalog.post("/v1/plans", json=_plan("yearly", interval="year")).status_code == 201
    for above in ("scale", "yearly"):
        refused = catalog.post("/v1/plans", json=_plan(next_plan=above))
        assert problem(refused, 422, "invalid_input")["errors"][0]["pointer"] == "/next_plan"
    assert catalog.post("/v1/plans", json=_plan("big")).status_code == 201
    assert catalog.post("/v1/plans", json=_plan(next_plan="big")).status_code == 201


def test_an_edit_without_subscribers_replaces_the_plan_in_place(catalog: httpx.Client) -> None:
    plan = catalog.post("/v1/plans", json=_plan(base_fee="49")).json()
    same = catalog.put("/v1/plans/pro", json=plan)
    assert same.status_code == 200, same.text
    assert same.json()["edit"] == "unchanged"
    edited = catalog.put("/v1/plans/pro", json={**plan, "base_fee": "59"}).json()
    assert (edited["edit"], edited["version"], edited["base_fee"]) == ("replaced", 1, "59")
    assert catalog.get("/v1/plans/pro").json()["base_fee"] == "59"


def test_an_edit_with_subscribers_adds_a_version_and_they_keep_theirs(
    catalog: httpx.Client,
) -> None:
    plan = catalog.post("/v1/plans", json=_plan(base_fee="49")).json()
    sub = catalog.post("/v1/subscriptions", json={"customer": "acme", "plan": "pro"}).json()
    edited = catalog.put("/v1/plans/pro", json={**plan, "base_fee": "59"}).json()
    assert (edited["edit"], edited["version"]) == ("new_version", 2)
    assert catalog.get("/v1/plans/pro").json()["base_fee"] == "59"
    assert catalog.get("/v1/plans/pro", params={"version": 1}).json()["base_fee"] == "49"
    held = catalog.get(f"/v1/subscriptions/{sub['id']}").json()
    assert held["plan"] == {"key": "pro", "version": 1}
    listed = catalog.get("/v1/plans", params={"include_versions": "true"}).json()["data"]
    assert [(p["key"], p["version"]) for p in listed] == [("pro", 1), ("pro", 2)]
    assert [p["version"] for p in catalog.get("/v1/plans").json()["data"]] == [2]
    upcoming = catalog.get("/v1/customers/acme/upcoming-invoice").json()
    assert upcoming["lines"][0]["amount"] == "49.00"


def test_an_edit_cannot_move_a_plan_to_another_key(catalog: httpx.Client, problem) -> None:
    plan = catalog.post("/v1/plans", json=_plan()).json()
    body = problem(
        catalog.put("/v1/plans/pro", json={**plan, "key": "other"}), 422, "invalid_input"
    )
    assert body["errors"][0]["pointer"] == "/key"


def test_a_quote_prices_the_overage_after_the_allowance(catalog: httpx.Client) -> None:
    catalog.post("/v1/plans", json=_plan())
    quote = catalog.post("/v1/plans/pro/quote", json={"usage": {"api_calls": "4500000"}})
    assert quote.status_code == 200, quote.text
    body = quote.json()
    # 4,500,000 calls, 1,000,000 included: 3,500,000 x $0.002 = $7,000.00.
    assert (body["total"], body["total_minor"], body["currency"]) == ("7000.00", 700_000, "USD")
    [line] = body["lines"]
    assert (line["quantity"], line["included"], line["billable"]) == (
        "4500000",
        "1000000",
        "3500000",
    )
    assert (line["unit_price"], line["amount"], line["amount_minor"]) == (
        "0.002",
        "7000.00",
        700_000,
    )
    assert line["breakdown"][0]["units"] == "3500000"


def test_a_quote_shows_each_tier_and_can_price_an_older_version(catalog: httpx.Client) -> None:
    tiers = [
        {"up_to": "1000", "unit_price": "0.01", "flat_fee": "5"},
        {"up_to": None, "unit_price": "0.001"},
    ]
    graduated = {"meter": "api_calls", "model": "graduated", "tiers": tiers}
    plan = catalog.post("/v1/plans", json=_plan(charges=[graduated])).json()
    catalog.post("/v1/subscriptions", json={"customer": "acme", "plan": "pro"})
    catalog.put("/v1/plans/pro", json={**plan, "base_fee": "10"})
    body = catalog.post(
        "/v1/plans/pro/quote", json={"usage": {"api_calls": "3000"}, "version": 1}
    ).json()
    # 1,000 x $0.01 + $5 flat = $15; 2,000 x $0.001 = $2.
    assert [use["amount"] for use in body["lines"][0]["breakdown"]] == ["15", "2"]
    assert (body["version"], body["total"]) == (1, "17.00")


@pytest.mark.parametrize(
    ("body", "pointer"),
    [
        ({"usage": {"api_calls": "-5"}}, "/usage/api_calls"),
        ({"usage": {"api_calls": 1.5}}, "/usage/api_calls"),
        ({"usage": {"api_calls": "many"}}, "/usage/api_calls"),
        ({"usage": {"storage_gb": "3"}}, "/usage/storage_gb"),
        ({"usage": ["api_calls"]}, "/usage"),
        ({"usage": {}, "version": 0}, "/version"),
        ({"usage": {}, "when": "now"}, "/when"),
    ],
)
def test_a_bad_quote_request_names_the_field(
    catalog: httpx.Client, problem, body: dict[str, Any], pointer: str
) -> None:
    catalog.post("/v1/plans", json=_plan())
    refused = problem(catalog.post("/v1/plans/pro/quote", json=body), 422, "invalid_input")
    assert [error["pointer"] for error in refused["errors"]] == [pointer]
