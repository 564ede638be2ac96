"""A small billing world for tests: meters, customers, plans, subscriptions and usage,
made through the same services the API calls (customer terms straight into their columns)."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

import msgspec
from sqlalchemy import update

from fairmeter.api.codec import parse_batch
from fairmeter.domain.customers import parse_customer
from fairmeter.domain.meters import parse_meter
from fairmeter.domain.plans import parse_plan
from fairmeter.domain.windows import to_us
from fairmeter.services import catalog
from fairmeter.services.clock import FixedClock
from fairmeter.services.ingest import record_events
from fairmeter.services.plans import create_plan
from fairmeter.services.runtime import Runtime
from fairmeter.services.subscriptions import create_subscription
from fairmeter.storage.tables import customers

_JSON = msgspec.json.Encoder(decimal_format="number")
EVENT_TYPE = "api.request"


class World:
    def __init__(self, rt: Runtime):
        self.rt = rt
        self.sent = 0
        assert isinstance(rt.clock, FixedClock)
        self.clock: FixedClock = rt.clock

    def at(self, moment: datetime) -> World:
        self.clock.at = moment
        return self

    def meter(self, key: str = "calls", aggregation: str = "count") -> World:
        body: dict[str, object] = {"key": key, "event_type": f"{EVENT_TYPE}.{key}"}
        body["aggregation"] = aggregation
        if aggregation != "count":
            body["value_property"] = "$.value"
        catalog.create_meter(self.rt.db, self.rt.clock, parse_meter(body))
        return self

    def customer(
        self,
        key: str = "acme",
        threshold: str | None = None,
        net_terms_days: int | None = None,
        **fields: Any,
    ) -> World:
        catalog.create_customer(self.rt.db, self.rt.clock, parse_customer({"key": key, **fields}))
        with self.rt.db.write() as conn:
            conn.execute(
                update(customers)
                .where(customers.c.key == key)
                .values(invoice_threshold=threshold, net_terms_days=net_terms_days)
            )
        return self

    def plan(self, key: str = "base", **body: Any) -> World:
        create_plan(self.rt.db, self.rt.clock, parse_plan({"key": key, "currency": "USD", **body}))
        return self

    def subscribe(self, customer: str, plan: str, start: datetime) -> str:
        view = create_subscription(self.rt.db, self.rt.clock, customer, plan, start)
        return view.subscription.id

    def use(self, customer: str, meter: str, when: datetime, value: object = 1) -> None:
        """One event of `meter` at `when`, received now (the clock's time)."""
        self.use_many([(customer, meter, when, value)])

    def use_many(self, usages: list[tuple[str, str, datetime, object]]) -> None:
        """A batch of (customer, meter, time, value) events, received now."""
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
        record_events(self.rt.db, items, rejected, received_us=to_us(now))


def usd(minor: int) -> Decimal:
    return Decimal(minor) / 100
