"""The proration rule (domain.segments_rating): each segment rated on its own plan, base
fees prepaid with a credit for unused time, parts of a fee summing to the fee exactly.

Amounts below are worked out by hand from the plans PRO and SCALE."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fairmeter.domain.money import round_to_minor
from fairmeter.domain.periods import fraction_elapsed
from fairmeter.domain.plans import Plan, parse_plan, rate_period, total_minor
from fairmeter.domain.pricing import proration_share
from fairmeter.domain.segments_rating import LineKind, rate_segments
from fairmeter.domain.windows import Span

D = Decimal
NOV = Span(datetime(2026, 11, 1, tzinfo=UTC), datetime(2026, 12, 1, tzinfo=UTC))  # 30 days
MID = datetime(2026, 11, 16, tzinfo=UTC)  # exactly half of NOV


def _plan(key: str, fee: str, included: str, price: str, **extra: object) -> Plan:
    charge = {"meter": "api_calls", "model": "per_unit", "unit_price": price, "included": included}
    return parse_plan(
        {"key": key, "currency": "USD", "base_fee": fee, "charges": [charge], **extra}
    )


PRO = _plan("pro", "49", "1000000", "0.002")
SCALE = _plan("scale", "199", "5000000", "0.001")


def _amounts(lines: list) -> list[tuple[str, str | None, int]]:
    return [(line.kind, line.plan_key, line.amount_minor) for line in lines]


def test_a_change_mid_period_credits_the_unused_fee_and_prorates_each_plan() -> None:
    lines = rate_segments(
        NOV,
        [(Span(NOV.start, MID), PRO), (Span(MID, NOV.end), SCALE)],
        [{"api_calls": D(1_500_000)}, {"api_calls": D(3_000_000)}],
    )
    # Pro: $49 prepaid, half of it credited back; 1.5M calls against half the allowance
    # (500k) leave 1M billable at $0.002 = $2,000. Scale: half of $199; 3M calls against
    # 2.5M included leave 500k at $0.001 = $500.
    assert _amounts(lines) == [
        (LineKind.BASE_FEE, "pro", 4900),
        (LineKind.BASE_FEE_CREDIT, "pro", -2450),
        (LineKind.USAGE, "pro", 200_000),
        (LineKind.BASE_FEE, "scale", 9950),
        (LineKind.USAGE, "scale", 50_000),
    ]
    assert [line.included for line in lines if line.meter] == [D(500_000), D(2_500_000)]
    assert total_minor(lines) == 262_400


def test_a_segment_that_ends_early_pays_only_its_share_of_the_fee() -> None:
    lines = rate_segments(NOV, [(Span(NOV.start, MID), PRO)], [{}])
    assert _amounts(lines) == [
        (LineKind.BASE_FEE, "pro", 4900),
        (LineKind.BASE_FEE_CREDIT, "pro", -2450),
        (LineKind.USAGE, "pro", 0),
    ]


def test_a_segment_that_starts_inside_the_period_pays_a_prorated_fee() -> None:
    start = datetime(2026, 11, 15, 12, tzinfo=UTC)  # 15.5 of 30 days left
    lines = rate_segments(NOV, [(Span(start, NOV.end), PRO)], [{}])
    assert lines[0].kind == LineKind.BASE_FEE
    assert lines[0].amount_minor == 2532  # 49 x 15.5 / 30 = 25.3166...


def test_segments_must_lie_in_order_inside_the_period() -> None:
    late = Span(MID, NOV.end + timedelta(days=1))
    with pytest.raises(ValueError, match="inside the period"):
        rate_segments(NOV, [(late, PRO)], [{}])
    with pytest.raises(ValueError, match="ordered"):
        rate_segments(NOV, [(Span(MID, NOV.end), PRO), (Span(NOV.start, MID), SCALE)], [{}, {}])


_instants = st.integers(min_value=1, max_value=NOV.end_us - NOV.start_us - 1)
_quantities = st.integers(min_value=0, max_value=10**9).map(D)
_fees = st.decimals(min_value=0, max_value=10_000, places=4, allow_nan=False)


@settings(max_examples=150, deadline=None)
@given(_instants, _quantities, _quantities, _fees)
def test_splitting_a_period_without_changing_the_plan_changes_no_amount(
    offset_us: int, first: Decimal, second: Decimal, fee: Decimal
) -> None:
    tiers = [{"up_to": "1000", "unit_price": "0.01"}, {"up_to": None, "unit_price": "0.00333"}]
    charge = {"meter": "api_calls", "model": "graduated", "tiers": tiers, "included": "777"}
    plan = parse_plan({"key": "p", "currency": "USD", "base_fee": str(fee), "charges": [charge]})
    cut = NOV.start + timedelta(microseconds=offset_us)
    split = rate_segments(
        NOV,
        [(Span(NOV.start, cut), plan), (Span(cut, NOV.end), plan)],
        [{"api_calls": first}, {"api_calls": second}],
    )
    whole = rate_period(plan, {"api_calls": first + second})
    assert total_minor(split) == total_minor(whole)


@settings(max_examples=150, deadline=None)
@given(_instants, _fees, _fees)
def test_the_parts_of_base_fees_add_up_to_the_time_weighted_fees_exactly(
    offset_us: int, old_fee: Decimal, new_fee: Decimal
) -> None:
    old = parse_plan({"key": "old", "currency": "USD", "base_fee": str(old_fee)})
    new = parse_plan({"key": "new", "currency": "USD", "base_fee": str(new_fee)})
    cut = NOV.start + timedelta(microseconds=offset_us)
    lines = rate_segments(NOV, [(Span(NOV.start, cut), old), (Span(cut, NOV.end), new)], [{}, {}])
    share = proration_share(fraction_elapsed(NOV, cut))
    paid = {
        key: sum(line.amount_minor for line in lines if line.plan_key == key)
        for key in ("old", "new")
    }
    # The old plan pays its fee accrued up to the cut (full fee less the credit), the new
    # one the rest of its own: each rounded at the edges only, so nothing is lost.
    assert paid["old"] == round_to_minor(old_fee * share, "USD")
    assert paid["new"] == round_to_minor(new_fee, "USD") - round_to_minor(new_fee * share, "USD")
