"""Webhook delivery against a real HTTP receiver: signed per Standard Webhooks (checked
with the official library), retried with growing delays on failures, exactly one success."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from standardwebhooks.webhooks import Webhook
from tests.conftest import free_port
from tests.services.notification_receivers import (
    add_customer,
    add_endpoint,
    attempts_of,
    deliveries_of,
    receiver,
    rt,
)

from fairmeter.domain.notifications import MAX_ATTEMPTS, RETRY_CAP_US
from fairmeter.domain.windows import from_us, to_us
from fairmeter.services.clock import FixedClock
from fairmeter.services.delivery import DeliveryWorker
from fairmeter.services.notifications import NewNotification, notify
from fairmeter.services.runtime import Runtime
from fairmeter.services.webhooks import get_endpoint

__all__ = ["rt"]
DAY_US = 86_400 * 1_000_000


@pytest.fixture
def clock() -> FixedClock:
    # Receivers check webhook-timestamp against their own clock (±5 min): stand at now.
    return FixedClock(datetime.now(UTC).replace(microsecond=0))


@pytest.fixture
def worker(rt: Runtime) -> Iterator[DeliveryWorker]:
    found = DeliveryWorker(rt, jitter=lambda: 0.5)
    yield found
    found.stop()


def _notify(rt: Runtime, key: str = "usage:acme:80") -> str:
    note = NewNotification(
        customer="acme",
        kind="alert.usage_threshold",
        dedupe_key=key,
        title="80% of api_calls used",
        details={"meter": "api_calls", "usage": "800", "limit": "1000", "percent": "80"},
        rule_id="rule_1",
    )
    found = notify(rt.db, note, to_us(rt.clock.now()))
    assert found is not None
    return found


def _webhook(rt: Runtime, notification_id: str) -> Any:
    (found,) = [d for d in deliveries_of(rt, notification_id) if d["channel"] == "webhook"]
    return found


def _run_until_settled(rt: Runtime, worker: DeliveryWorker, notification_id: str) -> Any:
    """Run the worker at each scheduled attempt until the delivery is settled."""
    for _ in range(MAX_ATTEMPTS + 2):
        worker.run_once()
        delivery = _webhook(rt, notification_id)
        if delivery["status"] != "pending":
            return delivery
        rt.clock.at = from_us(delivery["next_attempt_us"])  # type: ignore[attr-defined]
    raise AssertionError("the delivery never settled")


def test_webhooks_are_signed_per_standard_webhooks(rt: Runtime, worker: DeliveryWorker) -> None:
    add_customer(rt, email=None)
    with receiver(200) as hooks:
        _endpoint_id, secret = add_endpoint(rt, hooks.url, ["alert.usage_threshold"])
        notification_id = _notify(rt)
        report = worker.run_once()
    assert report.delivered == 1
    (got,) = hooks.received
    payload = Webhook(secret).verify(got.body, got.headers)
    assert payload["type"] == "alert.usage_threshold"
    assert payload["data"]["id"] == notification_id
    assert payload["data"]["details"]["usage"] == "800"
    delivery = _webhook(rt, notification_id)
    assert got.headers["webhook-id"] == delivery["id"]
    assert got.headers["webhook-timestamp"] == str(int(rt.clock.now().timestamp()))
    assert (delivery["status"], delivery["last_status_code"]) == ("delivered", 200)
    assert delivery["delivered_us"] == to_us(rt.clock.now())
    with pytest.raises(Exception, match="signature"):
        Webhook("whsec_" + "A" * 32).verify(got.body, got.headers)


def test_a_receiver_that_fails_three_times_then_succeeds_gets_exactly_one_success(
    rt: Runtime, worker: DeliveryWorker
) -> None:
    add_customer(rt, email=None)
    with receiver(500, 502, 503, 200) as hooks:
        _, secret = add_endpoint(rt, hooks.url)
        notification_id = _notify(rt)
        delivery = _run_until_settled(rt, worker, notification_id)
        for _ in range(3):  # nothing more is sent, however long the worker runs
            rt.clock.advance(timedelta(days=2))  # type: ignore[attr-defined]
            worker.run_once()
    assert len(hooks.received) == 4
    assert {r.headers["webhook-id"] for r in hooks.received} == {delivery["id"]}
    for got in hooks.received:  # each attempt is signed afresh, with its own timestamp
        stamp = datetime.fromtimestamp(int(got.headers["webhook-timestamp"]), UTC)
        expected = Webhook(secret).sign(got.headers["webhook-id"], stamp, got.body.decode())
        assert got.headers["webhook-signature"] == expected
    assert (delivery["status"], delivery["attempts"]) == ("delivered", 4)
    codes = [a["status_code"] for a in attempts_of(rt, delivery["id"])]
    assert codes == [500, 502, 503, 200]


def test_a_receiver_down_for_the_whole_test_sees_attempts_at_growing_delays(
    rt: Runtime, worker: DeliveryWorker
) -> None:
    add_customer(rt, email=None)
    add_endpoint(rt, f"http://127.0.0.1:{free_port()}/down")  # nobody listens there
    notification_id = _notify(rt)
    delivery = _run_until_settled(rt, worker, notification_id)
    attempts = attempts_of(rt, delivery["id"])
    assert (delivery["status"], len(attempts)) == ("failed", MAX_ATTEMPTS)
    assert all(a["status_code"] is None and a["error"] for a in attempts)
    gaps = [b["at_us"] - a["at_us"] for a, b in itertools.pairwise(attempts)]
    growing = [g for g in gaps if g < RETRY_CAP_US]
    assert growing == sorted(growing) and len(set(growing)) == len(growing) >= 5
    assert gaps[len(growing) :] == [RETRY_CAP_US] * (len(gaps) - len(growing))
    span = attempts[-1]["at_us"] - attempts[0]["at_us"]
    assert 2.5 * DAY_US < span < 3.5 * DAY_US


def test_a_receiver_that_times_out_is_retried(rt: Runtime) -> None:
    add_customer(rt, email=None)
    worker = DeliveryWorker(rt, http=httpx.Client(timeout=0.2), jitter=lambda: 0.0)
    with receiver(200, delay=1.0) as hooks:
        add_endpoint(rt, hooks.url)
        notification_id = _notify(rt)
        worker.run_once()
        worker.stop()
    delivery = _webhook(rt, notification_id)
    assert (delivery["status"], delivery["last_error"]) == ("pending", "timed out")
    assert delivery["next_attempt_us"] == to_us(rt.clock.now()) + 10_000_000


def test_410_gone_disables_the_endpoint_and_fails_its_queued_deliveries(
    rt: Runtime, worker: DeliveryWorker
) -> None:
    add_customer(rt, email=None)
    with receiver(410) as hooks:
        endpoint_id, _ = add_endpoint(rt, hooks.url)
        first = _notify(rt, "one")
        rt.clock.advance(timedelta(seconds=1))  # type: ignore[attr-defined]
        second = _notify(rt, "two")
        worker.batch = 1  # one at a time: the second is still queued when the first is gone
        worker.run_once()
    assert len(hooks.received) == 1
    assert _webhook(rt, first)["status"] == "failed"
    assert _webhook(rt, first)["last_status_code"] == 410
    assert _webhook(rt, second)["status"] == "failed"  # queued to a disabled endpoint
    endpoint = get_endpoint(rt, endpoint_id)
    assert endpoint["disabled_us"] is not None
    assert "410" in endpoint["disabled_reason"]


def test_delivery_refuses_a_private_target_that_is_no_longer_allowed(
    rt: Runtime, worker: DeliveryWorker
) -> None:
    from dataclasses import replace

    from fairmeter.domain.notifications import TargetPolicy

    add_customer(rt, email=None)
    with receiver(200) as hooks:
        add_endpoint(rt, hooks.url)
        notification_id = _notify(rt)
        rt.channels = replace(rt.channels, targets=TargetPolicy())  # the allow-list is gone
        worker.run_once()
    assert hooks.received == []
    delivery = _webhook(rt, notification_id)
    assert delivery["status"] == "pending"
    assert "non-public address 127.0.0.1" in delivery["last_error"]
    assert len(attempts_of(rt, delivery["id"])) == 1
