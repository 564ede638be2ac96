"""Notifications: what a customer is told, written with its outbox deliveries.

`enqueue` runs in the caller's transaction, so a notification exists if and only if the
change that caused it was committed; the worker (services/delivery.py) sends it later. The
UNIQUE `dedupe_key` makes "each crossing is told once" hold across processes: a second
enqueue with the same key does nothing, whoever wins the race."""

from __future__ import annotations

import json
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy.engine import Connection

from fairmeter.domain.notifications import matches_event
from fairmeter.domain.windows import to_us
from fairmeter.services.clock import Clock
from fairmeter.services.hooks import LifecycleListener, LifecycleNotice
from fairmeter.storage import notifications as store
from fairmeter.storage.database import Database


@dataclass(frozen=True)
class NewNotification:
    customer: str
    # "alert.usage_threshold" | "alert.spend_threshold" | "alert.budget" | "alert.forecast"
    # | a Lifecycle value ("limit.reached", ...)
    kind: str
    dedupe_key: str  # unique forever: a second enqueue with the same key does nothing
    title: str  # one line for people
    # JSON-ready; keys the templates use when present: meter, unit, usage, limit, allowance,
    # threshold, percent, amount, budget, currency, projected_usage, projected_total,
    # crossing_at, period_start, period_end, plan, next_plan, rule_id, invoice_id,
    # invoice_number
    details: Mapping[str, object] = field(default_factory=dict)
    rule_id: str | None = None
    period_start_us: int | None = None
    period_end_us: int | None = None


def new_id(prefix: str, now_us: int) -> str:
    """Sortable by creation time, unguessable after it."""
    return f"{prefix}_{now_us:013x}{secrets.token_hex(6)}"


def enqueue(conn: Connection, note: NewNotification, now_us: int) -> str | None:
    """In the caller's transaction: insert the notification (None if its dedupe_key exists
    already) and one outbox delivery per channel: each enabled webhook endpoint whose
    `events` match `kind` (exact name or "*"), and an email to the customer's email.

    The email delivery is queued whenever the customer has an address: a worker configured
    with SMTP sends it; one without SMTP leaves it queued (a message is never lost because
    SMTP was set up after the fact)."""
    notification_id = new_id("ntf", now_us)
    stored = store.insert_notification(
        conn,
        {
            "id": notification_id,
            "customer_key": note.customer,
            "kind": note.kind,
            "dedupe_key": note.dedupe_key,
            "title": note.title,
            "details": dict(note.details),
            "rule_id": note.rule_id,
            "period_start_us": note.period_start_us,
            "period_end_us": note.period_end_us,
            "created_us": now_us,
        },
    )
    if not stored:
        return None
    store.insert_deliveries(conn, _deliveries(conn, notification_id, note, now_us))
    return notification_id


def notify(db: Database, note: NewNotification, now_us: int) -> str | None:
    """`enqueue` in a transaction of its own."""
    with db.write() as conn:
        return enqueue(conn, note, now_us)


def _deliveries(
    conn: Connection, notification_id: str, note: NewNotification, now_us: int
) -> list[dict[str, object]]:
    base = {
        "notification_id": notification_id,
        "endpoint_id": None,
        "recipient": None,
        "status": store.PENDING,
        "attempts": 0,
        "next_attempt_us": now_us,
        "created_us": now_us,
        "updated_us": now_us,
    }
    rows: list[dict[str, object]] = []
    for endpoint in store.enabled_endpoints(conn):
        if matches_event(json.loads(endpoint["events"]), note.kind):
            rows.append(
                {
                    **base,
                    "id": new_id("msg", now_us),
                    "channel": "webhook",
                    "endpoint_id": endpoint["id"],
                }
            )
    email = store.customer_email(conn, note.customer)
    if email:
        rows.append({**base, "id": new_id("msg", now_us), "channel": "email", "recipient": email})
    return rows


# --- lifecycle notices ----------------------------------------------------------------------
_TITLES = {
    "limit.reached": "Limit reached",
    "plan.upgraded": "Plan upgraded",
    "access.throttled": "Access throttled",
    "access.suspended": "Access suspended",
    "access.restored": "Access restored",
    "invoice.issued": "Invoice issued",
    "invoice.past_due": "Invoice past due",
}


def from_notice(notice: LifecycleNotice) -> NewNotification:
    """A lifecycle notice as a notification; without a dedupe key, the notice's kind,
    customer and instant identify it."""
    at_us = to_us(notice.at)
    kind = notice.kind.value
    details = dict(notice.details)
    return NewNotification(
        customer=notice.customer,
        kind=kind,
        dedupe_key=notice.dedupe_key or f"{kind}:{notice.customer}:{at_us}",
        title=_title(kind, details),
        details=details,
        period_start_us=_us(details.get("period_start")),
        period_end_us=_us(details.get("period_end")),
    )


def _title(kind: str, details: Mapping[str, object]) -> str:
    base = _TITLES.get(kind, kind)
    if kind == "plan.upgraded" and details.get("next_plan"):
        return f"{base} from {details.get('plan')} to {details['next_plan']}"
    what = details.get("meter") or details.get("invoice_number")
    return f"{base}: {what}" if what else base


def _us(value: object) -> int | None:
    if isinstance(value, int):
        return value
    if isinstance(value, str):
        try:
            return to_us(datetime.fromisoformat(value.replace("Z", "+00:00")))
        except ValueError:
            return None
    return None


def lifecycle_listener(db: Database, clock: Clock) -> LifecycleListener:
    """The listener wiring registers on `rt.hooks.on_lifecycle`: every notice becomes a
    notification, in a transaction of its own (notices are told after their change
    committed, outside any write transaction)."""

    def listen(notice: LifecycleNotice) -> None:
        notify(db, from_notice(notice), to_us(clock.now()))

    return listen
