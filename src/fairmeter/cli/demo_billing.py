"""The demo's billing story: plans, a subscription per customer, and months of invoices.

Acme, a customer of long standing on `starter`, doubled its LLM traffic at the start of
its last whole billing period; with 50M tokens included and $0.0001 a token after them,
that period's invoice comes to about $7,000 -- the surprise bill. A week before that period
ended, the vendor gave `starter` a $1,000 invoice threshold (plan version 2) and moved Acme
to it from the next period, which therefore bills Acme in threshold invoices as it goes.
`growth` (the step above `starter`) would have billed the same month at $499.

History is replayed, not invented: once the events are loaded, billing runs once a day
(06:00 UTC) from the first subscription start to now with a clock set to that day, as a
daily job would have: every invoice comes from the product's own billing run, with the
issue date and number it would have had. At a data `scale` other than 1 (tests use small
ones), allowances and tier bounds are `scale` times as large and unit prices `1 / scale`
times, so every amount stays the same.
"""

from __future__ import annotations

from contextlib import suppress
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from decimal import ROUND_HALF_EVEN, Context, Decimal
from zoneinfo import ZoneInfo

from fairmeter.cli import demo_data
from fairmeter.domain.errors import AlreadyExists, NotFound
from fairmeter.domain.invoices import Invoice, InvoiceKind
from fairmeter.domain.money import Money
from fairmeter.domain.plans import Plan, parse_plan
from fairmeter.domain.subscriptions import ChangeAt
from fairmeter.domain.windows import Span, from_us
from fairmeter.services import catalog, plans, subscriptions
from fairmeter.services.billing import run_billing
from fairmeter.services.clock import FixedClock
from fairmeter.services.invoices import list_invoices
from fairmeter.services.runtime import Runtime
from fairmeter.services.upcoming import upcoming_invoice, usage_between

STORY = "acme"
THRESHOLD = "1000"
RUN_HOUR = 6  # UTC hour of the replayed daily billing runs
WARNED_DAYS = 7  # the threshold is added this long before the surprise period ends
_PLACES = Decimal("1e-12")
_CONTEXT = Context(prec=60, rounding=ROUND_HALF_EVEN)


def plan_bodies(scale: float = 1.0) -> list[dict[str, object]]:
    """The demo's plans (bodies for POST /v1/plans), for data `scale` times as large."""
    k = Decimal(str(scale))
    growth_tokens = (("500000000", "0.00002"), (None, "0.00001"))
    growth: dict[str, object] = {
        "key": "growth", "name": "Growth", "currency": "USD", "base_fee": "499",
        "description": "For heavy API users",
        "charges": [
            _per_unit("api_calls", "0.001", "10000000", k),
            _graduated("tokens", "200000000", growth_tokens, k),
        ],
    }  # fmt: skip
    return [
        growth,  # first: starter names it as its next plan
        _starter("starter", "USD", "49", ("0.002", "0.0001", "0.00008"), k, "growth"),
        _starter("starter_eur", "EUR", "45", ("0.0018", "0.00009", "0.00007"), k),
        _starter("starter_jpy", "JPY", "7500", ("0.3", "0.015", "0.012"), k),
        _starter("starter_inr", "INR", "3999", ("0.16", "0.008", "0.0064"), k),
    ]


def _starter(
    key: str, currency: str, fee: str, prices: tuple[str, str, str], k: Decimal, up: str = ""
) -> dict[str, object]:
    """A starter plan: 1M calls and 50M tokens included, then calls by the unit and tokens
    by tier (the first 100M beyond the allowance at one price, the rest cheaper)."""
    calls, tokens, more_tokens = prices
    tiers = (("100000000", tokens), (None, more_tokens))
    name = "Starter" if currency == "USD" else f"Starter ({currency})"
    return {
        "key": key, "name": name, "currency": currency, "base_fee": fee,
        "next_plan": up or None, "description": "For APIs getting started",
        "charges": [
            _per_unit("api_calls", calls, "1000000", k),
            _graduated("tokens", "50000000", tiers, k),
        ],
    }  # fmt: skip


def _per_unit(meter: str, price: str, included: str, k: Decimal) -> dict[str, object]:
    unit_price, allowance = _price(price, k), _quantity(included, k)
    return {"meter": meter, "model": "per_unit", "unit_price": unit_price, "included": allowance}


def _graduated(
    meter: str, included: str, tiers: tuple[tuple[str | None, str], ...], k: Decimal
) -> dict[str, object]:
    return {
        "meter": meter,
        "model": "graduated",
        "included": _quantity(included, k),
        "tiers": [
            {"up_to": None if up_to is None else _quantity(up_to, k), "unit_price": _price(p, k)}
            for up_to, p in tiers
        ],
    }


def _quantity(text: str, k: Decimal) -> str:
    return _plain(Decimal(text) * k)


def _price(text: str, k: Decimal) -> str:
    return _plain(Decimal(text) / k)


def _plain(value: Decimal) -> str:
    """At most 12 decimal places (what a plan accepts), without exponent or trailing 0s."""
    return format(value.quantize(_PLACES, context=_CONTEXT).normalize(_CONTEXT), "f")


PLAN_OF = {
    "acme": "starter",
    "globex": "growth",
    "initech": "starter_jpy",
    "umbrella": "starter_inr",
    "hooli": "starter_eur",
}


def is_set_up(rt: Runtime) -> bool:
    """Whether the story's subscriptions exist (Acme's is made last)."""
    try:
        subscriptions.customer_subscription(rt.db, rt.clock, STORY)
    except NotFound:  # no customer, or no subscription
        return False
    return True


def set_up(rt: Runtime, scale: float = 1.0) -> None:
    """Plans and subscriptions as of their past dates, then the replayed daily runs.
    Whatever an interrupted set-up made is kept; the final run as of now is idempotent."""
    now = rt.clock.now()
    # Floored to the hour, as the data set's end is: both place the periods alike.
    end = now.astimezone(UTC).replace(minute=0, second=0, microsecond=0)
    periods = {
        key: demo_data.period_starts(end, catalog.get_customer(rt.db, key).timezone)
        for key in PLAN_OF
    }
    starts = {key: found[0] for key, found in periods.items()}
    first = min(starts.values())
    clock = FixedClock(first - timedelta(days=1))
    past = replace(rt, clock=clock)
    bodies = plan_bodies(scale)
    for body in bodies:
        _create_plan(past, body)
    for key in sorted(PLAN_OF, key=lambda k: k == STORY):
        clock.at = starts[key]
        _subscribe(past, key, starts[key])
    warned_at = periods[STORY][-1] - timedelta(days=WARNED_DAYS)
    _replay(past, clock, (first, warned_at, now), bodies)
    run_billing(rt)


def _create_plan(rt: Runtime, body: dict[str, object]) -> None:
    with suppress(AlreadyExists):  # made by an earlier, interrupted set-up
        plans.create_plan(rt.db, rt.clock, parse_plan(body))


def _subscribe(rt: Runtime, key: str, start: datetime) -> None:
    try:
        subscriptions.customer_subscription(rt.db, rt.clock, key)
    except NotFound:
        subscriptions.create_subscription(rt.db, rt.clock, key, PLAN_OF[key], start_at=start)


def _replay(
    rt: Runtime,
    clock: FixedClock,
    times: tuple[datetime, datetime, datetime],
    bodies: list[dict[str, object]],
) -> None:
    """A billing run each day at RUN_HOUR UTC from the first start until now, and the
    threshold added on its day. `times`: the first start, the threshold's day, now."""
    first, warned_at, now = times
    day = first.astimezone(UTC) + timedelta(days=1)
    at = day.replace(hour=RUN_HOUR, minute=0, second=0, microsecond=0)
    warned = False
    while at < now:
        if not warned and at >= warned_at:
            clock.at = warned_at
            _add_threshold(rt, bodies)
            warned = True
        clock.at = at
        run_billing(rt)
        at += timedelta(days=1)


def _add_threshold(rt: Runtime, bodies: list[dict[str, object]]) -> None:
    """starter gets a threshold (a new version: Acme holds the first), and Acme moves to
    it when its current period ends."""
    body = next(b for b in bodies if b["key"] == PLAN_OF[STORY])
    guarded = parse_plan(body | {"invoice_threshold": THRESHOLD})
    entry, _ = plans.edit_plan(rt.db, rt.clock, guarded.key, guarded)
    held = subscriptions.customer_subscription(rt.db, rt.clock, STORY).subscription
    # A redo (Acme's subscription made again) may already hold the new version.
    if held.plan_version != entry.plan.version:
        subscriptions.change_plan(rt.db, rt.clock, held.id, guarded.key, ChangeAt.PERIOD_END)


@dataclass(frozen=True)
class Story:
    """What the demo prints about billing: the plans, the invoices, and Acme's bills."""

    lines: list[str]
    pdf_invoice: str | None  # the id of the invoice whose PDF to offer


def story(rt: Runtime) -> Story:
    invoices = _all_invoices(rt)
    finalized = sum(not i.is_draft for i in invoices)
    entries = plans.list_plans(rt.db)
    width = max((len(f"{e.plan.key} v{e.plan.version}") for e in entries), default=0)
    lines = ["Plans:", *(f"  {_plan_line(e.plan, width)}" for e in entries), ""]
    lines.append(f"Invoices: {len(invoices)} ({finalized} finalized), by a daily billing run.")
    mine = [i for i in invoices if i.customer_key == STORY]
    surprise = max(
        (i for i in mine if i.kind is InvoiceKind.PERIOD and not i.is_draft),
        key=lambda i: i.total_minor,
        default=None,
    )
    if surprise is not None:
        lines += ["", *_surprise_lines(rt, surprise)]
    lines += _current_lines(rt, mine)
    return Story(lines, surprise.id if surprise else (mine[-1].id if mine else None))


def _all_invoices(rt: Runtime) -> list[Invoice]:
    found: list[Invoice] = []
    while page := list_invoices(rt, after=found[-1].id if found else None, limit=1000):
        found.extend(page)
    return found


def _plan_line(plan: Plan, width: int) -> str:
    name = f"{plan.key} v{plan.version}"
    text = f"{name:<{width}}  {Money.of(plan.base_fee, plan.currency)} a {plan.interval}"
    included = [
        f"{_millions(c.included)} {c.meter}" for c in plan.charges if c.included > 0
    ]  # fmt: skip
    if included:
        text += f", {' and '.join(included)} included"
    if plan.next_plan:
        text += f"; next plan: {plan.next_plan}"
    if plan.invoice_threshold is not None:
        text += f"; invoices each {Money.of(plan.invoice_threshold, plan.currency)} of usage"
    return text


def _millions(quantity: Decimal) -> str:
    if quantity < 1_000_000:
        return f"{quantity:,}"
    return f"{quantity / 1_000_000:,.1f}".removesuffix(".0") + "M"


def _surprise_lines(rt: Runtime, invoice: Invoice) -> list[str]:
    """Acme's largest period invoice, and what the next plan up would have charged."""
    span = Span(from_us(invoice.period_start_us), from_us(invoice.period_end_us))
    held = subscriptions.get_subscription(rt.db, rt.clock, invoice.subscription_id).subscription
    first = invoice.lines[0]  # the base fee's: the plan the period was billed on
    plan = plans.get_plan(rt.db, first.plan_key, first.plan_version).plan
    usage = usage_between(rt.db, STORY, plan.meters, span)
    total = Money(invoice.total_minor, invoice.currency)
    tokens = _millions(usage.get("tokens", Decimal(0)))
    lines = [
        f"The story: {STORY}, a long-time customer on {plan.key}, used {tokens} tokens "
        f"from {_dates(span, held.zone)},",
        f"  and its invoice {invoice.number} came to {total}: a surprise.",
    ]
    if plan.next_plan:
        cost = Money(plans.quote(rt.db, plan.next_plan, usage).total_minor, invoice.currency)
        lines.append(f"  On {plan.next_plan}, the plan above, the same month would cost {cost}.")
    return lines


def _current_lines(rt: Runtime, mine: list[Invoice]) -> list[str]:
    """The current period: threshold invoices so far, and the upcoming invoice."""
    upcoming = upcoming_invoice(rt.db, rt.clock, STORY)
    currency = upcoming.currency
    early = [
        i for i in mine
        if i.kind is InvoiceKind.THRESHOLD and i.period_start_us == upcoming.period.start_us
    ]  # fmt: skip
    lines = []
    if early:
        billed = Money(sum(i.total_minor for i in early), currency)
        lines.append(
            f"  Now {STORY}'s plan has an invoice threshold: this period it already received "
            f"{len(early)} threshold invoice(s), {billed} in all."
        )
    lines.append(
        f"  Its upcoming invoice ({_dates(upcoming.period, upcoming.subscription.zone)}): "
        f"{Money(upcoming.total_minor, currency)} so far, "
        f"{Money(upcoming.projected_total_minor, currency)} projected."
    )
    return lines


def _dates(span: Span, zone: str) -> str:
    tz = ZoneInfo(zone)
    return f"{span.start.astimezone(tz):%Y-%m-%d} to {span.end.astimezone(tz):%Y-%m-%d}"
