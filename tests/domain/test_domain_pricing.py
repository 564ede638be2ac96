"""Price models priced by hand at and around every tier edge, with Hypothesis properties.

Every expected amount below was computed by hand, band by band, in the comment beside it.
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fairmeter.domain.errors import InvalidInput, Problems
from fairmeter.domain.money import exact_sum, round_to_minor
from fairmeter.domain.numbers import EXACT
from fairmeter.domain.pricing import (
    Charge,
    ChargeLimit,
    Flat,
    Graduated,
    LimitPolicy,
    Package,
    PerUnit,
    PriceModel,
    Tier,
    Volume,
    collect_charge,
    parse_charge,
    parse_price,
)

D = Decimal
# Graduated: (0, 1000] at 0.01 + 5 flat; (1000, 10000] at 0.005; above 10000 at 0.001 + 20 flat.
GRADUATED = Graduated(
    (Tier(D(1000), D("0.01"), D(5)), Tier(D(10000), D("0.005")), Tier(None, D("0.001"), D(20)))
)
# Volume: up to 1000 at 0.01; up to 10000 at 0.008 + 2 flat; above at 0.005 + 10 flat.
VOLUME = Volume(
    (Tier(D(1000), D("0.01")), Tier(D(10000), D("0.008"), D(2)), Tier(None, D("0.005"), D(10)))
)
PACKAGE = Package(package_price=D("1.5"), package_size=D(1000))
PER_CALL = PerUnit(D("0.002"))
FLAT = Flat(D(20))


@pytest.mark.parametrize(
    ("model", "quantity", "expected"),
    [
        (PER_CALL, "0", "0"),
        (PER_CALL, "1", "0.002"),
        (PER_CALL, "0.5", "0.001"),
        (PER_CALL, "3500000", "7000"),  # 3,500,000 x 0.002
        (PACKAGE, "0", "0"),  # no package started
        (PACKAGE, "1", "1.5"),  # 1 started package
        (PACKAGE, "0.001", "1.5"),
        (PACKAGE, "999", "1.5"),
        (PACKAGE, "1000", "1.5"),  # exactly one full package
        (PACKAGE, "1001", "3.0"),  # a second package started
        (PACKAGE, "2000", "3.0"),
        (PACKAGE, "2001", "4.5"),
        (GRADUATED, "0", "0"),  # no band touched: no flat fee
        (GRADUATED, "1", "5.01"),  # 1 x 0.01 + 5
        (GRADUATED, "999", "14.99"),  # 9.99 + 5
        (GRADUATED, "1000", "15"),  # 10 + 5
        (GRADUATED, "1001", "15.005"),  # 15 + 1 x 0.005
        (GRADUATED, "9999", "59.995"),  # 15 + 8999 x 0.005 = 15 + 44.995
        (GRADUATED, "10000", "60"),  # 15 + 45
        (GRADUATED, "10001", "80.001"),  # 60 + 1 x 0.001 + 20
        (GRADUATED, "1000000", "1070"),  # 60 + 990000 x 0.001 + 20
        (VOLUME, "0", "0"),  # lands in no tier: no flat fee
        (VOLUME, "1", "0.01"),
        (VOLUME, "999", "9.99"),
        (VOLUME, "1000", "10"),  # 1000 x 0.01, still the first tier
        (VOLUME, "1001", "10.008"),  # 1001 x 0.008 + 2
        (VOLUME, "9999", "81.992"),  # 9999 x 0.008 + 2
        (VOLUME, "10000", "82"),  # 80 + 2
        (VOLUME, "10001", "60.005"),  # 10001 x 0.005 + 10: cheaper than 10000
        (VOLUME, "1000000", "5010"),  # 5000 + 10
        (FLAT, "0", "0"),
        (FLAT, "0.001", "20"),
        (FLAT, "1", "20"),
        (FLAT, "1000000", "20"),
    ],
)
def test_each_model_prices_the_hand_computed_amount_at_tier_edges(
    model: PriceModel, quantity: str, expected: str
) -> None:
    assert model.amount(D(quantity)) == D(expected)


def test_the_story_overage_is_seven_thousand_dollars_exactly() -> None:
    charge = Charge("api_calls", PER_CALL, included=D(1_000_000))
    rated = charge.rate(D(4_500_000))
    assert rated.included_used == D(1_000_000)
    assert rated.included_left == 0
    assert rated.billable == D(3_500_000)
    assert rated.amount == D("7000.00")
    assert round_to_minor(rated.amount, "USD") == 700_000


@pytest.mark.parametrize(
    ("quantity", "used", "left", "billable", "amount"),
    [
        ("0", "0", "1000000", "0", "0"),
        ("999999", "999999", "1", "0", "0"),
        ("1000000", "1000000", "0", "0", "0"),
        ("1000001", "1000000", "0", "1", "0.002"),
        ("-5", "0", "1000000", "0", "0"),  # a negative total (refunds) is no usage
    ],
)
def test_included_units_are_free_before_the_price_applies(
    quantity: str, used: str, left: str, billable: str, amount: str
) -> None:
    rated = Charge("api_calls", PER_CALL, included=D(1_000_000)).rate(D(quantity))
    assert (rated.included_used, rated.included_left) == (D(used), D(left))
    assert (rated.billable, rated.amount) == (D(billable), D(amount))


def test_included_units_come_off_the_first_tiers_of_a_graduated_price() -> None:
    rated = Charge("api_calls", GRADUATED, included=D(500)).rate(D(1500))
    assert rated.billable == D(1000)
    assert rated.amount == D(15)  # the first band again: 1000 x 0.01 + 5


@pytest.mark.parametrize(
    ("quantity", "amount", "bounded_by"),
    [
        ("0", "5", "minimum"),  # the minimum is owed even without usage
        ("499", "5", "minimum"),  # 4.99 < 5
        ("500", "5", None),  # exactly the minimum
        ("501", "5.01", None),
        ("9999", "99.99", None),
        ("10000", "100", None),  # exactly the maximum
        ("10001", "100", "maximum"),  # 100.01 capped
        ("99999999", "100", "maximum"),
    ],
)
def test_minimum_and_maximum_bound_the_charge_per_period(
    quantity: str, amount: str, bounded_by: str | None
) -> None:
    charge = Charge("api_calls", PerUnit(D("0.01")), minimum=D(5), maximum=D(100))
    rated = charge.rate(D(quantity))
    assert rated.amount == D(amount)
    assert rated.bounded_by == bounded_by
    assert rated.usage_amount == D(quantity) * D("0.01")


def test_graduated_charges_each_band_at_its_own_price() -> None:
    bands = GRADUATED.breakdown(D(10001))
    assert [(b.lower, b.upper, b.units) for b in bands] == [
        (D(0), D(1000), D(1000)),
        (D(1000), D(10000), D(9000)),
        (D(10000), None, D(1)),
    ]
    assert [b.amount for b in bands] == [D(15), D(45), D("20.001")]
    assert [b.flat_fee for b in bands] == [D(5), D(0), D(20)]


def test_volume_prices_the_whole_quantity_in_the_tier_it_lands_in() -> None:
    (use,) = VOLUME.breakdown(D(1001))
    assert (use.lower, use.upper, use.units) == (D(1000), D(10000), D(1001))
    assert (use.unit_price, use.flat_fee, use.amount) == (D("0.008"), D(2), D("10.008"))


def test_a_package_breakdown_counts_started_packages() -> None:
    (use,) = PACKAGE.breakdown(D(2001))
    assert (use.packages, use.units, use.unit_price, use.amount) == (3, D(2001), D("1.5"), D("4.5"))
    fractional = Package(D(2), D("0.5"))
    assert fractional.packages(D("1.2")) == 3
    assert fractional.amount(D("1.2")) == D(6)


@pytest.mark.parametrize("model", [PER_CALL, PACKAGE, GRADUATED, VOLUME, FLAT])
def test_zero_usage_costs_nothing_and_shows_no_band(model: PriceModel) -> None:
    assert model.amount(D(0)) == 0
    assert model.breakdown(D(0)) == ()


@pytest.mark.parametrize("model", [PER_CALL, PACKAGE, GRADUATED, VOLUME, FLAT])
def test_a_model_refuses_a_negative_billable_quantity(model: PriceModel) -> None:
    with pytest.raises(ValueError, match="non-negative"):
        model.amount(D(-1))


@pytest.mark.parametrize(
    "build",
    [
        lambda: PerUnit(D("-0.01")),
        lambda: Package(D(1), D(0)),
        lambda: Flat(D(-1)),
        lambda: Graduated(()),
        lambda: Graduated((Tier(D(10), D(1)), Tier(D(10), D(1)), Tier(None, D(1)))),
        lambda: Volume((Tier(D(10), D(1)), Tier(D(20), D(1)))),
        lambda: Volume((Tier(None, D(1)), Tier(None, D(1)))),
        lambda: Tier(D(0), D(-1)),
        lambda: Charge("api_calls", PER_CALL, minimum=D(10), maximum=D(5)),
        lambda: Charge("Api-Calls", PER_CALL),
        lambda: Charge("api_calls", PER_CALL, included=D(-1)),
    ],
)
def test_price_values_guard_their_invariants(build: object) -> None:
    with pytest.raises(ValueError):
        build()  # type: ignore[operator]


# --- properties -------------------------------------------------------------------------

quantities = st.decimals(min_value=0, max_value=10**9, places=3)
prices = st.decimals(min_value=0, max_value=100, places=12)


@st.composite
def tier_lists(draw: st.DrawFn) -> tuple[Tier, ...]:
    edges = draw(
        st.lists(
            st.decimals(min_value=D("0.001"), max_value=10**8, places=3), max_size=6, unique=True
        )
    )
    up_tos: list[Decimal | None] = [*sorted(edges), None]
    fees = st.decimals(min_value=0, max_value=1000, places=2)
    return tuple(Tier(up_to, draw(prices), draw(fees)) for up_to in up_tos)


@given(tier_lists(), quantities, quantities)
def test_graduated_totals_never_decrease_as_quantity_grows(
    tiers: tuple[Tier, ...], a: Decimal, b: Decimal
) -> None:
    model = Graduated(tiers)
    low, high = sorted((a, b))
    assert model.amount(low) <= model.amount(high)


@given(tier_lists(), quantities)
def test_graduated_bands_add_up_to_the_amount_and_the_quantity(
    tiers: tuple[Tier, ...], quantity: Decimal
) -> None:
    model = Graduated(tiers)
    bands = model.breakdown(quantity)
    assert exact_sum(band.amount for band in bands) == model.amount(quantity)
    assert exact_sum(band.units for band in bands) == quantity
    assert all(band.units > 0 for band in bands)


@given(tier_lists(), quantities)
def test_volume_is_the_whole_quantity_at_one_tier(
    tiers: tuple[Tier, ...], quantity: Decimal
) -> None:
    model = Volume(tiers)
    bands = model.breakdown(quantity)
    assert exact_sum(band.amount for band in bands) == model.amount(quantity)
    if quantity > 0:
        (band,) = bands
        assert band.lower < quantity and (band.upper is None or quantity <= band.upper)
        assert band.unit_price is not None
        assert band.amount == EXACT.add(EXACT.multiply(quantity, band.unit_price), band.flat_fee)


@given(prices, st.decimals(min_value=D("0.001"), max_value=10**6, places=3), quantities, quantities)
def test_per_unit_and_package_totals_never_decrease(
    price: Decimal, size: Decimal, a: Decimal, b: Decimal
) -> None:
    low, high = sorted((a, b))
    for model in (PerUnit(price), Package(price, size)):
        assert model.amount(low) <= model.amount(high)
        assert exact_sum(u.amount for u in model.breakdown(high)) == model.amount(high)


@given(tier_lists(), quantities, quantities, quantities, st.booleans())
def test_a_bounded_graduated_charge_never_decreases_and_stays_in_bounds(
    tiers: tuple[Tier, ...], included: Decimal, a: Decimal, b: Decimal, bounded: bool
) -> None:
    minimum, maximum = (D(5), D(5000)) if bounded else (None, None)
    charge = Charge("api_calls", Graduated(tiers), included, minimum, maximum)
    low, high = sorted((a, b))
    assert charge.rate(low).amount <= charge.rate(high).amount
    rated = charge.rate(high)
    assert rated.included_used + rated.billable == high
    if bounded:
        assert D(5) <= rated.amount <= D(5000)


# --- parsing ----------------------------------------------------------------------------

GRADUATED_BODY: dict[str, object] = {
    "meter": "api_calls",
    "model": "graduated",
    "tiers": [
        {"up_to": "1000", "unit_price": "0.01", "flat_fee": "5"},
        {"up_to": "10000", "unit_price": "0.005"},
        {"up_to": None, "unit_price": "0.001", "flat_fee": "20"},
    ],
    "included": "1000000",
    "minimum": "10",
    "maximum": "5000",
}


def _pointers(body: Mapping[str, object], prefix: str = "/charges/0") -> list[str]:
    with pytest.raises(InvalidInput) as caught:
        parse_charge(body, prefix)
    return [error.pointer for error in caught.value.errors]


def test_the_documented_charge_bodies_are_accepted() -> None:
    charge = parse_charge(GRADUATED_BODY, "/charges/0")
    assert charge == Charge("api_calls", GRADUATED, D(1_000_000), D(10), D(5000))
    assert (
        parse_charge({"meter": "m", "model": "per_unit", "unit_price": "0.002"}).model == PER_CALL
    )
    package = {"meter": "m", "model": "package", "package_size": "1000", "package_price": "1.5"}
    assert parse_charge(package).model == PACKAGE
    assert parse_charge({"meter": "m", "model": "flat", "amount": "20"}).model == FLAT
    volume = {**GRADUATED_BODY, "model": "volume"}
    assert parse_charge(volume).model == Volume(GRADUATED.tiers)


def test_a_price_model_is_parsed_alone() -> None:
    assert parse_price({"model": "per_unit", "unit_price": 5}) == PerUnit(D(5))
    assert parse_price({"model": "per_unit", "unit_price": D("0.5")}) == PerUnit(D("0.5"))
    with pytest.raises(InvalidInput) as caught:
        parse_price({"model": "per_unit", "unit_price": "1", "included": "5"}, "/price")
    assert [e.pointer for e in caught.value.errors] == ["/price/included"]
    with pytest.raises(InvalidInput) as caught:
        parse_price(["per_unit"], "/price")  # type: ignore[arg-type]
    assert [e.pointer for e in caught.value.errors] == ["/price"]


@pytest.mark.parametrize(
    ("change", "pointer"),
    [
        ({"model": "per_unit", "unit_price": "-0.002"}, "/charges/0/unit_price"),
        ({"model": "per_unit", "unit_price": "two"}, "/charges/0/unit_price"),
        ({"model": "per_unit", "unit_price": "0.0000000000001"}, "/charges/0/unit_price"),
        ({"model": "per_unit", "unit_price": 0.002}, "/charges/0/unit_price"),
        ({"model": "per_unit", "unit_price": None}, "/charges/0/unit_price"),
        (
            {"model": "package", "package_price": "1", "package_size": "0"},
            "/charges/0/package_size",
        ),
        (
            {"model": "package", "package_price": "1", "package_size": "-5"},
            "/charges/0/package_size",
        ),
        ({"model": "package", "package_size": "10"}, "/charges/0/package_price"),
        ({"model": "flat", "amount": "-20"}, "/charges/0/amount"),
        ({"model": "average"}, "/charges/0/model"),
        ({"model": None}, "/charges/0/model"),
        ({"model": ["per_unit"]}, "/charges/0/model"),
        ({"meter": "Api Calls"}, "/charges/0/meter"),
        ({"meter": None}, "/charges/0/meter"),
        ({"included": "-1"}, "/charges/0/included"),
        ({"minimum": "-1"}, "/charges/0/minimum"),
        ({"minimum": "5001"}, "/charges/0/minimum"),  # above the maximum
        ({"maximum": "x"}, "/charges/0/maximum"),
        ({"unit_price": "1"}, "/charges/0/unit_price"),  # not a field of a graduated charge
        ({"includd": "5"}, "/charges/0/includd"),
        ({"a/b~": 1}, "/charges/0/a~1b~0"),
        ({"tiers": []}, "/charges/0/tiers"),
        ({"tiers": "1000"}, "/charges/0/tiers"),
        ({"tiers": [{"up_to": None, "unit_price": "1"}] * 51}, "/charges/0/tiers"),
    ],
)
def test_a_bad_charge_field_is_reported_at_its_pointer(
    change: dict[str, object], pointer: str
) -> None:
    body = {**GRADUATED_BODY, **change}
    if body["model"] not in ("graduated", "volume"):
        del body["tiers"]
    assert _pointers(body) == [pointer]


def _tiers(*edges: str | None, price: object = "0.01") -> dict[str, object]:
    tiers = [{"up_to": edge, "unit_price": price} for edge in edges]
    return {"meter": "api_calls", "model": "graduated", "tiers": tiers}


@pytest.mark.parametrize(
    ("edges", "indexes"),
    [
        (("1000", "500", None), [1]),  # unordered
        (("1000", "1000", None), [1]),  # overlapping: the same edge twice
        (("1000", "2000", "1500", "1800", None), [2, 3]),  # both below 2000
        (("1000", "2000"), [1]),  # no final open tier
        (("1000",), [0]),
        ((None, "1000", None), [0]),  # open tier before the last
        (("0", None), [0]),  # the first band would be empty
    ],
)
def test_tiers_must_be_strictly_increasing_and_end_open(
    edges: tuple[str | None, ...], indexes: list[int]
) -> None:
    assert _pointers(_tiers(*edges)) == [f"/charges/0/tiers/{i}/up_to" for i in indexes]


def test_tier_order_messages_name_the_rule() -> None:
    with pytest.raises(InvalidInput) as caught:
        parse_charge(_tiers("1000", "500", "2000"), "/charges/0")
    details = {e.pointer: e.detail for e in caught.value.errors}
    assert details == {
        "/charges/0/tiers/1/up_to": "must be greater than the previous tier's up_to",
        "/charges/0/tiers/2/up_to": "must be null: the last tier is open-ended",
    }


def test_every_bad_tier_field_is_reported_at_once() -> None:
    body = _tiers("1000", "abc", None, price="0.01")
    body["tiers"][0]["unit_price"] = "-1"  # type: ignore[index]
    body["tiers"][2]["flat_fee"] = "-5"  # type: ignore[index]
    body["tiers"].insert(2, "a tier")  # type: ignore[attr-defined]
    body["tiers"][1]["price"] = "1"  # type: ignore[index]
    assert sorted(_pointers(body)) == [
        "/charges/0/tiers/0/unit_price",
        "/charges/0/tiers/1/price",
        "/charges/0/tiers/1/up_to",
        "/charges/0/tiers/2",
        "/charges/0/tiers/3/flat_fee",
    ]


def test_every_bad_charge_field_is_reported_at_once() -> None:
    body = {
        "meter": "9lives",
        "model": "package",
        "package_size": "0",
        "package_price": "-1",
        "minimum": "10",
        "maximum": "1",
        "extra": True,
    }
    assert sorted(_pointers(body, "")) == [
        "/extra",
        "/meter",
        "/minimum",
        "/package_price",
        "/package_size",
    ]


def test_a_charge_that_is_not_an_object_is_reported_at_its_own_pointer() -> None:
    problems = Problems()
    assert collect_charge(["api_calls"], "/charges/3", problems) is None
    assert [e.pointer for e in problems.items] == ["/charges/3"]


def test_a_limit_is_kept_with_its_policy() -> None:
    body = {**GRADUATED_BODY, "limit": "5000000", "policy": "block"}
    assert parse_charge(body).limit == ChargeLimit(D(5_000_000), LimitPolicy.BLOCK)
    throttled = {**body, "policy": "throttle", "throttle_rate": "10"}
    assert parse_charge(throttled).limit == ChargeLimit(D(5_000_000), LimitPolicy.THROTTLE, D(10))
    assert parse_charge(throttled).as_dict()["throttle_rate"] == "10"


@pytest.mark.parametrize(
    ("change", "pointers"),
    [
        ({"policy": "block"}, ["/limit"]),  # a policy without a limit
        ({"limit": "100"}, ["/policy"]),  # a limit without a policy
        ({"limit": "-1", "policy": "block"}, ["/limit"]),
        ({"limit": "100", "policy": "freeze"}, ["/policy"]),
        ({"limit": "100", "policy": "throttle"}, ["/throttle_rate"]),
        ({"limit": "100", "policy": "throttle", "throttle_rate": "0"}, ["/throttle_rate"]),
        ({"limit": "100", "policy": "overage", "throttle_rate": "5"}, ["/throttle_rate"]),
    ],
)
def test_a_bad_limit_is_reported_at_its_pointer(
    change: dict[str, object], pointers: list[str]
) -> None:
    assert _pointers({**GRADUATED_BODY, **change}, "") == pointers


@given(tier_lists(), quantities, st.sampled_from([None, D(0), D(3)]), st.booleans())
def test_a_charge_reads_back_what_it_writes(
    tiers: tuple[Tier, ...], included: Decimal, minimum: Decimal | None, volume: bool
) -> None:
    model = Volume(tiers) if volume else Graduated(tiers)
    charge = Charge("api_calls", model, included, minimum, None)
    assert parse_charge(charge.as_dict()) == charge


def test_a_mistyped_model_is_reported_once_not_with_each_of_its_fields() -> None:
    assert _pointers({**GRADUATED_BODY, "model": "graduatd"}) == ["/charges/0/model"]
