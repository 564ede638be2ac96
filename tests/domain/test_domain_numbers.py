"""Quantities are exact Decimals: what is accepted comes back unchanged, the rest is refused."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fairmeter.domain.numbers import NotAnExactQuantity, format_quantity, to_quantity

TWENTY_FIVE_DIGITS = 10**25 - 1


def _storable(digits: int) -> st.SearchStrategy[Decimal]:
    """Decimals with up to 12 places and at most `digits` significant digits."""
    return st.builds(
        lambda n, places: Decimal(n).scaleb(-places),
        st.integers(-(10**digits) + 1, 10**digits - 1),
        st.integers(0, min(12, digits)),
    ).filter(lambda d: d == 0 or d.adjusted() < 26)


@pytest.mark.parametrize(
    "raw",
    [
        Decimal("0.000000000001"),
        TWENTY_FIVE_DIGITS,
        -TWENTY_FIVE_DIGITS,
        Decimal("-0.5"),
        0,
        Decimal("1E+3"),
        Decimal("1.500000000000000"),
    ],
)
def test_an_exact_quantity_is_accepted_unchanged(raw: int | Decimal) -> None:
    value = to_quantity(raw)
    assert isinstance(value, Decimal)
    assert value == Decimal(raw)


@pytest.mark.parametrize(
    "raw",
    [
        Decimal("0.0000000000001"),
        Decimal("1.0000000000001"),
        10**26,
        Decimal("1E+26"),
        -(10**26),
        Decimal("NaN"),
        Decimal("sNaN"),
        Decimal("Infinity"),
        Decimal("-Infinity"),
        "NaN",
        "Infinity",
        "ten",
        True,
        None,
        [1],
    ],
)
def test_what_cannot_be_stored_exactly_is_refused(raw: object) -> None:
    with pytest.raises(NotAnExactQuantity):
        to_quantity(raw)


def test_decimal_strings_are_read_exactly() -> None:
    assert to_quantity(" 0.1 ") == Decimal("0.1")
    assert to_quantity("123456789012345678901234.5") == Decimal("123456789012345678901234.5")


def test_a_float_becomes_the_decimal_it_prints_as() -> None:
    value = to_quantity(0.1)
    assert isinstance(value, Decimal)
    assert value == Decimal("0.1")


@given(_storable(28))
def test_formatting_round_trips_without_exponent(value: Decimal) -> None:
    text = format_quantity(value)
    assert "E" not in text and "e" not in text
    assert Decimal(text) == value
    assert to_quantity(text) == value


def test_format_quantity_drops_trailing_zeros_and_exponents() -> None:
    assert format_quantity(Decimal("1E+3")) == "1000"
    assert format_quantity(Decimal("2.500")) == "2.5"
    assert format_quantity(Decimal("0.000000000001")) == "0.000000000001"
    assert format_quantity(Decimal("-0.00")) == "0"


BIG_EXACT = Decimal("1234567890123456789012345.123456789012")


def test_format_quantity_keeps_every_digit_of_a_storable_quantity() -> None:
    assert to_quantity(BIG_EXACT) == BIG_EXACT
    assert Decimal(format_quantity(BIG_EXACT)) == BIG_EXACT


def test_to_quantity_never_returns_a_different_number() -> None:
    raw = Decimal("1234567890123456789012345.1234567890120")
    try:
        value = to_quantity(raw)
    except NotAnExactQuantity:
        return
    assert value == raw
