"""Alert rules: create, read, change and delete them (evaluation: alert_evaluation.py)."""

from __future__ import annotations

import secrets
from collections.abc import Mapping

from sqlalchemy.engine import Connection

from fairmeter.domain.alerts import AlertRule, parse_rule, parse_rule_changes
from fairmeter.domain.errors import FieldError, InvalidInput, NotFound
from fairmeter.domain.windows import to_us
from fairmeter.services.clock import Clock
from fairmeter.storage.alerts import AlertRules
from fairmeter.storage.billing import Plans
from fairmeter.storage.catalog import Customers, Meters
from fairmeter.storage.database import Database


def new_rule_id(now_us: int) -> str:
    """Sortable by creation time (listings are in creation order), unguessable after it."""
    return f"alr_{now_us:013x}{secrets.token_hex(6)}"


def create_rule(db: Database, clock: Clock, body: Mapping[str, object]) -> AlertRule:
    now_us = to_us(clock.now())
    rule = parse_rule(body, new_rule_id(now_us), now_us)
    with db.write() as conn:
        _require_references(conn, rule)
        AlertRules(conn).add(rule)
    return rule


def get_rule(db: Database, rule_id: str) -> AlertRule:
    with db.read() as conn:
        found = AlertRules(conn).by_id(rule_id)
    if found is None:
        raise NotFound(f"no alert rule with id {rule_id!r}")
    return found


def list_rules(
    db: Database, customer: str | None = None, plan: str | None = None, kind: str | None = None
) -> list[AlertRule]:
    with db.read() as conn:
        return AlertRules(conn).listing(customer, plan, kind)


def update_rule(db: Database, clock: Clock, rule_id: str, body: Mapping[str, object]) -> AlertRule:
    with db.write() as conn:
        repo = AlertRules(conn)
        rule = repo.by_id(rule_id)
        if rule is None:
            raise NotFound(f"no alert rule with id {rule_id!r}")
        changed = parse_rule_changes(rule, body, to_us(clock.now()))
        repo.save(changed)
    return changed


def delete_rule(db: Database, rule_id: str) -> None:
    with db.write() as conn:
        if not AlertRules(conn).remove(rule_id):
            raise NotFound(f"no alert rule with id {rule_id!r}")


def _require_references(conn: Connection, rule: AlertRule) -> None:
    """The customer or plan, and the meter, a rule names must exist (422 at their field)."""
    errors: list[FieldError] = []
    if rule.customer_key is not None and Customers(conn).by_key(rule.customer_key) is None:
        detail = f"no customer has the key {rule.customer_key!r}"
        errors.append(FieldError("/customer", detail, "unknown_customer"))
    if rule.plan_key is not None and Plans(conn).current(rule.plan_key) is None:
        errors.append(FieldError("/plan", f"no plan has the key {rule.plan_key!r}", "unknown_plan"))
    if rule.meter is not None and Meters(conn).by_key(rule.meter) is None:
        errors.append(FieldError("/meter", f"no meter has the key {rule.meter!r}", "unknown_meter"))
    if errors:
        raise InvalidInput("The alert rule refers to what does not exist", errors=tuple(errors))
