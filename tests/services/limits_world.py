"""A small world for limits tests: meters, a customer, plans with limits and a subscription,
made through the same services the API calls."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from fairmeter.domain.customers import parse_customer
from fairmeter.domain.meters import parse_meter
from fairmeter.domain.plans import parse_plan
from fairmeter.services import catalog
from fairmeter.services.clock import FixedClock
from fairmeter.services.entitlements import Enforcer
from fairmeter.services.plans import create_plan
from fairmeter.services.runtime import Runtime
from fairmeter.services.subscriptions import create_subscription

EVENT_TYPE = "api.request"
D = Decimal


class Limited:
    def __init__(self, rt: Runtime):
        self.rt = rt
        assert rt.limits is not None
        self.engine: Enforcer = rt.limits
        assert isinstance(rt.clock, FixedClock)
        self.clock: FixedClock = rt.clock

    def meter(self, key: str = "calls", aggregation: str = "count") -> Limited:
        body: dict[str, object] = {"key": key, "event_type": EVENT_TYPE, "aggregation": aggregation}
        if aggregation != "count":
            body["value_property"] = f"$.{key}"
        catalog.create_meter(self.rt.db, self.rt.clock, parse_meter(body))
        return self

    def customer(self, key: str = "acme") -> Limited:
        catalog.create_customer(
            self.rt.db, self.rt.clock, parse_customer({"key": key, "currency": "USD"})
        )
        return self

    def plan(
        self,
        key: str = "starter",
        meter: str = "calls",
        limit: str | None = "100",
        policy: str = "block",
        next_plan: str | None = None,
        **charge: Any,
    ) -> Limited:
        body: dict[str, object] = {"meter": meter, "model": "per_unit", "unit_price": "0.01"}
        body.update(charge)
        if limit is not None:
            body.update(limit=limit, policy=policy)
        plan: dict[str, object] = {"key": key, "currency": "USD", "charges": [body]}
        if next_plan:
            plan["next_plan"] = next_plan
        create_plan(self.rt.db, self.rt.clock, parse_plan(plan))
        return self

    def subscribe(self, customer: str = "acme", plan: str = "starter", cap: str | None = None):
        spend_cap = None if cap is None else D(cap)
        view = create_subscription(
            self.rt.db, self.rt.clock, customer, plan, max_overage_amount=spend_cap
        )
        return view.subscription

    def consume(self, quantity: str | int, meter: str = "calls", customer: str = "acme", **kw):
        return self.engine.consume(customer, meter, D(quantity), **kw)

    def check(self, quantity: str | int, meter: str = "calls", customer: str = "acme"):
        return self.engine.check(customer, meter, D(quantity))
