"""What an alert says: a one-line title for people and JSON details for templates."""

from __future__ import annotations

from datetime import datetime
from decimal import ROUND_HALF_UP, Decimal

from fairmeter.domain.alert_crossings import Projection, Target, dedupe_key
from fairmeter.domain.alerts import AlertRule
from fairmeter.domain.money import minor_unit_exponent
from fairmeter.domain.numbers import format_quantity
from fairmeter.domain.windows import format_instant, from_us
from fairmeter.services.alert_contexts import AlertContext
from fairmeter.services.notifications import NewNotification

_CENT = Decimal("0.01")


def usage_note(
    ctx: AlertContext, rule: AlertRule, target: Target, usage: Decimal, unit: str
) -> NewNotification:
    meter = rule.meter or ""
    label = unit or meter
    of = f"{_qty(target.value, label)}"
    if target.percent is not None:
        base = rule.base.value if rule.base else "limit"
        title = (
            f"{ctx.customer.key} has used {format_quantity(target.percent)}% of its {meter} "
            f"{'allowance' if base == 'included' else 'limit'} ({_qty(usage, label)}; "
            f"threshold {of})"
        )
    else:
        title = f"{ctx.customer.key}'s {meter} usage reached {_qty(usage, label)} (threshold {of})"
    details = {
        **_base_details(ctx, rule, target),
        "meter": meter,
        "unit": unit,
        "usage": format_quantity(usage),
        **_allowance(ctx, meter),
    }
    return _note(ctx, rule, target, title, details)


def spend_note(
    ctx: AlertContext, rule: AlertRule, target: Target, spent: Decimal
) -> NewNotification:
    currency = ctx.customer.currency
    if target.percent is not None:
        title = (
            f"{ctx.customer.key} has spent {format_quantity(target.percent)}% of its budget of "
            f"{_money(ctx.customer.budget or Decimal(0), currency)} "
            f"({_money(spent, currency)} this period)"
        )
    else:
        title = (
            f"{ctx.customer.key}'s charges this period reached {_money(spent, currency)} "
            f"(threshold {_money(target.value, currency)})"
        )
    details = {**_base_details(ctx, rule, target), "amount": format_quantity(spent)}
    return _note(ctx, rule, target, title, details)


def usage_forecast_note(
    ctx: AlertContext, rule: AlertRule, target: Target, projection: Projection, unit: str
) -> NewNotification:
    meter = rule.meter or ""
    when = _day(from_us(projection.crossing_us(target)), ctx)
    message = f"At this pace you will reach {_qty(target.value, unit or meter)} on {when}"
    details = {
        **_base_details(ctx, rule, target),
        "meter": meter,
        "unit": unit,
        "usage": format_quantity(projection.current),
        "projected_usage": format_quantity(_round(projection.projected)),
        "crossing_at": format_instant(projection.crossing_us(target)),
        "message": message,
        **_allowance(ctx, meter),
    }
    return _note(ctx, rule, target, message, details)


def spend_forecast_note(
    ctx: AlertContext, rule: AlertRule, target: Target, projection: Projection
) -> NewNotification:
    currency = ctx.customer.currency
    when = _day(from_us(projection.crossing_us(target)), ctx)
    message = f"At this pace you will reach {_money(target.value, currency)} on {when}"
    details = {
        **_base_details(ctx, rule, target),
        "amount": format_quantity(projection.current),
        "projected_total": format_quantity(projection.projected),
        "crossing_at": format_instant(projection.crossing_us(target)),
        "message": message,
    }
    return _note(ctx, rule, target, message, details)


def _note(
    ctx: AlertContext, rule: AlertRule, target: Target, title: str, details: dict[str, object]
) -> NewNotification:
    return NewNotification(
        customer=ctx.customer.key,
        kind=rule.notification_kind,
        dedupe_key=dedupe_key(rule.id, ctx.customer.key, ctx.period.start_us, target.threshold),
        title=title,
        details=details,
        rule_id=rule.id,
        period_start_us=ctx.period.start_us,
        period_end_us=ctx.period.end_us,
    )


def _base_details(ctx: AlertContext, rule: AlertRule, target: Target) -> dict[str, object]:
    found: dict[str, object] = {
        "rule_id": rule.id,
        "rule_kind": rule.kind.value,
        "threshold": format_quantity(target.value),
        "percent": None if target.percent is None else format_quantity(target.percent),
        "of": None if rule.base is None else rule.base.value,
        "currency": ctx.customer.currency,
        "budget": None if ctx.customer.budget is None else format_quantity(ctx.customer.budget),
        "plan": ctx.plan.key,
        "next_plan": ctx.plan.next_plan,
        "period_start": format_instant(ctx.period.start_us),
        "period_end": format_instant(ctx.period.end_us),
    }
    return found


def _allowance(ctx: AlertContext, meter: str) -> dict[str, object]:
    charge = ctx.plan.charge_for(meter)
    limit = ctx.limits.get(meter)
    return {
        "limit": None if limit is None else format_quantity(limit),
        "allowance": None if charge is None else format_quantity(charge.included),
    }


def _round(value: Decimal) -> Decimal:
    return value.quantize(_CENT, rounding=ROUND_HALF_UP).normalize()


def _qty(value: Decimal, unit: str) -> str:
    text = f"{_round(value):,f}"
    return f"{text} {unit}".strip()


def _money(value: Decimal, currency: str) -> str:
    minor = Decimal(1).scaleb(-minor_unit_exponent(currency))
    return f"{value.quantize(minor, rounding=ROUND_HALF_UP):,f} {currency}"


def _day(moment: datetime, ctx: AlertContext) -> str:
    local = moment.astimezone(ctx.customer.zone)
    return f"{local.day} {local:%b %Y}"
