"""The proof of warning over HTTP: failed deliveries are listed and replayed; a customer's
notifications show every attempt and the outcome; invoices link to the warnings sent in
their period."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from standardwebhooks.webhooks import Webhook
from tests.api.conftest import assert_problem
from tests.services.billing_world import World
from tests.services.notification_receivers import add_customer, receiver, rt

from fairmeter.domain.keys import Scope
from fairmeter.domain.notifications import MAX_ATTEMPTS
from fairmeter.domain.windows import to_us
from fairmeter.services.delivery import DeliveryWorker
from fairmeter.services.keys import create_key
from fairmeter.services.notifications import NewNotification, notify
from fairmeter.services.runtime import Runtime

__all__ = ["rt"]


@pytest.fixture
def client(rt: Runtime) -> Iterator[httpx.Client]:
    from fairmeter.api.app import create_app

    key = create_key(rt.db, rt.clock, Scope.ADMIN, "tests")
    with TestClient(create_app(rt)) as found:
        found.headers["Authorization"] = f"Bearer {key}"
        yield found


@pytest.fixture
def worker(rt: Runtime) -> Iterator[DeliveryWorker]:
    found = DeliveryWorker(rt, jitter=lambda: 0.0)
    yield found
    found.stop()


def _warn(rt: Runtime, key: str = "acme:80", customer: str = "acme") -> str:
    note = NewNotification(
        customer=customer,
        kind="alert.usage_threshold",
        dedupe_key=key,
        title="80% of calls used",
        details={"meter": "calls", "usage": "800", "limit": "1000", "percent": "80"},
        rule_id="rule_7",
    )
    found = notify(rt.db, note, to_us(rt.clock.now()))
    assert found is not None
    return found


def _until_settled(rt: Runtime, worker: DeliveryWorker, client: httpx.Client, id_: str) -> Any:
    for _ in range(MAX_ATTEMPTS + 2):
        worker.run_once()
        found = [d for d in client.get("/v1/webhook-deliveries").json()["data"] if d["id"] == id_]
        if found[0]["status"] != "pending":
            return found[0]
        rt.clock.at = datetime.fromisoformat(found[0]["next_attempt_at"])  # type: ignore[attr-defined]
    raise AssertionError("never settled")


def test_a_failed_delivery_is_listed_and_replayed_once(
    rt: Runtime, client: httpx.Client, worker: DeliveryWorker
) -> None:
    add_customer(rt, email=None)
    with receiver(*([500] * MAX_ATTEMPTS), 200) as hooks:
        client.post("/v1/webhook-endpoints", json={"url": hooks.url, "events": ["*"]})
        _warn(rt)
        (queued,) = client.get("/v1/webhook-deliveries").json()["data"]
        failed = _until_settled(rt, worker, client, queued["id"])
        assert failed["status"] == "failed"
        listed = client.get("/v1/webhook-deliveries", params={"status": "failed"}).json()["data"]
        assert [d["id"] for d in listed] == [queued["id"]]
        assert [a["response_code"] for a in listed[0]["attempts"]] == [500] * MAX_ATTEMPTS
        replay = client.post(f"/v1/webhook-deliveries/{queued['id']}/retry")
        assert replay.status_code == 202, replay.text
        assert replay.json()["status"] == "pending"
        assert worker.run_once().delivered == 1
        again = client.post(f"/v1/webhook-deliveries/{queued['id']}/retry")
    assert_problem(again, 409, "conflict")
    assert len(hooks.received) == MAX_ATTEMPTS + 1
    assert client.get("/v1/webhook-deliveries", params={"status": "failed"}).json()["data"] == []


def test_notifications_list_every_attempt_and_the_final_status(
    rt: Runtime, client: httpx.Client, worker: DeliveryWorker
) -> None:
    add_customer(rt)  # has an email; no SMTP here, so the email stays queued
    with receiver(503, 200) as hooks:
        client.post("/v1/webhook-endpoints", json={"url": hooks.url, "events": ["*"]})
        notification_id = _warn(rt)
        first = rt.clock.now()
        worker.run_once()
        rt.clock.advance(timedelta(minutes=1))  # type: ignore[attr-defined]
        worker.run_once()
    (found,) = client.get("/v1/customers/acme/notifications").json()["data"]
    assert found["id"] == notification_id
    assert (found["kind"], found["rule_id"], found["status"]) == (
        "alert.usage_threshold",
        "rule_7",
        "delivered",
    )
    assert found["details"]["usage"] == "800"  # the usage at the time of the warning
    assert found["channels"] == ["email", "webhook"]
    webhook = next(d for d in found["deliveries"] if d["channel"] == "webhook")
    email = next(d for d in found["deliveries"] if d["channel"] == "email")
    assert [a["response_code"] for a in webhook["attempts"]] == [503, 200]
    assert webhook["attempts"][0]["at"] == first.isoformat().replace("+00:00", "Z")
    assert (webhook["status"], webhook["response_code"]) == ("delivered", 200)
    assert webhook["delivered_at"] == rt.clock.now().isoformat().replace("+00:00", "Z")
    assert (email["status"], email["recipient"], email["attempts"]) == (
        "pending",
        "billing@acme.test",
        [],
    )


def test_an_invoice_links_to_the_warnings_sent_in_its_period(
    rt: Runtime, client: httpx.Client
) -> None:
    sep = datetime(2026, 9, 1, tzinfo=UTC)
    world = World(rt).at(sep).meter("calls", "sum")
    world.customer("acme", name="Acme", email="billing@acme.test")
    world.customer("other", name="Other")
    charge = {"meter": "calls", "model": "per_unit", "unit_price": "1"}
    world.plan("pro", name="Pro", base_fee="10", charges=[charge])
    world.subscribe("acme", "pro", sep)
    world.at(sep + timedelta(days=10))
    in_period = _warn(rt, "in")
    _warn(rt, "theirs", customer="other")
    world.at(datetime(2026, 10, 3, tzinfo=UTC))
    after = _warn(rt, "after")
    run = client.post("/v1/billing/run").json()
    (issued,) = [i for i in run["finalized"] if i["customer"] == "acme"]
    invoice = client.get(f"/v1/invoices/{issued['id']}").json()
    assert [w["id"] for w in invoice["warnings"]] == [in_period]
    assert invoice["warnings"][0]["title"] == "80% of calls used"
    assert invoice["warnings"][0]["created_at"] == "2026-09-11T00:00:00Z"
    told = client.get("/v1/customers/acme/notifications").json()["data"]
    assert [n["id"] for n in told if n["kind"] == "alert.usage_threshold"] == [in_period, after]
    (notice,) = [n for n in told if n["kind"] == "invoice.issued"]
    assert notice["details"]["invoice_number"] == invoice["number"]
    assert notice["title"] == f"Invoice {invoice['number']} issued: USD 10.00"


def test_suspending_and_restoring_a_customer_is_signed_and_delivered(
    rt: Runtime, client: httpx.Client, worker: DeliveryWorker
) -> None:
    add_customer(rt, email=None)
    with receiver(200) as hooks:
        endpoint = client.post(
            "/v1/webhook-endpoints",
            json={"url": hooks.url, "events": ["access.suspended", "access.restored"]},
        ).json()
        assert client.post("/v1/customers/acme/suspend", json={"reason": "unpaid"}).is_success
        rt.clock.advance(timedelta(minutes=5))  # type: ignore[attr-defined]
        assert client.post("/v1/customers/acme/restore").is_success
        assert worker.run_once().delivered == 2
    kinds = [_verified(endpoint["secret"], r.body, r.headers)["type"] for r in hooks.received]
    assert sorted(kinds) == ["access.restored", "access.suspended"]
    told = client.get("/v1/customers/acme/notifications").json()["data"]
    assert [(n["kind"], n["status"]) for n in told] == [
        ("access.suspended", "delivered"),
        ("access.restored", "delivered"),
    ]
    assert told[0]["details"]["reason"] == "unpaid"


def _verified(secret: str, body: bytes, headers: dict[str, str]) -> Any:
    """The official library's signature check; the test clock stands in the past, so the
    age check (against the real clock) is left out."""
    stamp = datetime.fromtimestamp(int(headers["webhook-timestamp"]), UTC)
    expected = Webhook(secret).sign(headers["webhook-id"], stamp, body.decode())
    assert headers["webhook-signature"] == expected
    return json.loads(body)
