"""The webhook endpoint API: the secret is shown once, targets are checked, errors are
problem+json with stable codes."""

from __future__ import annotations

import httpx
import pytest
from standardwebhooks.webhooks import Webhook
from tests.api.conftest import assert_problem


def test_creating_an_endpoint_returns_its_whsec_secret_once(api: httpx.Client) -> None:
    created = api.post(
        "/v1/webhook-endpoints",
        json={"url": "https://hooks.example.com/fm", "events": ["limit.reached", "*"]},
    )
    assert created.status_code == 201, created.text
    body = created.json()
    assert body["secret"].startswith("whsec_")
    Webhook(body["secret"])  # the official library accepts it as a signing secret
    assert body["events"] == ["limit.reached", "*"]
    assert body["enabled"] is True
    shown = api.get(f"/v1/webhook-endpoints/{body['id']}").json()
    assert "secret" not in shown
    listed = api.get("/v1/webhook-endpoints").json()["data"]
    assert [e["id"] for e in listed] == [body["id"]] and "secret" not in listed[0]


def test_an_endpoint_can_be_changed_disabled_and_deleted(api: httpx.Client) -> None:
    endpoint = api.post(
        "/v1/webhook-endpoints", json={"url": "https://hooks.example.com/a", "events": ["*"]}
    ).json()
    path = f"/v1/webhook-endpoints/{endpoint['id']}"
    changed = api.patch(path, json={"events": ["invoice.issued"], "enabled": False}).json()
    assert changed["events"] == ["invoice.issued"]
    assert changed["enabled"] is False
    assert changed["disabled_reason"] == "disabled by an operator"
    again = api.patch(path, json={"enabled": True}).json()
    assert (again["enabled"], again["disabled_at"]) == (True, None)
    assert api.delete(path).status_code == 204
    assert_problem(api.get(path), 404, "not_found")
    assert_problem(api.delete(path), 404, "not_found")


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:8080/hooks",
        "http://localhost/hooks",
        "http://10.1.2.3/hooks",
        "http://192.168.0.10/hooks",
        "http://169.254.169.254/latest/meta-data",
        "http://[::1]/hooks",
    ],
)
def test_private_and_loopback_targets_are_refused_unless_allowed(
    api: httpx.Client, url: str
) -> None:
    response = api.post("/v1/webhook-endpoints", json={"url": url, "events": ["*"]})
    body = assert_problem(response, 422, "invalid_input")
    assert body["errors"][0]["pointer"] == "/url"
    assert body["errors"][0]["code"] == "private_target"
    assert "FAIRMETER_WEBHOOK_ALLOW_PRIVATE" in body["detail"]


def test_changing_the_url_to_a_private_target_is_refused(api: httpx.Client) -> None:
    endpoint = api.post(
        "/v1/webhook-endpoints", json={"url": "https://hooks.example.com/a", "events": ["*"]}
    ).json()
    response = api.patch(
        f"/v1/webhook-endpoints/{endpoint['id']}", json={"url": "http://127.0.0.1/x"}
    )
    assert assert_problem(response, 422, "invalid_input")["errors"][0]["code"] == "private_target"


@pytest.mark.parametrize(
    ("body", "pointer", "code"),
    [
        ({"url": "ftp://hooks.example.com/", "events": ["*"]}, "/url", "invalid_url"),
        ({"url": "https://u:p@hooks.example.com/", "events": ["*"]}, "/url", "invalid_url"),
        ({"events": ["*"]}, "/url", "invalid"),
        ({"url": "https://hooks.example.com/", "events": []}, "/events", "invalid"),
        (
            {"url": "https://hooks.example.com/", "events": ["usage.wat"]},
            "/events",
            "unknown_event",
        ),
        ({"url": "https://hooks.example.com/", "events": ["*"], "colour": 1}, "/colour", "invalid"),
    ],
)
def test_bad_endpoints_are_refused_naming_the_field(
    api: httpx.Client, body: dict[str, object], pointer: str, code: str
) -> None:
    found = assert_problem(api.post("/v1/webhook-endpoints", json=body), 422, "invalid_input")
    assert (found["errors"][0]["pointer"], found["errors"][0]["code"]) == (pointer, code)


def test_delivery_listing_refuses_an_unknown_status(api: httpx.Client) -> None:
    response = api.get("/v1/webhook-deliveries", params={"status": "lost"})
    assert assert_problem(response, 422, "invalid_input")["errors"][0]["pointer"] == "/status"


def test_retrying_an_unknown_delivery_is_404(api: httpx.Client) -> None:
    assert_problem(api.post("/v1/webhook-deliveries/msg_nope/retry"), 404, "not_found")


def test_notifications_of_an_unknown_customer_is_404(api: httpx.Client) -> None:
    assert_problem(api.get("/v1/customers/nobody/notifications"), 404, "not_found")
