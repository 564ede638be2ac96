"""Every /v1 call needs a known API key; ingest keys may only record events."""

from __future__ import annotations

import secrets

import httpx
import pytest

from fairmeter.domain.keys import format_key

ADMIN_ONLY = [
    ("GET", "/v1/meters"),
    ("POST", "/v1/meters"),
    ("GET", "/v1/meters/tokens"),
    ("GET", "/v1/meters/tokens/usage"),
    ("GET", "/v1/customers"),
    ("POST", "/v1/customers"),
    ("GET", "/v1/customers/acme"),
]


@pytest.mark.parametrize(("method", "path"), [*ADMIN_ONLY, ("POST", "/v1/events")])
def test_a_call_without_a_key_is_unauthorized_with_a_bearer_challenge(
    anonymous: httpx.Client, problem, method: str, path: str
) -> None:
    response = anonymous.request(method, path, json={})
    problem(response, 401, "unauthorized")
    assert response.headers["www-authenticate"] == "Bearer"


@pytest.mark.parametrize(
    "authorization",
    [
        "Bearer fm_not-a-real-key",
        "Bearer " + format_key(b"\x01" * 32)[:-1] + "x",  # checksum typo
        "Basic dXNlcjpwYXNz",
        "Bearer",
        "fm_without_scheme",
    ],
)
def test_a_malformed_key_is_unauthorized(api: httpx.Client, problem, authorization: str) -> None:
    response = api.get("/v1/meters", headers={"Authorization": authorization})
    problem(response, 401, "unauthorized")
    assert response.headers["www-authenticate"] == "Bearer"


def test_a_well_formed_but_unknown_key_is_unauthorized(api: httpx.Client, problem) -> None:
    stranger = format_key(secrets.token_bytes(32))
    response = api.get("/v1/meters", headers={"Authorization": f"Bearer {stranger}"})
    problem(response, 401, "unauthorized")


@pytest.mark.parametrize(("method", "path"), ADMIN_ONLY)
def test_an_ingest_key_is_forbidden_outside_event_ingest(
    api: httpx.Client, ingest_key: str, problem, method: str, path: str
) -> None:
    response = api.request(method, path, json={}, headers={"Authorization": f"Bearer {ingest_key}"})
    problem(response, 403, "forbidden")


def test_an_ingest_key_may_record_events(api: httpx.Client, ingest_key: str, new_event) -> None:
    response = api.post(
        "/v1/events",
        json=new_event("e1"),
        headers={"Authorization": f"Bearer {ingest_key}"},
    )
    assert response.status_code == 200, response.text
    assert response.json() == {"accepted": 1, "duplicates": 0, "rejected": []}


def test_an_admin_key_may_record_events(api: httpx.Client, new_event) -> None:
    assert api.post("/v1/events", json=new_event("e1")).json()["accepted"] == 1


def test_a_request_without_a_key_records_nothing(
    api: httpx.Client, anonymous: httpx.Client, new_event, new_meter, new_customer
) -> None:
    new_meter("calls")
    new_customer("acme")
    rejected = anonymous.post("/v1/events", json=new_event("e1"))
    assert rejected.status_code == 401
    usage = api.get("/v1/meters/calls/usage", params={"customer": "acme"}).json()
    assert [row["value"] for row in usage["data"]] == ["0"]


def test_a_verified_key_is_remembered_and_an_unknown_one_never(runtime) -> None:
    from fairmeter.domain.keys import Scope
    from fairmeter.services.keys import VerifiedKeys, create_key

    keys = VerifiedKeys(ttl_s=60)
    key = create_key(runtime.db, runtime.clock, Scope.INGEST, "cache")
    assert keys.cached(key) is None
    assert keys.verify(runtime.db, key) is Scope.INGEST
    assert keys.cached(key) is Scope.INGEST
    unknown = key[:-8] + "AAAAAAAA"
    assert keys.cached(unknown) is None


def test_a_remembered_key_expires_after_its_interval(runtime) -> None:
    from fairmeter.domain.keys import Scope
    from fairmeter.services.keys import VerifiedKeys, create_key

    keys = VerifiedKeys(ttl_s=0)
    key = create_key(runtime.db, runtime.clock, Scope.ADMIN, "cache")
    keys.verify(runtime.db, key)
    assert keys.cached(key) is None  # past its interval: the database is asked again
