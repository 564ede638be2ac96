"""The outbox: a notification and its deliveries are written in the caller's transaction,
once per dedupe key, one delivery per channel that wants it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select
from tests.services.notification_receivers import add_customer, add_endpoint, rt

from fairmeter.domain.windows import to_us
from fairmeter.services.hooks import Lifecycle, LifecycleNotice
from fairmeter.services.notifications import NewNotification, enqueue, notify
from fairmeter.services.runtime import Runtime
from fairmeter.storage import notifications as store
from fairmeter.storage.tables import deliveries, notifications

__all__ = ["rt"]


def _note(key: str = "usage:acme:api_calls:80", customer: str = "acme") -> NewNotification:
    return NewNotification(
        customer=customer,
        kind="alert.usage_threshold",
        dedupe_key=key,
        title="80% of api_calls used",
        details={"meter": "api_calls", "usage": "800", "limit": "1000", "percent": "80"},
        rule_id="rule_1",
    )


def _count(rt: Runtime, table) -> int:  # type: ignore[no-untyped-def]
    with rt.db.read() as conn:
        return int(conn.execute(select(func.count()).select_from(table)).scalar_one())


def test_enqueue_writes_one_delivery_per_matching_endpoint_and_the_email(rt: Runtime) -> None:
    add_customer(rt)
    add_endpoint(rt, "http://127.0.0.1:9/all", ["*"])
    add_endpoint(rt, "http://127.0.0.1:9/usage", ["alert.usage_threshold"])
    add_endpoint(rt, "http://127.0.0.1:9/other", ["invoice.issued"])
    notification_id = notify(rt.db, _note(), 1_000)
    assert notification_id is not None
    with rt.db.read() as conn:
        rows = store.deliveries_of(conn, [notification_id])
    channels = sorted((r["channel"], r["recipient"] or r["endpoint_id"][:3]) for r in rows)
    assert channels == [("email", "billing@acme.test"), ("webhook", "we_"), ("webhook", "we_")]
    assert all(r["status"] == "pending" and r["next_attempt_us"] == 1_000 for r in rows)


def test_a_second_enqueue_with_the_same_dedupe_key_does_nothing(rt: Runtime) -> None:
    add_customer(rt)
    add_endpoint(rt, "http://127.0.0.1:9/all")
    assert notify(rt.db, _note(), 1) is not None
    with rt.db.write() as conn:
        assert enqueue(conn, _note(), 2) is None
    assert _count(rt, notifications) == 1
    assert _count(rt, deliveries) == 2


def test_a_rolled_back_change_leaves_no_notification_and_no_delivery(rt: Runtime) -> None:
    add_customer(rt)
    add_endpoint(rt, "http://127.0.0.1:9/all")
    with pytest.raises(RuntimeError), rt.db.write() as conn:
        assert enqueue(conn, _note(), 1) is not None
        raise RuntimeError("the change that caused it failed")
    assert _count(rt, notifications) == 0
    assert _count(rt, deliveries) == 0
    # The key is free again: the change, retried, is told.
    assert notify(rt.db, _note(), 2) is not None


def test_a_customer_without_email_and_no_endpoint_gets_a_notification_without_delivery(
    rt: Runtime,
) -> None:
    add_customer(rt, email=None)
    assert notify(rt.db, _note(), 1) is not None
    assert (_count(rt, notifications), _count(rt, deliveries)) == (1, 0)


def test_disabled_endpoints_get_no_delivery(rt: Runtime) -> None:
    from fairmeter.services.webhooks import EndpointChanges, update_endpoint

    add_customer(rt, email=None)
    endpoint_id, _ = add_endpoint(rt, "http://127.0.0.1:9/all")
    update_endpoint(rt, endpoint_id, EndpointChanges(enabled=False))
    notify(rt.db, _note(), 1)
    assert _count(rt, deliveries) == 0


def test_every_lifecycle_notice_becomes_one_notification(rt: Runtime) -> None:
    add_customer(rt)
    at = datetime(2026, 11, 15, 12, 30, tzinfo=UTC)
    notice = LifecycleNotice(
        Lifecycle.LIMIT_REACHED,
        "acme",
        at,
        {"meter": "api_calls", "usage": "1000", "limit": "1000"},
        dedupe_key="limit.reached:acme:api_calls:1",
    )
    rt.hooks.lifecycle(notice)
    rt.hooks.lifecycle(notice)  # told twice (two processes, say): stored once
    rt.clock.advance(timedelta(seconds=1))  # type: ignore[attr-defined]
    rt.hooks.lifecycle(LifecycleNotice(Lifecycle.ACCESS_SUSPENDED, "acme", at))
    with rt.db.read() as conn:
        found = store.customer_notifications(conn, "acme")
    assert [(n["kind"], n["dedupe_key"]) for n in found] == [
        ("limit.reached", "limit.reached:acme:api_calls:1"),
        ("access.suspended", f"access.suspended:acme:{to_us(at)}"),
    ]
    assert found[0]["title"] == "Limit reached: api_calls"
