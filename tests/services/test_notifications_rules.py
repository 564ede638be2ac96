"""Delivery rules: the retry schedule, the target policy, Standard Webhooks signing; leases
that run out; invoices past due told once."""

from __future__ import annotations

import base64
from datetime import UTC, datetime, timedelta

import pytest
from standardwebhooks.webhooks import Webhook
from tests.services.billing_world import World
from tests.services.notification_receivers import (
    add_customer,
    add_endpoint,
    attempts_of,
    deliveries_of,
    receiver,
    rt,
)

from fairmeter.domain.notifications import (
    MAX_ATTEMPTS,
    RETRY_CAP_US,
    TargetPolicy,
    new_secret,
    retry_delay_us,
    sign,
)
from fairmeter.domain.windows import to_us
from fairmeter.services.billing import run_billing
from fairmeter.services.delivery import DeliveryWorker
from fairmeter.services.notices import sweep_past_due
from fairmeter.services.notifications import NewNotification, notify
from fairmeter.services.runtime import Runtime
from fairmeter.storage import notifications as store

__all__ = ["rt"]
HOUR_US = 3600 * 1_000_000


def test_the_retry_schedule_grows_exponentially_to_a_cap_and_ends_near_three_days() -> None:
    delays = [retry_delay_us(n, 0.0) for n in range(1, MAX_ATTEMPTS)]
    assert delays[:6] == [10_000_000 * 5**k for k in range(6)]
    assert delays[6:] == [RETRY_CAP_US, RETRY_CAP_US]
    assert 70 * HOUR_US < sum(d for d in delays if d) < 72 * HOUR_US
    assert retry_delay_us(MAX_ATTEMPTS, 0.0) is None


def test_jitter_only_lengthens_a_delay_by_up_to_a_fifth_and_never_past_the_cap() -> None:
    assert retry_delay_us(2, 0.999) == int(50_000_000 * 1.1998)
    assert retry_delay_us(7, 0.999) == RETRY_CAP_US
    with pytest.raises(ValueError):
        retry_delay_us(0, 0.0)


def test_signatures_match_the_official_standard_webhooks_library() -> None:
    secret = new_secret(bytes(range(32)))
    body = b'{"type":"limit.reached"}'
    at = datetime(2026, 11, 15, 12, tzinfo=UTC)
    expected = Webhook(secret).sign("msg_1", at, body.decode())
    assert sign(secret, "msg_1", int(at.timestamp()), body) == expected
    assert base64.b64decode(secret.removeprefix("whsec_")) == bytes(range(32))


@pytest.mark.parametrize(
    ("allowed", "address", "refused"),
    [
        ((), "93.184.216.34", False),
        ((), "127.0.0.1", True),
        ((), "10.0.0.5", True),
        ((), "172.16.3.4", True),
        ((), "169.254.169.254", True),
        ((), "::1", True),
        ((), "fe80::1", True),
        ((), "0.0.0.0", True),
        (("127.0.0.1",), "127.0.0.1", False),
        (("10.0.0.0/8",), "10.9.8.7", False),
        (("10.0.0.0/8",), "192.168.1.1", True),
    ],
)
def test_private_targets_are_refused_unless_allow_listed(
    allowed: tuple[str, ...], address: str, refused: bool
) -> None:
    policy = TargetPolicy.parse(allowed)
    assert (policy.refusal("hooks.example.com", [address]) is not None) is refused


def test_an_allow_listed_host_name_is_trusted_whatever_it_resolves_to() -> None:
    policy = TargetPolicy.parse(["hooks.internal"])
    assert policy.refusal("hooks.internal", ["10.0.0.1"]) is None
    assert policy.refusal("other.internal", ["10.0.0.1"]) is not None


def test_a_delivery_whose_worker_died_is_taken_over_when_its_lease_runs_out(rt: Runtime) -> None:
    add_customer(rt, email=None)
    with receiver(200) as hooks:
        add_endpoint(rt, hooks.url)
        notification_id = notify(rt.db, NewNotification("acme", "limit.reached", "k", "L"), 1)
        assert notification_id is not None
        now_us = to_us(rt.clock.now())
        with rt.db.write() as conn:  # a worker claims it, then dies before sending
            (claimed,) = store.claim_due(conn, now_us, 60_000_000, "dead", ["webhook"], 10)
        with DeliveryWorker(rt) as worker:
            assert worker.run_once().handled == 0  # still leased
            rt.clock.advance(timedelta(seconds=61))  # type: ignore[attr-defined]
            assert worker.run_once().delivered == 1
        with rt.db.write() as conn:  # the dead worker's late result is not recorded
            attempt = {"at_us": now_us, "status_code": 500, "error": "late", "duration_ms": 1}
            assert not store.record_attempt(conn, claimed["id"], "dead", attempt, {})
    (delivery,) = deliveries_of(rt, notification_id)
    assert delivery["status"] == "delivered"
    assert [a["status_code"] for a in attempts_of(rt, delivery["id"])] == [200]
    assert len(hooks.received) == 1


def test_an_invoice_past_due_is_told_once(rt: Runtime) -> None:
    sep = datetime(2026, 9, 1, tzinfo=UTC)
    world = World(rt).at(sep).meter("calls", "sum")
    world.customer("acme", name="Acme", net_terms_days=10)
    charge = {"meter": "calls", "model": "per_unit", "unit_price": "1"}
    world.plan("pro", name="Pro", base_fee="10", charges=[charge])
    world.subscribe("acme", "pro", sep)
    world.at(datetime(2026, 10, 3, tzinfo=UTC))
    (invoice,) = run_billing(rt).finalized
    assert invoice.due_us is not None
    assert sweep_past_due(rt, invoice.due_us) == 0  # due, not past due
    assert sweep_past_due(rt, invoice.due_us + 1) == 1
    assert sweep_past_due(rt, invoice.due_us + 2) == 0
    with rt.db.read() as conn:
        kinds = [n["kind"] for n in store.customer_notifications(conn, "acme")]
    assert kinds == ["invoice.issued", "invoice.past_due"]
