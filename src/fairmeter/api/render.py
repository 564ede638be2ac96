"""Domain values as JSON bodies."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from decimal import Decimal

from fairmeter.domain.customers import Customer
from fairmeter.domain.meters import Meter
from fairmeter.domain.money import Money, minor_unit_exponent
from fairmeter.domain.numbers import format_optional, format_quantity
from fairmeter.domain.plans import Line
from fairmeter.domain.pricing import TierUse
from fairmeter.domain.segments_rating import SegmentLine
from fairmeter.domain.subscriptions import Segment
from fairmeter.domain.windows import Span, format_instant, to_us
from fairmeter.services.plans import PlanEntry, Quote
from fairmeter.services.subscriptions import SubscriptionView
from fairmeter.services.upcoming import Upcoming
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
        "locale": c.locale,
        "metadata": dict(c.metadata),
        "invoice_threshold": format_optional(c.invoice_threshold),
        "net_terms_days": c.net_terms_days,
        "budget": format_optional(c.budget),
    }


def usage_rows(rows: Sequence[UsageRow]) -> list[dict[str, object]]:
    """Each window's end is the next one's start, and every customer and group repeats the
    windows: each instant is formatted once (a month of hours, 744 rows, needs 745)."""
    formatted: dict[datetime, str] = {}

    def instant(moment: datetime) -> str:
        text = formatted.get(moment)
        if text is None:
            text = formatted[moment] = format_instant(to_us(moment))
        return text

    return [
        {
            "from": instant(row.span.start),
            "to": instant(row.span.end),
            "customer": row.customer,
            "group": row.group,
            "value": format_optional(row.value),
        }
        for row in rows
    ]


# --- plans, quotes, subscriptions, upcoming invoice ----------------------------------------
def money(minor: int, currency: str) -> str:
    """An amount in major units, at the currency's precision: 7000.00, 1235 (JPY)."""
    amount = Money(minor, currency).as_decimal()
    return f"{amount:.{minor_unit_exponent(currency)}f}"


def plan(entry: PlanEntry) -> dict[str, object]:
    """The body `POST /v1/plans` reads, plus the read-only `version` and `created_at`."""
    return {
        **entry.plan.as_dict(),
        "version": entry.plan.version,
        "created_at": format_instant(entry.created_us),
    }


def tier_use(use: TierUse) -> dict[str, object]:
    return {
        "from": format_quantity(use.lower),
        "to": format_optional(use.upper),
        "units": format_quantity(use.units),
        "packages": use.packages,
        "unit_price": format_optional(use.unit_price),
        "flat_fee": format_quantity(use.flat_fee),
        "amount": format_quantity(use.amount),
    }


def line(item: Line, currency: str) -> dict[str, object]:
    """A priced line: `amount` is rounded to the currency (`amount_minor` in minor units);
    `exact_amount` and the breakdown's amounts are exact."""
    body: dict[str, object] = {
        "description": item.description,
        "meter": item.meter,
        "quantity": format_quantity(item.quantity),
        "included": format_quantity(item.included),
        "included_left": format_quantity(item.included_left),
        "billable": format_quantity(item.billable),
        "unit_price": format_optional(item.unit_price),
        "breakdown": [tier_use(use) for use in item.breakdown],
        "bounded_by": item.bounded_by,
        "exact_amount": format_quantity(item.amount_exact),
        "amount": money(item.amount_minor, currency),
        "amount_minor": item.amount_minor,
    }
    if isinstance(item, SegmentLine):
        span = item.span
        body["kind"] = item.kind
        body["plan"] = {"key": item.plan_key, "version": item.plan_version}
        body["from"] = format_instant(span.start_us) if span else None
        body["to"] = format_instant(span.end_us) if span else None
    return body


def quote(q: Quote) -> dict[str, object]:
    currency = q.plan.currency
    return {
        "plan": q.plan.key,
        "version": q.plan.version,
        "currency": currency,
        "lines": [line(item, currency) for item in q.lines],
        "total": money(q.total_minor, currency),
        "total_minor": q.total_minor,
    }


def _span(span: Span | None) -> dict[str, str] | None:
    return (
        None
        if span is None
        else {"from": format_instant(span.start_us), "to": format_instant(span.end_us)}
    )


def _at(micros: int | None) -> str | None:
    return None if micros is None else format_instant(micros)


def subscription(view: SubscriptionView) -> dict[str, object]:
    sub = view.subscription
    current = sub.period_at(view.as_of) if sub.active else None
    pending = None
    if sub.pending_plan_key is not None and view.segments:
        pending = {
            "plan": {"key": sub.pending_plan_key, "version": sub.pending_plan_version},
            "at": _at(view.segments[-1].end_us),
        }
    return {
        "id": sub.id,
        "customer": sub.customer_key,
        "plan": {"key": sub.plan_key, "version": sub.plan_version},
        "status": sub.status.value,
        "interval": sub.interval,
        "timezone": sub.zone,
        "billing_anchor": sub.anchor_local.isoformat(),
        "start_at": format_instant(sub.start_us),
        "cancel_at": _at(sub.cancel_at_us),
        "ended_at": _at(sub.ended_us),
        "current_period": _span(current),
        "next_period": _span(sub.next_period(current) if current else None),
        "pending_change": pending,
        "max_overage_amount": format_optional(sub.max_overage_amount),
        "segments": [segment(s) for s in view.segments],
        "created_at": format_instant(sub.created_us),
    }


def segment(s: Segment) -> dict[str, object]:
    return {
        "plan": {"key": s.plan_key, "version": s.plan_version},
        "from": format_instant(s.start_us),
        "to": _at(s.end_us),
        "reason": s.reason,
    }


def upcoming(u: Upcoming) -> dict[str, object]:
    currency = u.currency
    return {
        "customer": u.subscription.customer_key,
        "subscription": u.subscription.id,
        "currency": currency,
        "period": _span(u.period),
        "as_of": format_instant(to_us(u.as_of)),
        "elapsed": format_quantity(u.elapsed.quantize(Decimal("1e-6"))),
        "lines": [line(item, currency) for item in u.lines],
        "total": money(u.total_minor, currency),
        "total_minor": u.total_minor,
        "projected_total": money(u.projected_total_minor, currency),
        "projected_total_minor": u.projected_total_minor,
        "projection_method": u.projection_method,
    }
