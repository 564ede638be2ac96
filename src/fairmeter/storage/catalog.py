"""Customers, meters and API keys: the questions services ask about them."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from decimal import Decimal

from sqlalchemy import func, insert, select, update
from sqlalchemy.engine import Connection, RowMapping
from sqlalchemy.exc import IntegrityError

from fairmeter.domain.customers import DEFAULT_LOCALE, Customer
from fairmeter.domain.errors import AlreadyExists, FieldError
from fairmeter.domain.keys import Scope
from fairmeter.domain.meters import Aggregation, JsonPath, Meter
from fairmeter.domain.numbers import format_optional
from fairmeter.storage.tables import api_keys, customers, events, meters


class Customers:
    def __init__(self, conn: Connection):
        self.conn = conn

    def add(self, customer: Customer, now_us: int) -> Customer:
        values = _customer_values(customer)
        try:
            with self.conn.begin_nested():
                new_id = self.conn.execute(
                    insert(customers)
                    .values(**values, created_us=now_us, updated_us=now_us)
                    .returning(customers.c.id)
                ).scalar_one()
        except IntegrityError:
            raise AlreadyExists(
                f"a customer with key {customer.key!r} exists",
                errors=(FieldError("/key", "is taken", "already_exists"),),
            ) from None
        found = self.by_key(customer.key)
        assert found is not None and found.id == new_id
        return found

    def update(self, key: str, changes: Mapping[str, object], now_us: int) -> None:
        values = dict(changes)
        if "metadata" in values:
            values["metadata"] = json.dumps(values["metadata"], sort_keys=True)
        for name in ("invoice_threshold", "budget"):
            if name in values:
                amount = values[name]
                values[name] = format_optional(amount if isinstance(amount, Decimal) else None)
        self.conn.execute(
            update(customers).where(customers.c.key == key).values(**values, updated_us=now_us)
        )

    def by_key(self, key: str) -> Customer | None:
        row = self.conn.execute(select(customers).where(customers.c.key == key)).mappings().first()
        return _customer(row) if row else None

    def existing(self, keys: set[str]) -> set[str]:
        found: set[str] = set()
        ordered = sorted(keys)
        for start in range(0, len(ordered), 1000):
            chunk = ordered[start : start + 1000]
            query = select(customers.c.key).where(customers.c.key.in_(chunk))
            found.update(row[0] for row in self.conn.execute(query))
        return found

    def page(self, after: str | None, limit: int) -> list[Customer]:
        query = select(customers).order_by(customers.c.key).limit(limit)
        if after:
            query = query.where(customers.c.key > after)
        return [_customer(r) for r in self.conn.execute(query).mappings()]


def _customer_values(customer: Customer) -> dict[str, object]:
    return {
        "key": customer.key,
        "name": customer.name,
        "email": customer.email,
        "currency": customer.currency,
        "timezone": customer.timezone,
        "metadata": json.dumps(dict(customer.metadata), sort_keys=True),
        "invoice_threshold": format_optional(customer.invoice_threshold),
        "net_terms_days": customer.net_terms_days,
        "locale": customer.locale,
        "budget": format_optional(customer.budget),
    }


def _customer(row: RowMapping) -> Customer:
    return Customer(
        key=row["key"],
        name=row["name"],
        email=row["email"],
        currency=row["currency"],
        timezone=row["timezone"],
        metadata=json.loads(row["metadata"]),
        id=row["id"],
        invoice_threshold=(
            Decimal(row["invoice_threshold"]) if row["invoice_threshold"] is not None else None
        ),
        net_terms_days=row["net_terms_days"],
        # Customers created before migration 0004 have no locale stored.
        locale=row["locale"] or DEFAULT_LOCALE,
        budget=Decimal(row["budget"]) if row["budget"] is not None else None,
    )


class Meters:
    def __init__(self, conn: Connection):
        self.conn = conn

    def add(self, meter: Meter, now_us: int) -> Meter:
        try:
            with self.conn.begin_nested():
                new_id = self.conn.execute(
                    insert(meters)
                    .values(
                        key=meter.key,
                        name=meter.name,
                        event_type=meter.event_type,
                        aggregation=meter.aggregation.value,
                        value_property=meter.value_property.text if meter.value_property else None,
                        group_by=json.dumps({n: p.text for n, p in meter.group_by}),
                        unit=meter.unit,
                        created_us=now_us,
                    )
                    .returning(meters.c.id)
                ).scalar_one()
        except IntegrityError:
            raise AlreadyExists(
                f"a meter with key {meter.key!r} exists",
                errors=(FieldError("/key", "is taken", "already_exists"),),
            ) from None
        found = self.by_key(meter.key)
        assert found is not None and found.id == new_id
        return found

    def by_key(self, key: str) -> Meter | None:
        row = self.conn.execute(select(meters).where(meters.c.key == key)).mappings().first()
        return _meter(row) if row else None

    def all(self, include_archived: bool = False) -> list[Meter]:
        query = select(meters).order_by(meters.c.key)
        if not include_archived:
            query = query.where(meters.c.archived_us.is_(None))
        return [_meter(r) for r in self.conn.execute(query).mappings()]

    def active_for_types(self, types: Iterable[str]) -> dict[str, list[Meter]]:
        wanted = set(types)
        found: dict[str, list[Meter]] = {}
        query = select(meters).where(meters.c.archived_us.is_(None))
        for row in self.conn.execute(query).mappings():
            if row["event_type"] in wanted:
                found.setdefault(row["event_type"], []).append(_meter(row))
        return found

    def archive(self, key: str, now_us: int) -> None:
        self.conn.execute(
            update(meters)
            .where(meters.c.key == key, meters.c.archived_us.is_(None))
            .values(
                archived_us=now_us,
                archived_seq=select(func.coalesce(func.max(events.c.seq), 0)).scalar_subquery(),
            )
        )

    def delete(self, key: str) -> None:
        self.conn.execute(meters.delete().where(meters.c.key == key))

    def has_events(self, meter: Meter) -> bool:
        query = select(func.count()).select_from(
            select(events.c.seq).where(events.c.type == meter.event_type).limit(1).subquery()
        )
        return bool(self.conn.execute(query).scalar_one())


def _meter(row: RowMapping) -> Meter:
    groups = json.loads(row["group_by"])
    return Meter(
        key=row["key"],
        name=row["name"],
        event_type=row["event_type"],
        aggregation=Aggregation(row["aggregation"]),
        value_property=JsonPath(row["value_property"]) if row["value_property"] else None,
        group_by=tuple(sorted((n, JsonPath(p)) for n, p in groups.items())),
        unit=row["unit"],
        id=row["id"],
        archived_us=row["archived_us"],
        archived_seq=row["archived_seq"],
    )


class ApiKeys:
    def __init__(self, conn: Connection):
        self.conn = conn

    def add(self, name: str, scope: Scope, key_hash: str, prefix: str, now_us: int) -> None:
        self.conn.execute(
            insert(api_keys).values(
                name=name, scope=scope.value, key_hash=key_hash, prefix=prefix, created_us=now_us
            )
        )

    def by_hash(self, key_hash: str) -> tuple[str, Scope] | None:
        """The stored hash and scope of a live key, or None."""
        row = self.conn.execute(
            select(api_keys.c.key_hash, api_keys.c.scope).where(
                api_keys.c.key_hash == key_hash, api_keys.c.revoked_us.is_(None)
            )
        ).first()
        return (row[0], Scope(row[1])) if row else None

    def listing(self) -> list[dict[str, object]]:
        query = select(
            api_keys.c.name,
            api_keys.c.scope,
            api_keys.c.prefix,
            api_keys.c.created_us,
            api_keys.c.revoked_us,
        ).order_by(api_keys.c.id)
        return [dict(r) for r in self.conn.execute(query).mappings()]
