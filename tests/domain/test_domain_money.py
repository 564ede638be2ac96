"""Money is exact integer minor units per ISO 4217 currency, rounded in one place only."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fairmeter.domain.money import (
    Money,
    NotAnAmount,
    RoundingRule,
    exact_sum,
    is_currency,
    minor_unit_exponent,
    parse_amount,
    round_to_minor,
    to_minor,
)
from fairmeter.domain.numbers import EXACT

HALF_UP, HALF_EVEN, DOWN, UP = (
    RoundingRule.HALF_UP,
    RoundingRule.HALF_EVEN,
    RoundingRule.DOWN,
    RoundingRule.UP,
)
CURRENCIES = ["JPY", "USD", "KWD", "CLF"]
amounts = st.decimals(min_value=-(10**9), max_value=10**9, places=12)


@pytest.mark.parametrize(
    ("currency", "exponent"),
    [
        ("JPY", 0),
        ("KRW", 0),
        ("ISK", 0),
        ("USD", 2),
        ("EUR", 2),
        ("KWD", 3),
        ("BHD", 3),
        ("CLF", 4),
    ],
)
def test_minor_units_come_from_the_iso_4217_table(currency: str, exponent: int) -> None:
    assert is_currency(currency)
    assert minor_unit_exponent(currency) == exponent


def test_an_unknown_currency_has_no_minor_unit() -> None:
    assert not is_currency("XYZ")
    assert not is_currency("usd")
    with pytest.raises(ValueError, match="ISO 4217"):
        minor_unit_exponent("XYZ")


@pytest.mark.parametrize(
    ("amount", "currency", "rule", "minor"),
    [
        # JPY has no decimals: .5 of a yen is the tie.
        ("1234.5", "JPY", HALF_UP, 1235),
        ("1234.5", "JPY", HALF_EVEN, 1234),
        ("1235.5", "JPY", HALF_EVEN, 1236),
        ("1234.5", "JPY", DOWN, 1234),
        ("1234.5", "JPY", UP, 1235),
        ("1234.000000000001", "JPY", UP, 1235),
        ("1234.999999999999", "JPY", DOWN, 1234),
        ("1234.4", "JPY", HALF_UP, 1234),
        # USD has 2 decimals.
        ("0.125", "USD", HALF_UP, 13),
        ("0.125", "USD", HALF_EVEN, 12),
        ("0.135", "USD", HALF_EVEN, 14),
        ("0.125", "USD", DOWN, 12),
        ("0.125", "USD", UP, 13),
        ("0.124999999999", "USD", HALF_UP, 12),
        ("7000.000", "USD", HALF_UP, 700000),
        ("0.001", "USD", UP, 1),
        ("0.009", "USD", DOWN, 0),
        # KWD has 3 decimals.
        ("1.2345", "KWD", HALF_UP, 1235),
        ("1.2345", "KWD", HALF_EVEN, 1234),
        ("1.2355", "KWD", HALF_EVEN, 1236),
        ("1.2345", "KWD", DOWN, 1234),
        ("1.2341", "KWD", UP, 1235),
        # Negative amounts (credits) round like the positive amount they mirror.
        ("-0.125", "USD", HALF_UP, -13),
        ("-0.125", "USD", HALF_EVEN, -12),
        ("-0.129", "USD", DOWN, -12),
        ("-0.121", "USD", UP, -13),
        ("0", "KWD", UP, 0),
    ],
)
def test_a_line_rounds_to_the_currency_minor_unit_with_its_rule(
    amount: str, currency: str, rule: RoundingRule, minor: int
) -> None:
    assert round_to_minor(Decimal(amount), currency, rule) == minor


def test_half_up_is_the_default_rule() -> None:
    assert round_to_minor(Decimal("0.125"), "USD") == 13
    assert Money.of(Decimal("2.5"), "JPY") == Money(3, "JPY")
    assert Money.of(Decimal("2.5"), "JPY", HALF_EVEN) == Money(2, "JPY")


@given(amounts, st.sampled_from(CURRENCIES), st.sampled_from([HALF_UP, HALF_EVEN]))
def test_half_rules_land_within_half_a_minor_unit(
    amount: Decimal, currency: str, rule: RoundingRule
) -> None:
    scaled = amount.scaleb(minor_unit_exponent(currency), EXACT)
    assert abs(round_to_minor(amount, currency, rule) - scaled) <= Decimal("0.5")


@given(amounts, st.sampled_from(CURRENCIES))
def test_down_never_grows_and_up_never_shrinks_a_magnitude(amount: Decimal, currency: str) -> None:
    scaled = amount.scaleb(minor_unit_exponent(currency), EXACT)
    down, up = round_to_minor(amount, currency, DOWN), round_to_minor(amount, currency, UP)
    assert abs(down) <= abs(scaled) <= abs(up)
    assert abs(up - down) <= 1
    assert (up == down) == (scaled == int(scaled))


@given(st.integers(-(10**15), 10**15), st.sampled_from(CURRENCIES), st.sampled_from(RoundingRule))
def test_an_amount_already_in_minor_units_is_not_changed_by_rounding(
    minor: int, currency: str, rule: RoundingRule
) -> None:
    amount = Money(minor, currency).as_decimal()
    assert round_to_minor(amount, currency, rule) == minor
    assert to_minor(amount, currency) == minor


def test_to_minor_refuses_to_round() -> None:
    assert to_minor(Decimal("19.990000"), "USD") == 1999
    with pytest.raises(ValueError, match="more decimals"):
        to_minor(Decimal("19.995"), "USD")
    with pytest.raises(ValueError, match="more decimals"):
        to_minor(Decimal("1.5"), "JPY")


def test_rounding_refuses_what_is_not_a_finite_decimal() -> None:
    with pytest.raises(ValueError):
        round_to_minor(Decimal("NaN"), "USD")
    with pytest.raises(ValueError):
        round_to_minor(0.5, "USD")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("money", "text"),
    [
        (Money(700000, "USD"), "USD 7,000.00"),
        (Money(1235, "JPY"), "JPY 1,235"),
        (Money(1235, "KWD"), "KWD 1.235"),
        (Money(123456789, "USD"), "USD 1,234,567.89"),
        (Money(-5, "USD"), "USD -0.05"),
        (Money(0, "JPY"), "JPY 0"),
        (Money(12345, "CLF"), "CLF 1.2345"),
    ],
)
def test_money_is_displayed_grouped_with_the_currency_decimals(money: Money, text: str) -> None:
    assert money.format() == text
    assert str(money) == text


def test_money_adds_and_subtracts_only_within_one_currency() -> None:
    assert Money(150, "USD") + Money(75, "USD") == Money(225, "USD")
    assert Money(150, "USD") - Money(175, "USD") == Money(-25, "USD")
    assert -Money(3, "JPY") == Money(-3, "JPY")
    with pytest.raises(ValueError, match="USD and EUR"):
        Money(1, "USD") + Money(1, "EUR")
    with pytest.raises(ValueError, match="USD and EUR"):
        Money(1, "USD") - Money(1, "EUR")


def test_money_guards_its_currency_and_integer_minor_units() -> None:
    with pytest.raises(ValueError, match="ISO 4217"):
        Money(1, "XYZ")
    with pytest.raises(TypeError):
        Money(True, "USD")
    with pytest.raises(TypeError):
        Money(Decimal("1.5"), "USD")  # type: ignore[arg-type]


@given(st.lists(st.integers(-(10**12), 10**12), max_size=20), st.sampled_from(CURRENCIES))
def test_money_arithmetic_stays_exact(minors: list[int], currency: str) -> None:
    moneys = [Money(minor, currency) for minor in minors]
    total = sum(moneys, Money.zero(currency))
    assert total.minor == sum(minors)
    assert total.as_decimal() == exact_sum(m.as_decimal() for m in moneys)
    for money in moneys:
        assert total - money + money == total


@pytest.mark.parametrize(
    ("raw", "value"),
    [
        ("19.99", "19.99"),
        ("0", "0"),
        (" 7000 ", "7000"),
        (5, "5"),
        (Decimal("0.5"), "0.5"),
        ("0.000000000001", "0.000000000001"),
        ("1.500000000000000", "1.5"),
    ],
)
def test_an_amount_is_an_exact_non_negative_decimal(raw: object, value: str) -> None:
    assert parse_amount(raw, "USD") == Decimal(value)


@pytest.mark.parametrize(
    "raw",
    ["-0.01", -1, "ten", "", "NaN", "Infinity", "0.0000000000001", 0.1, True, None, ["1"]],
)
def test_what_is_not_an_exact_amount_is_refused(raw: object) -> None:
    with pytest.raises(NotAnAmount):
        parse_amount(raw, "USD")


def test_an_amount_may_carry_more_decimals_than_its_currency() -> None:
    # A fee of 0.5 yen is legal: it is rounded only when it lands on an invoice line.
    assert parse_amount("0.5", "JPY") == Decimal("0.5")
    with pytest.raises(ValueError, match="ISO 4217"):
        parse_amount("1", "XYZ")
