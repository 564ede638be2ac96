"""Domain values as JSON bodies."""

from __future__ import annotations

from fairmeter.domain.customers import Customer
from fairmeter.domain.meters import Meter
from fairmeter.domain.numbers import format_quantity
from fairmeter.domain.windows import from_us
from fairmeter.services.usage import UsageRow


def meter(m: Meter) -> dict[str, object]:
    return {
        "key": m.key,
        "name": m.name,
        "event_type": m.event_type,
        "aggregation": m.aggregation.value,
        "value_property": m.value_property.text if m.value_property else None,
        "group_by": {name: path.text for name, path in m.group_by},
        "unit": m.unit,
        "archived": m.archived,
    }


def customer(c: Customer) -> dict[str, object]:
    return {
        "key": c.key,
        "name": c.name,
        "email": c.email,
        "currency": c.currency,
        "timezone": c.timezone,
        "metadata": dict(c.metadata),
    }


def usage_row(row: UsageRow) -> dict[str, object]:
    return {
        "from": _instant(row.span.start_us),
        "to": _instant(row.span.end_us),
        "customer": row.customer,
        "group": row.group,
        "value": None if row.value is None else format_quantity(row.value),
    }


def _instant(micros: int) -> str:
    return from_us(micros).isoformat().replace("+00:00", "Z")
