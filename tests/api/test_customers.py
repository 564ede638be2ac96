"""Customers: created once per key, listed by key, edited field by field."""

from __future__ import annotations

import httpx
import pytest


def test_a_new_customer_gets_defaults_for_what_was_not_sent(api: httpx.Client) -> None:
    response = api.post("/v1/customers", json={"key": "acme"})
    assert response.status_code == 201
    assert response.json() == {
        "key": "acme",
        "name": "acme",
        "email": None,
        "currency": "USD",
        "timezone": "UTC",
        "locale": "en_US",
        "metadata": {},
        "invoice_threshold": None,
        "net_terms_days": None,
        "budget": None,
    }


def test_a_created_customer_reads_back_as_sent(api: httpx.Client) -> None:
    sent = {
        "key": "acme",
        "name": "Acme Corp",
        "email": "billing@acme.example",
        "currency": "EUR",
        "timezone": "Europe/Madrid",
        "locale": "es_ES",
        "metadata": {"crm_id": "0017", "tier": 2},
        "invoice_threshold": "2500",
        "net_terms_days": 15,
        "budget": "800.5",
    }
    assert api.post("/v1/customers", json=sent).json() == sent
    assert api.get("/v1/customers/acme").json() == sent


def test_customers_page_by_key_until_has_more_is_false(api: httpx.Client, new_customer) -> None:
    keys = ["c5", "c1", "c4", "c2", "c3"]
    for key in keys:
        new_customer(key)
    seen: list[str] = []
    pages: list[bool] = []
    after: str | None = None
    while True:
        params: dict[str, str | int] = {"limit": 2, **({"starting_after": after} if after else {})}
        page = api.get("/v1/customers", params=params).json()
        seen += [c["key"] for c in page["data"]]
        pages.append(page["has_more"])
        if not page["has_more"]:
            break
        after = page["data"][-1]["key"]
    assert seen == sorted(keys)
    assert pages == [True, True, False]


def test_a_page_that_holds_the_last_customer_exactly_has_no_more(
    api: httpx.Client, new_customer
) -> None:
    for key in ("a", "b"):
        new_customer(key)
    page = api.get("/v1/customers", params={"limit": 2}).json()
    assert [c["key"] for c in page["data"]] == ["a", "b"]
    assert page["has_more"] is False
    after = api.get("/v1/customers", params={"starting_after": "b"}).json()
    assert after == {"data": [], "has_more": False}


def test_patch_changes_only_the_fields_sent(api: httpx.Client, new_customer) -> None:
    new_customer("acme", name="Acme", email="old@acme.example", currency="EUR")
    response = api.patch(
        "/v1/customers/acme", json={"email": "new@acme.example", "timezone": "Asia/Tokyo"}
    )
    assert response.status_code == 200
    expected = {
        "key": "acme",
        "name": "Acme",
        "email": "new@acme.example",
        "currency": "EUR",
        "timezone": "Asia/Tokyo",
        "locale": "en_US",
        "metadata": {},
        "invoice_threshold": None,
        "net_terms_days": None,
        "budget": None,
    }
    assert response.json() == expected
    assert api.get("/v1/customers/acme").json() == expected


def test_patch_can_clear_the_email(api: httpx.Client, new_customer) -> None:
    new_customer("acme", email="old@acme.example")
    assert api.patch("/v1/customers/acme", json={"email": None}).json()["email"] is None


def test_a_taken_key_is_a_conflict_naming_the_key(api: httpx.Client, new_customer, problem) -> None:
    new_customer("acme", name="First")
    body = problem(api.post("/v1/customers", json={"key": "acme"}), 409, "already_exists")
    assert [e["pointer"] for e in body["errors"]] == ["/key"]
    assert api.get("/v1/customers/acme").json()["name"] == "First"


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("currency", "XYZ"),
        ("currency", "usd"),
        ("currency", 840),
        ("timezone", "Mars/Olympus_Mons"),
        ("timezone", ""),
        ("email", "not-an-email"),
        ("email", "a@b"),
        ("name", ""),
        ("metadata", ["not", "an", "object"]),
        ("locale", "xx_YY"),
        ("locale", "Klingon"),
        ("locale", ""),
        ("locale", 49),
    ],
)
def test_a_bad_field_is_rejected_naming_it(
    api: httpx.Client, problem, field: str, value: object
) -> None:
    response = api.post("/v1/customers", json={"key": "acme", field: value})
    body = problem(response, 422, "invalid_input")
    assert [e["pointer"] for e in body["errors"]] == [f"/{field}"]
    problem(api.get("/v1/customers/acme"), 404, "not_found")


@pytest.mark.parametrize("key", [None, "", "has space", "-leading-dash", "x" * 257])
def test_a_bad_key_is_rejected_naming_it(api: httpx.Client, problem, key: object) -> None:
    body = problem(api.post("/v1/customers", json={"key": key}), 422, "invalid_input")
    assert "/key" in [e["pointer"] for e in body["errors"]]


@pytest.mark.parametrize("key", [None, "", "has space", "x" * 257])
def test_a_bad_key_blames_only_the_key(api: httpx.Client, problem, key: object) -> None:
    body = problem(api.post("/v1/customers", json={"key": key}), 422, "invalid_input")
    assert [e["pointer"] for e in body["errors"]] == ["/key"]


def test_a_bad_key_and_a_bad_name_sent_are_both_blamed(api: httpx.Client, problem) -> None:
    body = problem(api.post("/v1/customers", json={"key": "", "name": ""}), 422, "invalid_input")
    assert sorted(e["pointer"] for e in body["errors"]) == ["/key", "/name"]


def test_every_bad_field_is_reported_at_once(api: httpx.Client, problem) -> None:
    sent = {"key": "acme", "currency": "XYZ", "timezone": "Nowhere", "email": "x"}
    body = problem(api.post("/v1/customers", json=sent), 422, "invalid_input")
    assert sorted(e["pointer"] for e in body["errors"]) == ["/currency", "/email", "/timezone"]


@pytest.mark.parametrize(
    ("change", "pointer"),
    [
        ({"timezone": "Nowhere/City"}, "/timezone"),
        ({"email": "nope"}, "/email"),
        ({"currency": "ABC"}, "/currency"),
        ({"locale": "zz_ZZ"}, "/locale"),
        ({"key": "renamed"}, "/key"),
    ],
)
def test_a_bad_change_is_rejected_and_leaves_the_customer_as_it_was(
    api: httpx.Client, new_customer, problem, change: dict[str, str], pointer: str
) -> None:
    before = new_customer("acme", email="a@acme.example")
    body = problem(api.patch("/v1/customers/acme", json=change), 422, "invalid_input")
    assert [e["pointer"] for e in body["errors"]] == [pointer]
    assert api.get("/v1/customers/acme").json() == before


def test_an_unknown_customer_is_not_found(api: httpx.Client, problem) -> None:
    problem(api.get("/v1/customers/ghost"), 404, "not_found")
    problem(api.patch("/v1/customers/ghost", json={"name": "Ghost"}), 404, "not_found")


def test_nan_in_metadata_is_refused_naming_its_path(api: httpx.Client) -> None:
    body = b'{"key": "nan-co", "metadata": {"plan": {"ratio": NaN}}}'
    response = api.post("/v1/customers", content=body, headers={"content-type": "application/json"})
    assert response.status_code == 422
    assert [e["pointer"] for e in response.json()["errors"]] == ["/metadata/plan/ratio"]


def test_billing_terms_are_set_read_back_and_cleared(api: httpx.Client) -> None:
    created = api.post(
        "/v1/customers", json={"key": "terms", "invoice_threshold": "1000.50", "net_terms_days": 14}
    ).json()
    assert (created["invoice_threshold"], created["net_terms_days"]) == ("1000.5", 14)
    changed = api.patch("/v1/customers/terms", json={"invoice_threshold": None}).json()
    assert (changed["invoice_threshold"], changed["net_terms_days"]) == (None, 14)


@pytest.mark.parametrize(
    ("body", "pointer"),
    [
        ({"invoice_threshold": "-5"}, "/invoice_threshold"),
        ({"invoice_threshold": "0"}, "/invoice_threshold"),
        ({"invoice_threshold": 1.5}, "/invoice_threshold"),
        ({"net_terms_days": 400}, "/net_terms_days"),
        ({"net_terms_days": "30"}, "/net_terms_days"),
    ],
)
def test_bad_billing_terms_are_refused_naming_the_field(
    api: httpx.Client, body: dict[str, object], pointer: str
) -> None:
    response = api.post("/v1/customers", json={"key": "bad-terms", **body})
    assert response.status_code == 422
    assert [e["pointer"] for e in response.json()["errors"]] == [pointer]


def test_a_locale_is_stored_in_its_canonical_form_and_can_be_changed(api: httpx.Client) -> None:
    created = api.post("/v1/customers", json={"key": "tokyo", "locale": "ja-JP"}).json()
    assert created["locale"] == "ja_JP"
    assert api.get("/v1/customers/tokyo").json()["locale"] == "ja_JP"
    changed = api.patch("/v1/customers/tokyo", json={"locale": "de_DE"}).json()
    assert changed["locale"] == "de_DE"
    assert api.get("/v1/customers/tokyo").json()["locale"] == "de_DE"
    reset = api.patch("/v1/customers/tokyo", json={"locale": None}).json()
    assert reset["locale"] == "en_US"


def test_an_unknown_locale_is_refused_at_locale(api: httpx.Client, problem) -> None:
    body = problem(
        api.post("/v1/customers", json={"key": "nowhere", "locale": "xx_YY"}), 422, "invalid_input"
    )
    assert [e["pointer"] for e in body["errors"]] == ["/locale"]
    assert "en_US" in body["errors"][0]["detail"]
