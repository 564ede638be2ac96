"""A world for alert tests: the billing world, with usage recorded through `rt.ingest`
(so the hooks, and the alert evaluator, hear it) and notifications read back."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

import msgspec
from sqlalchemy import select
from tests.services.billing_world import EVENT_TYPE, World

from fairmeter.api.codec import parse_batch
from fairmeter.domain.windows import to_us
from fairmeter.services import alerts
from fairmeter.services.ingest import IngestRequest
from fairmeter.storage.tables import notifications

_JSON = msgspec.json.Encoder(decimal_format="number")


class AlertWorld(World):
    def use_many(self, usages: list[tuple[str, str, datetime, object]]) -> None:
        events = []
        for customer, meter, when, value in usages:
            self.sent += 1
            events.append(
                {
                    "specversion": "1.0",
                    "id": f"e{self.sent}",
                    "source": "tests",
                    "type": f"{EVENT_TYPE}.{meter}",
                    "subject": customer,
                    "time": when.isoformat(),
                    "data": {"value": value},
                }
            )
        now = self.clock.now()
        items, rejected = parse_batch(_JSON.encode(events), now, self.rt.policy)
        assert not rejected, rejected
        result = self.rt.ingest.record(IngestRequest(items, rejected, to_us(now)))
        assert result.accepted == len(events), result

    def rule(self, **body: Any) -> str:
        return alerts.create_rule(self.rt.db, self.rt.clock, body).id

    def drain(self) -> None:
        assert self.rt.alerts is not None
        self.rt.alerts.drain()

    def told(self, kind: str | None = None) -> list[dict[str, Any]]:
        """The notifications stored, oldest first (after evaluating what is pending)."""
        self.drain()
        query = select(notifications).order_by(notifications.c.created_us, notifications.c.id)
        if kind is not None:
            query = query.where(notifications.c.kind == kind)
        with self.rt.db.read() as conn:
            rows = [dict(r) for r in conn.execute(query).mappings()]
        for row in rows:
            row["details"] = json.loads(row["details"])
        return rows
