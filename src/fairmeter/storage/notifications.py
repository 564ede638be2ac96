"""Notifications and their outbox: the questions the notifier and the worker ask.

Every function takes the caller's connection: a notification and its deliveries are written
in the transaction of the change that caused them."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from sqlalchemy import and_, exists, literal, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection, RowMapping

from fairmeter.storage.tables import (
    customers,
    deliveries,
    delivery_attempts,
    invoices,
    notifications,
    webhook_endpoints,
)

PENDING, DELIVERING, DELIVERED, FAILED = "pending", "delivering", "delivered", "failed"


def insert_notification(conn: Connection, values: Mapping[str, Any]) -> bool:
    """Insert unless its dedupe_key exists; True when this call stored it. ON CONFLICT keeps
    the caller's PostgreSQL transaction usable when a concurrent one won the key."""
    insert = postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert
    statement = (
        insert(notifications)
        .values({**values, "details": json.dumps(values["details"], sort_keys=True)})
        .on_conflict_do_nothing(index_elements=["dedupe_key"])
        .returning(notifications.c.id)
    )
    return conn.execute(statement).first() is not None


def customer_email(conn: Connection, customer_key: str) -> str | None:
    found = conn.execute(select(customers.c.email).where(customers.c.key == customer_key))
    return found.scalar()


def enabled_endpoints(conn: Connection) -> list[RowMapping]:
    c = webhook_endpoints.c
    rows = conn.execute(select(webhook_endpoints).where(c.disabled_us.is_(None)).order_by(c.id))
    return list(rows.mappings())


def insert_deliveries(conn: Connection, rows: Sequence[Mapping[str, Any]]) -> None:
    if rows:
        conn.execute(deliveries.insert(), [dict(r) for r in rows])


def notification(conn: Connection, notification_id: str) -> RowMapping | None:
    query = select(notifications).where(notifications.c.id == notification_id)
    return conn.execute(query).mappings().first()


def notifications_by_id(conn: Connection, ids: Iterable[str]) -> dict[str, RowMapping]:
    wanted = sorted(ids)
    if not wanted:
        return {}
    rows = conn.execute(select(notifications).where(notifications.c.id.in_(wanted))).mappings()
    return {row["id"]: row for row in rows}


def endpoints_by_id(conn: Connection, ids: Iterable[str]) -> dict[str, RowMapping]:
    wanted = sorted(ids)
    if not wanted:
        return {}
    c = webhook_endpoints.c
    rows = conn.execute(select(webhook_endpoints).where(c.id.in_(wanted))).mappings()
    return {row["id"]: row for row in rows}


def customer_notifications(
    conn: Connection,
    customer_key: str,
    since_us: int | None = None,
    until_us: int | None = None,
    limit: int = 1000,
) -> list[RowMapping]:
    c = notifications.c
    query = select(notifications).where(c.customer_key == customer_key)
    if since_us is not None:
        query = query.where(c.created_us >= since_us)
    if until_us is not None:
        query = query.where(c.created_us < until_us)
    query = query.order_by(c.created_us, c.id).limit(limit)
    return list(conn.execute(query).mappings())


def deliveries_of(conn: Connection, notification_ids: Sequence[str]) -> list[RowMapping]:
    if not notification_ids:
        return []
    c = deliveries.c
    query = select(deliveries).where(c.notification_id.in_(list(notification_ids)))
    return list(conn.execute(query.order_by(c.created_us, c.id)).mappings())


def attempts_of(conn: Connection, delivery_ids: Sequence[str]) -> list[RowMapping]:
    if not delivery_ids:
        return []
    c = delivery_attempts.c
    query = select(delivery_attempts).where(c.delivery_id.in_(list(delivery_ids)))
    return list(conn.execute(query.order_by(c.at_us, c.id)).mappings())


def delivery(conn: Connection, delivery_id: str) -> RowMapping | None:
    query = select(deliveries).where(deliveries.c.id == delivery_id)
    return conn.execute(query).mappings().first()


def list_deliveries(
    conn: Connection, status: str | None, starting_after: str | None, limit: int
) -> list[RowMapping]:
    c = deliveries.c
    query = select(deliveries).where(c.channel == "webhook")
    if status is not None:
        query = query.where(c.status == status)
    if starting_after is not None:
        query = query.where(c.id > starting_after)
    return list(conn.execute(query.order_by(c.id).limit(limit)).mappings())


# --- the worker -----------------------------------------------------------------------------
def claim_due(
    conn: Connection, now_us: int, lease_us: int, token: str, channels: Sequence[str], limit: int
) -> list[RowMapping]:
    """Lease up to `limit` due deliveries to `token`. PostgreSQL skips rows another worker
    has locked; SQLite's caller holds the write lock, so select-then-update is atomic."""
    c = deliveries.c
    due = or_(
        and_(c.status == PENDING, c.next_attempt_us <= now_us),
        # A worker that died mid-delivery: its lease runs out and the row is due again.
        and_(c.status == DELIVERING, c.lease_until_us < now_us),
    )
    query = (
        select(c.id)
        .where(due, c.channel.in_(list(channels)))
        .order_by(c.next_attempt_us, c.id)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    ids = [row[0] for row in conn.execute(query)]
    if not ids:
        return []
    conn.execute(
        update(deliveries)
        .where(c.id.in_(ids))
        .values(status=DELIVERING, lease_until_us=now_us + lease_us, lease_token=token)
    )
    return list(conn.execute(select(deliveries).where(c.id.in_(ids))).mappings())


def record_attempt(
    conn: Connection,
    delivery_id: str,
    token: str,
    attempt: Mapping[str, Any],
    result: Mapping[str, Any],
) -> bool:
    """Store one attempt and its outcome, if the lease is still ours (False otherwise: the
    lease ran out and another worker owns the row now)."""
    c = deliveries.c
    done = conn.execute(
        update(deliveries)
        .where(c.id == delivery_id, c.lease_token == token, c.status == DELIVERING)
        .values(**result, attempts=c.attempts + 1, lease_token=None, lease_until_us=None)
    )
    if done.rowcount != 1:
        return False
    conn.execute(delivery_attempts.insert().values(delivery_id=delivery_id, **attempt))
    return True


def retry_now(conn: Connection, delivery_id: str, now_us: int) -> bool:
    """Put a failed delivery back in the queue, due now (the attempts so far are kept)."""
    c = deliveries.c
    done = conn.execute(
        update(deliveries)
        .where(c.id == delivery_id, c.status == FAILED)
        .values(status=PENDING, next_attempt_us=now_us, updated_us=now_us)
    )
    return done.rowcount == 1


def past_due_untold(conn: Connection, now_us: int, limit: int) -> list[str]:
    """Finalized invoices past their due date with no `invoice.past_due` notice yet."""
    c = invoices.c
    told = exists().where(notifications.c.dedupe_key == literal("invoice.past_due:") + c.id)
    query = (
        select(c.id)
        .where(c.status == "finalized", c.due_us < now_us, ~told)
        .order_by(c.due_us)
        .limit(limit)
    )
    return list(conn.execute(query).scalars())


# --- webhook endpoints ----------------------------------------------------------------------
def insert_endpoint(conn: Connection, values: Mapping[str, Any]) -> None:
    conn.execute(webhook_endpoints.insert().values(**values))


def endpoint(conn: Connection, endpoint_id: str) -> RowMapping | None:
    query = select(webhook_endpoints).where(webhook_endpoints.c.id == endpoint_id)
    return conn.execute(query).mappings().first()


def list_endpoints(conn: Connection) -> list[RowMapping]:
    query = select(webhook_endpoints).order_by(webhook_endpoints.c.id)
    return list(conn.execute(query).mappings())


def update_endpoint(conn: Connection, endpoint_id: str, values: Mapping[str, Any]) -> bool:
    query = update(webhook_endpoints).where(webhook_endpoints.c.id == endpoint_id)
    return conn.execute(query.values(**values)).rowcount == 1


def delete_endpoint(conn: Connection, endpoint_id: str, now_us: int) -> bool:
    """Remove an endpoint; its deliveries still queued fail (their history stays)."""
    fail_pending(conn, endpoint_id, "the endpoint was deleted", now_us)
    query = webhook_endpoints.delete().where(webhook_endpoints.c.id == endpoint_id)
    return conn.execute(query).rowcount == 1


def fail_pending(conn: Connection, endpoint_id: str, reason: str, now_us: int) -> None:
    c = deliveries.c
    conn.execute(
        update(deliveries)
        # Deliveries in flight settle by themselves (as failed, next time they are due).
        .where(c.endpoint_id == endpoint_id, c.status == PENDING)
        .values(status=FAILED, last_error=reason, lease_token=None, updated_us=now_us)
    )
