"""Threshold invoices and the period invoice add up, per charge and in minor units, to what
one invoice for the whole period would have charged: for every pricing model, with
allowances and bounds, every rounding rule and currency exponent, any usage path, and a
plan change inside the period."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from fairmeter.domain.invoices import InvoiceLine, total_of
from fairmeter.domain.invoicing import (
    SegmentUsage,
    bill_remainder,
    covered_by,
    rate_cumulative,
)
from fairmeter.domain.plans import Plan, parse_plan
from fairmeter.domain.windows import Span, from_us

PERIOD = Span(datetime(2026, 10, 1, tzinfo=UTC), datetime(2026, 11, 1, tzinfo=UTC))
MODELS = ("per_unit", "package", "graduated", "volume", "flat")

prices = st.decimals(min_value=0, max_value=50, places=4).map(str)
sizes = st.decimals(min_value=Decimal("0.5"), max_value=1000, places=1).map(str)
quantities = st.decimals(min_value=0, max_value=20_000, places=3)


@st.composite
def tiers(draw: st.DrawFn) -> list[dict[str, Any]]:
    edges = sorted(set(draw(st.lists(st.integers(1, 15_000), min_size=0, max_size=3))))
    ups: list[int | None] = [*edges, None]
    return [
        {
            "up_to": None if up is None else str(up),
            "unit_price": draw(prices),
            "flat_fee": draw(prices),
        }
        for up in ups
    ]


@st.composite
def charges(draw: st.DrawFn, model: str) -> dict[str, Any]:
    charge: dict[str, Any] = {"meter": "calls", "model": model}
    if model == "per_unit":
        charge["unit_price"] = draw(prices)
    elif model == "package":
        charge.update(package_price=draw(prices), package_size=draw(sizes))
    elif model in ("graduated", "volume"):
        charge["tiers"] = draw(tiers())
    else:
        charge["amount"] = draw(prices)
    charge["included"] = str(draw(st.sampled_from([0, 0, 100, 2500])))
    low, high = sorted(draw(st.lists(prices, min_size=2, max_size=2)), key=Decimal)
    if draw(st.booleans()):
        charge["minimum"] = low
    if draw(st.booleans()):
        charge["maximum"] = high
    return charge


@st.composite
def plans(draw: st.DrawFn, key: str) -> Plan:
    body = {
        "key": key,
        "currency": draw(st.sampled_from(["USD", "JPY", "KWD"])),
        "base_fee": draw(prices),
        "rounding": draw(st.sampled_from(["half_up", "half_even", "down", "up"])),
        "charges": [draw(charges(draw(st.sampled_from(MODELS))))],
    }
    return parse_plan(body)


def _usage(
    split_us: int | None, plans_: tuple[Plan, Plan], at: tuple[Decimal, Decimal]
) -> list[SegmentUsage]:
    """Usage so far on one segment, or on two when the plan changed at `split_us`."""
    if split_us is None:
        return [SegmentUsage(PERIOD, plans_[0], {"calls": at[0]}, {"calls": 1})]
    first = Span(PERIOD.start, from_us(split_us))
    second = Span(from_us(split_us), PERIOD.end)
    return [
        SegmentUsage(first, plans_[0], {"calls": at[0]}, {"calls": 1}),
        SegmentUsage(second, plans_[1], {"calls": at[1]}, {"calls": 1}),
    ]


@settings(max_examples=300, deadline=None)
@given(
    first=plans("small"),
    second=plans("large"),
    steps=st.lists(st.tuples(quantities, quantities), min_size=1, max_size=6),
    change=st.one_of(st.none(), st.integers(PERIOD.start_us + 1, PERIOD.end_us - 1)),
)
def test_threshold_invoices_and_the_period_invoice_add_up_to_one_invoice(
    first: Plan, second: Plan, steps: list[tuple[Decimal, Decimal]], change: int | None
) -> None:
    second = Plan(**{**first.__dict__, "key": "large", "charges": second.charges})
    so_far = (Decimal(0), Decimal(0))
    billed: list[InvoiceLine] = []
    totals: list[int] = []
    for step in steps[:-1]:
        so_far = (so_far[0] + step[0], so_far[1] + step[1])
        usage = _usage(change, (first, second), so_far)
        lines = rate_cumulative(PERIOD, PERIOD, usage, base_fee=False)
        threshold_invoice = bill_remainder(lines, covered_by(billed, PERIOD.start_us))
        billed.extend(threshold_invoice)
        totals.append(total_of(threshold_invoice))
    full = (so_far[0] + steps[-1][0], so_far[1] + steps[-1][1])
    usage = _usage(change, (first, second), full)
    single = rate_cumulative(PERIOD, PERIOD, usage, base_fee=True)
    last = bill_remainder(single, covered_by(billed, PERIOD.start_us))
    assert sum(totals) + total_of(last) == total_of(single)
    for line in single:
        parts = [x.amount_minor for x in [*billed, *last] if x.key == line.key]
        assert sum(parts) == line.cumulative_minor
