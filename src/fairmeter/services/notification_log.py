"""The proof of warning: every notification a customer was sent, with its channels, every
delivery attempt and the outcome; failed webhook deliveries and their replay."""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy.engine import Connection, RowMapping

from fairmeter.domain.errors import Conflict, NotFound
from fairmeter.domain.windows import to_us
from fairmeter.services import catalog
from fairmeter.services.runtime import Runtime
from fairmeter.storage import notifications as store

# Lifecycle notices about an invoice are not warnings *before* the bill.
_NOT_WARNINGS = ("invoice.issued", "invoice.past_due")


@dataclass(frozen=True)
class DeliveryRecord:
    delivery: RowMapping
    attempts: tuple[RowMapping, ...]


@dataclass(frozen=True)
class NotificationRecord:
    notification: RowMapping
    deliveries: tuple[DeliveryRecord, ...]

    @property
    def details(self) -> dict[str, Any]:
        found: dict[str, Any] = json.loads(self.notification["details"])
        return found

    @property
    def status(self) -> str:
        """delivered: at least one channel reached the customer; pending: none yet, some
        still trying; failed: every channel gave up; not_sent: no channel was configured."""
        states = {d.delivery["status"] for d in self.deliveries}
        if not states:
            return "not_sent"
        if store.DELIVERED in states:
            return "delivered"
        if states & {store.PENDING, store.DELIVERING}:
            return "pending"
        return "failed"


def customer_log(
    rt: Runtime, customer_key: str, since_us: int | None = None, until_us: int | None = None
) -> list[NotificationRecord]:
    catalog.get_customer(rt.db, customer_key)  # 404 for an unknown customer
    with rt.db.read() as conn:
        found = store.customer_notifications(conn, customer_key, since_us, until_us)
        return _records(conn, found)


def warnings_between(
    rt: Runtime, customer_key: str, start_us: int, end_us: int
) -> list[NotificationRecord]:
    """The warnings (not invoice notices) a customer was sent in [start, end)."""
    with rt.db.read() as conn:
        found = store.customer_notifications(conn, customer_key, start_us, end_us)
        kept = [n for n in found if n["kind"] not in _NOT_WARNINGS]
        return _records(conn, kept)


def _records(conn: Connection, found: Sequence[RowMapping]) -> list[NotificationRecord]:
    deliveries = store.deliveries_of(conn, [n["id"] for n in found])
    attempts = store.attempts_of(conn, [d["id"] for d in deliveries])
    by_delivery: dict[str, list[RowMapping]] = defaultdict(list)
    for attempt in attempts:
        by_delivery[attempt["delivery_id"]].append(attempt)
    by_notification: dict[str, list[DeliveryRecord]] = defaultdict(list)
    for delivery in deliveries:
        record = DeliveryRecord(delivery, tuple(by_delivery[delivery["id"]]))
        by_notification[delivery["notification_id"]].append(record)
    return [NotificationRecord(n, tuple(by_notification[n["id"]])) for n in found]


def list_webhook_deliveries(
    rt: Runtime, status: str | None, starting_after: str | None, limit: int
) -> list[DeliveryRecord]:
    with rt.db.read() as conn:
        found = store.list_deliveries(conn, status, starting_after, limit)
        attempts = store.attempts_of(conn, [d["id"] for d in found])
    by_delivery: dict[str, list[RowMapping]] = defaultdict(list)
    for attempt in attempts:
        by_delivery[attempt["delivery_id"]].append(attempt)
    return [DeliveryRecord(d, tuple(by_delivery[d["id"]])) for d in found]


def retry_delivery(rt: Runtime, delivery_id: str) -> DeliveryRecord:
    """Queue a failed webhook delivery again, due now (409 unless it failed, or when its
    endpoint is disabled or deleted)."""
    now_us = to_us(rt.clock.now())
    with rt.db.write() as conn:
        delivery = store.delivery(conn, delivery_id)
        if delivery is None or delivery["channel"] != "webhook":
            raise NotFound(f"no webhook delivery {delivery_id!r}")
        endpoint = store.endpoint(conn, delivery["endpoint_id"])
        if endpoint is None or endpoint["disabled_us"] is not None:
            raise Conflict(
                "the delivery's endpoint is disabled or deleted; enable it first",
                reason="endpoint_disabled",
            )
        if not store.retry_now(conn, delivery_id, now_us):
            raise Conflict(
                f"the delivery is {delivery['status']}; only a failed one can be retried",
                reason="not_failed",
            )
        again = store.delivery(conn, delivery_id)
        assert again is not None
        return DeliveryRecord(again, tuple(store.attempts_of(conn, [delivery_id])))
