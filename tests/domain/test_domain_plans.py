"""Plans are parsed strictly, versioned by their terms, and priced by one pure function."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from decimal import Decimal
from fractions import Fraction

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fairmeter.domain.errors import InvalidInput
from fairmeter.domain.money import RoundingRule, exact_sum, round_to_minor
from fairmeter.domain.numbers import EXACT
from fairmeter.domain.plans import (
    Interval,
    Plan,
    parse_plan,
    rate_period,
    require_known_meters,
    same_terms,
    total_minor,
)
from fairmeter.domain.pricing import (
    Charge,
    ChargeLimit,
    Flat,
    Graduated,
    LimitPolicy,
    PerUnit,
    PriceModel,
    Tier,
)

D = Decimal
PRO: dict[str, object] = {
    "key": "pro",
    "name": "Pro",
    "currency": "USD",
    "interval": "month",
    "base_fee": "49",
    "charges": [
        {"meter": "api_calls", "model": "per_unit", "unit_price": "0.002", "included": "1000000"},
        {"meter": "storage_gb", "model": "flat", "amount": "20"},
    ],
    "next_plan": "scale",
    "invoice_threshold": "500",
    "net_terms_days": 14,
    "late_event_window_days": 7,
    "rounding": "half_even",
    "description": "For growing APIs",
}


def _pointers(body: Mapping[str, object]) -> list[str]:
    with pytest.raises(InvalidInput) as caught:
        parse_plan(body)
    return [error.pointer for error in caught.value.errors]


def test_the_documented_plan_body_is_accepted() -> None:
    plan = parse_plan(PRO)
    assert (plan.key, plan.name, plan.currency, plan.interval) == ("pro", "Pro", "USD", "month")
    assert plan.base_fee == D(49)
    assert plan.charges == (
        Charge("api_calls", PerUnit(D("0.002")), included=D(1_000_000)),
        Charge("storage_gb", Flat(D(20))),
    )
    assert (plan.next_plan, plan.invoice_threshold) == ("scale", D(500))
    assert (plan.net_terms_days, plan.late_event_window_days) == (14, 7)
    assert plan.rounding is RoundingRule.HALF_EVEN
    assert (plan.version, plan.description) == (1, "For growing APIs")
    assert plan.meters == ("api_calls", "storage_gb")


def test_a_minimal_plan_takes_the_documented_defaults() -> None:
    plan = parse_plan({"key": "free", "currency": "JPY"})
    assert plan == Plan("free", "free", "JPY")
    assert plan.interval is Interval.MONTH
    assert plan.base_fee == 0 and plan.charges == ()
    assert (plan.net_terms_days, plan.late_event_window_days) == (30, 35)
    assert plan.rounding is RoundingRule.HALF_UP
    assert plan.next_plan is None and plan.invoice_threshold is None


def test_charge_for_finds_the_charge_of_a_meter() -> None:
    plan = parse_plan(PRO)
    charge = plan.charge_for("api_calls")
    assert charge is not None and charge.meter == "api_calls"
    assert plan.charge_for("tokens") is None


@pytest.mark.parametrize(
    ("change", "pointer"),
    [
        ({"key": "Pro Plan"}, "/key"),
        ({"key": "p" * 64}, "/key"),
        ({"key": None}, "/key"),
        ({"name": ""}, "/name"),
        ({"currency": "usd"}, "/currency"),
        ({"currency": "XYZ"}, "/currency"),
        ({"currency": None}, "/currency"),
        ({"interval": "week"}, "/interval"),
        ({"base_fee": "-49"}, "/base_fee"),
        ({"base_fee": "49.0000000000001"}, "/base_fee"),
        ({"charges": {"meter": "api_calls"}}, "/charges"),
        ({"next_plan": "pro"}, "/next_plan"),  # not itself
        ({"next_plan": "Scale!"}, "/next_plan"),
        ({"invoice_threshold": "0"}, "/invoice_threshold"),
        ({"invoice_threshold": "-1"}, "/invoice_threshold"),
        ({"net_terms_days": 366}, "/net_terms_days"),
        ({"net_terms_days": -1}, "/net_terms_days"),
        ({"net_terms_days": "30"}, "/net_terms_days"),
        ({"net_terms_days": True}, "/net_terms_days"),
        ({"late_event_window_days": 1000}, "/late_event_window_days"),
        ({"rounding": "bankers"}, "/rounding"),
        ({"description": "x" * 1025}, "/description"),
        ({"version": 2}, "/version"),  # the service numbers versions
        ({"trial_days": 14}, "/trial_days"),
    ],
)
def test_a_bad_plan_field_is_reported_at_its_pointer(
    change: dict[str, object], pointer: str
) -> None:
    assert _pointers({**PRO, **change}) == [pointer]


def test_a_plan_body_must_be_an_object() -> None:
    assert _pointers(["pro"]) == ["/"]  # type: ignore[arg-type]


def test_a_plan_prices_each_meter_at_most_once() -> None:
    charges = [*PRO["charges"], {"meter": "api_calls", "model": "flat", "amount": "1"}]  # type: ignore[misc]
    assert _pointers({**PRO, "charges": charges}) == ["/charges/2/meter"]


def test_the_upgrade_policy_needs_a_next_plan() -> None:
    charge = {"meter": "api_calls", "model": "per_unit", "unit_price": "1"}
    upgrading = {**charge, "limit": "100", "policy": "upgrade"}
    assert parse_plan({**PRO, "charges": [upgrading]}).charges[0].limit == ChargeLimit(
        D(100), LimitPolicy.UPGRADE
    )
    body = {**PRO, "charges": [upgrading], "next_plan": None}
    assert _pointers(body) == ["/charges/0/policy"]


def test_every_bad_plan_and_charge_field_is_reported_at_once() -> None:
    body = {
        "key": "9",
        "currency": "EURO",
        "charges": [
            {"meter": "api_calls", "model": "per_unit", "unit_price": "-1"},
            "flat",
            {"meter": "tokens", "model": "graduated", "tiers": [{"up_to": "5", "unit_price": "1"}]},
        ],
        "net_terms_days": 400,
    }
    assert _pointers(body) == [
        "/key",
        "/currency",
        "/net_terms_days",
        "/charges/0/unit_price",
        "/charges/1",
        "/charges/2/tiers/0/up_to",
    ]


def test_plans_guard_their_invariants_when_built_directly() -> None:
    calls = Charge("api_calls", PerUnit(D(1)))
    with pytest.raises(ValueError, match="one charge per meter"):
        Plan("pro", "Pro", "USD", charges=(calls, calls))
    with pytest.raises(ValueError, match="ISO 4217"):
        Plan("pro", "Pro", "US$")
    with pytest.raises(ValueError, match="another plan"):
        Plan("pro", "Pro", "USD", next_plan="pro")
    with pytest.raises(ValueError, match="days"):
        Plan("pro", "Pro", "USD", net_terms_days=-1)
    with pytest.raises(ValueError, match="next_plan"):
        limited = replace(calls, limit=ChargeLimit(D(5), LimitPolicy.UPGRADE))
        Plan("pro", "Pro", "USD", charges=(limited,))
    assert Plan("pro", "Pro", "USD", interval="year").interval is Interval.YEAR  # type: ignore[arg-type]


def test_only_a_change_of_terms_needs_a_new_version() -> None:
    plan = parse_plan(PRO)
    assert same_terms(plan, replace(plan, version=7))
    assert same_terms(plan, parse_plan({**PRO, "base_fee": "49.00"}))
    assert not same_terms(plan, parse_plan({**PRO, "base_fee": "59"}))
    cheaper = {**PRO["charges"][0], "unit_price": "0.001"}  # type: ignore[index]
    assert not same_terms(plan, parse_plan({**PRO, "charges": [cheaper]}))
    assert not same_terms(plan, parse_plan({**PRO, "net_terms_days": 30}))


def test_a_plan_may_price_only_meters_the_catalog_knows() -> None:
    plan = parse_plan(PRO)
    require_known_meters(plan, {"api_calls", "storage_gb", "tokens"})
    with pytest.raises(InvalidInput) as caught:
        require_known_meters(plan, {"api_calls"})
    assert [(e.pointer, e.code) for e in caught.value.errors] == [
        ("/charges/1/meter", "unknown_meter")
    ]


# --- rating a period -------------------------------------------------------------------


def test_the_story_period_bills_the_overage_on_top_of_the_base_fee() -> None:
    plan = parse_plan({**PRO, "rounding": "half_up"})
    base, calls, storage = rate_period(plan, {"api_calls": D(4_500_000)})
    assert (base.meter, base.amount_exact, base.amount_minor) == (None, D(49), 4900)
    assert (calls.quantity, calls.included, calls.billable) == (
        D(4_500_000),
        D(10**6),
        D(3_500_000),
    )
    assert calls.unit_price == D("0.002")
    assert (calls.amount_exact, calls.amount_minor) == (D(7000), 700_000)
    assert (storage.quantity, storage.amount_minor) == (D(0), 0)  # no usage: no flat fee
    assert total_minor([base, calls, storage]) == 704_900  # USD 7,049.00


def test_usage_of_meters_the_plan_does_not_price_is_ignored() -> None:
    plan = parse_plan(PRO)
    lines = rate_period(plan, {"tokens": D(10**9), "storage_gb": D(1)})
    assert [line.meter for line in lines] == [None, "api_calls", "storage_gb"]
    assert total_minor(lines) == 4900 + 0 + 2000


def test_a_plan_without_base_fee_has_no_base_fee_line() -> None:
    plan = parse_plan({**PRO, "base_fee": "0"})
    assert [line.meter for line in rate_period(plan, {})] == ["api_calls", "storage_gb"]


def test_a_partial_period_prorates_the_base_fee_and_allowance_not_the_usage() -> None:
    plan = parse_plan({**PRO, "rounding": "half_up"})
    base, calls, _storage = rate_period(plan, {"api_calls": D(4_500_000)}, D("0.5"))
    assert (base.quantity, base.amount_exact, base.amount_minor) == (D("0.5"), D("24.5"), 2450)
    assert calls.quantity == D(4_500_000)  # usage is what it is
    assert calls.included == D(500_000)  # half the allowance
    assert calls.billable == D(4_000_000)
    assert calls.amount_minor == 800_000


def test_a_non_terminating_share_is_cut_to_twelve_places() -> None:
    plan = parse_plan({**PRO, "rounding": "half_up"})
    base, calls, _ = rate_period(plan, {"api_calls": D(4_500_000)}, Fraction(10, 31))
    assert base.quantity == D("0.322580645161")
    assert base.amount_exact == D("15.806451612889")  # 49 x 0.322580645161
    assert base.amount_minor == 1581
    assert calls.included == D("322580.645161")


def test_the_minimum_of_a_charge_is_prorated_with_the_period() -> None:
    body = {**PRO, "charges": [{"meter": "m", "model": "per_unit", "unit_price": "1"}]}
    body["charges"][0]["minimum"] = "10"  # type: ignore[index]
    plan = parse_plan(body)
    (_base, line) = rate_period(plan, {}, Fraction(1, 4))
    assert (line.amount_exact, line.bounded_by) == (D("2.5"), "minimum")


@pytest.mark.parametrize("fraction", [D("1.01"), D("-0.1"), Fraction(3, 2)])
def test_a_share_of_a_period_is_between_zero_and_one(fraction: Decimal | Fraction) -> None:
    with pytest.raises(ValueError, match="between 0 and 1"):
        rate_period(parse_plan(PRO), {}, fraction)


@pytest.mark.parametrize(
    ("currency", "rule", "minor"),
    [
        # 250 calls at 0.0005 = 0.125 dollars: a tie between 12 and 13 cents.
        ("USD", "half_up", 13),
        ("USD", "half_even", 12),
        ("USD", "down", 12),
        ("USD", "up", 13),
    ],
)
def test_a_line_is_rounded_once_with_the_plan_rule(currency: str, rule: str, minor: int) -> None:
    charge = {"meter": "api_calls", "model": "per_unit", "unit_price": "0.0005"}
    plan = parse_plan({"key": "p", "currency": currency, "rounding": rule, "charges": [charge]})
    (line,) = rate_period(plan, {"api_calls": D(250)})
    assert line.amount_exact == D("0.125")
    assert line.amount_minor == minor


@pytest.mark.parametrize(
    ("currency", "price", "expected"),
    [
        ("JPY", "4.938", {"half_up": 1235, "half_even": 1234, "down": 1234, "up": 1235}),
        ("KWD", "0.004938", {"half_up": 1235, "half_even": 1234, "down": 1234, "up": 1235}),
    ],
)
def test_yen_and_dinar_lines_round_to_their_minor_units(
    currency: str, price: str, expected: dict[str, int]
) -> None:
    # 250 units at 4.938 = 1,234.5 yen; at 0.004938 = 1.2345 dinar: both exact ties.
    for rule, minor in expected.items():
        charge = {"meter": "api_calls", "model": "per_unit", "unit_price": price}
        plan = parse_plan({"key": "p", "currency": currency, "rounding": rule, "charges": [charge]})
        (line,) = rate_period(plan, {"api_calls": D(250)})
        assert line.amount_minor == minor, rule


# --- properties ---------------------------------------------------------------------------

amounts = st.decimals(min_value=0, max_value=10**4, places=6)
usages = st.decimals(min_value=0, max_value=10**7, places=3)
meter_keys = st.sampled_from(["api_calls", "tokens", "storage_gb", "seats"])


@st.composite
def charges(draw: st.DrawFn, meter: str) -> Charge:
    price = draw(st.decimals(min_value=0, max_value=1, places=12))
    edges = sorted(draw(st.lists(usages.filter(lambda q: q > 0), max_size=3, unique=True)))
    tiers = tuple(Tier(edge, draw(amounts)) for edge in [*edges, None])
    options: list[PriceModel] = [PerUnit(price), Graduated(tiers)]
    model = draw(st.sampled_from(options))
    minimum = draw(st.none() | st.just(D(1)))
    return Charge(meter, model, draw(usages), minimum, draw(st.none() | st.just(D(10**6))))


@st.composite
def plans(draw: st.DrawFn) -> Plan:
    meters = draw(st.lists(meter_keys, unique=True, max_size=4))
    return Plan(
        key="p",
        name="P",
        currency=draw(st.sampled_from(["USD", "JPY", "KWD"])),
        base_fee=draw(amounts),
        charges=tuple(draw(charges(meter)) for meter in meters),
        rounding=draw(st.sampled_from(RoundingRule)),
        invoice_threshold=draw(st.none() | st.just(D(100))),
    )


@given(plans(), st.dictionaries(meter_keys, usages), st.fractions(0, 1, max_denominator=366))
def test_an_invoice_total_equals_the_sum_of_its_rounded_lines(
    plan: Plan, usage: dict[str, Decimal], fraction: Fraction
) -> None:
    lines = rate_period(plan, usage, fraction)
    assert total_minor(lines) == sum(line.amount_minor for line in lines)
    for line in lines:
        assert line.amount_minor == round_to_minor(line.amount_exact, plan.currency, plan.rounding)
        if line.meter is not None:
            assert line.included + line.billable == line.quantity
        if line.meter is not None and line.bounded_by is None:
            assert exact_sum(band.amount for band in line.breakdown) == line.amount_exact
    exact = exact_sum(line.amount_exact for line in lines)
    scaled = exact.scaleb({"USD": 2, "JPY": 0, "KWD": 3}[plan.currency], EXACT)
    assert abs(total_minor(lines) - scaled) <= len(lines)


@given(plans())
def test_a_plan_reads_back_what_it_writes(plan: Plan) -> None:
    assert parse_plan(plan.as_dict()) == plan
    assert same_terms(parse_plan(plan.as_dict()), plan)
