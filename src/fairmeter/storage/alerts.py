"""Alert rules: stored as written, asked for by id, by owner, and by who they apply to."""

from __future__ import annotations

import json
from decimal import Decimal

from sqlalchemy import delete, insert, or_, select, update
from sqlalchemy.engine import Connection, RowMapping

from fairmeter.domain.alerts import AlertRule, Base, Measure, RuleKind, RuleScope
from fairmeter.domain.numbers import format_quantity
from fairmeter.storage.tables import alert_rules


class AlertRules:
    def __init__(self, conn: Connection):
        self.conn = conn

    def add(self, rule: AlertRule) -> None:
        self.conn.execute(insert(alert_rules).values(**_values(rule)))

    def save(self, rule: AlertRule) -> None:
        values = _values(rule)
        del values["id"]
        self.conn.execute(update(alert_rules).where(alert_rules.c.id == rule.id).values(**values))

    def remove(self, rule_id: str) -> bool:
        result = self.conn.execute(delete(alert_rules).where(alert_rules.c.id == rule_id))
        return bool(result.rowcount)

    def by_id(self, rule_id: str) -> AlertRule | None:
        query = select(alert_rules).where(alert_rules.c.id == rule_id)
        row = self.conn.execute(query).mappings().first()
        return _rule(row) if row else None

    def listing(
        self, customer: str | None = None, plan: str | None = None, kind: str | None = None
    ) -> list[AlertRule]:
        """Rules by id (creation order), optionally only a customer's, a plan's or a kind."""
        query = select(alert_rules).order_by(alert_rules.c.id)
        if customer is not None:
            query = query.where(alert_rules.c.customer_key == customer)
        if plan is not None:
            query = query.where(alert_rules.c.plan_key == plan)
        if kind is not None:
            query = query.where(alert_rules.c.kind == kind)
        return [_rule(r) for r in self.conn.execute(query).mappings()]

    def applying_to(self, customers: dict[str, str]) -> list[AlertRule]:
        """Every rule, enabled or not, set on one of the customers or on its plan
        (`customers` maps a customer key to its current plan key)."""
        if not customers:
            return []
        query = select(alert_rules).where(
            or_(
                alert_rules.c.customer_key.in_(sorted(customers)),
                alert_rules.c.plan_key.in_(sorted(set(customers.values()))),
            )
        )
        return [_rule(r) for r in self.conn.execute(query).mappings()]


def _values(rule: AlertRule) -> dict[str, object]:
    return {
        "id": rule.id,
        "scope": rule.scope.value,
        "customer_key": rule.customer_key,
        "plan_key": rule.plan_key,
        "kind": rule.kind.value,
        "meter": rule.meter,
        "measure": rule.measure.value,
        "base": None if rule.base is None else rule.base.value,
        "thresholds": json.dumps([format_quantity(t) for t in rule.thresholds]),
        "enabled": int(rule.enabled),
        "created_us": rule.created_us,
        "updated_us": rule.updated_us,
    }


def _rule(row: RowMapping) -> AlertRule:
    return AlertRule(
        id=row["id"],
        scope=RuleScope(row["scope"]),
        customer_key=row["customer_key"],
        plan_key=row["plan_key"],
        kind=RuleKind(row["kind"]),
        meter=row["meter"],
        measure=Measure(row["measure"]),
        base=None if row["base"] is None else Base(row["base"]),
        thresholds=tuple(Decimal(t) for t in json.loads(row["thresholds"])),
        enabled=bool(row["enabled"]),
        created_us=row["created_us"],
        updated_us=row["updated_us"],
    )
