"""Exact decimal quantities: what can be stored and added without loss."""

from __future__ import annotations

from decimal import Context, Decimal, Inexact, InvalidOperation

# Quantities are stored as NUMERIC(38, 12) on PostgreSQL and as decimal text on SQLite;
# a value outside these bounds could not come back exactly, so it is refused at the edge.
MAX_FRACTION_DIGITS = 12
MAX_INTEGER_DIGITS = 26

# Arithmetic on quantities never rounds: 80 digits hold any sum of accepted values, and
# Inexact is trapped so that a rounding would raise instead of silently losing a unit.
EXACT = Context(prec=80, traps=[Inexact, InvalidOperation])


class NotAnExactQuantity(ValueError):
    pass


def to_quantity(raw: object) -> Decimal:
    """A JSON number (int or Decimal) or a decimal string as an exact Decimal."""
    if isinstance(raw, bool):
        raise NotAnExactQuantity("is a boolean, not a number")
    if isinstance(raw, int):
        value = Decimal(raw)
    elif isinstance(raw, Decimal):
        value = raw
    elif isinstance(raw, float):
        value = Decimal(repr(raw))
    elif isinstance(raw, str):
        try:
            value = Decimal(raw.strip())
        except InvalidOperation:
            raise NotAnExactQuantity(f"{raw!r} is not a number") from None
    else:
        raise NotAnExactQuantity(f"is a {type(raw).__name__}, not a number")
    return _checked(value)


def _checked(value: Decimal) -> Decimal:
    if not value.is_finite():
        raise NotAnExactQuantity("NaN and Infinity are not quantities")
    _sign, _digits, exponent = value.as_tuple()
    assert isinstance(exponent, int)
    fraction = max(0, -exponent)
    if fraction > MAX_FRACTION_DIGITS:
        normalized = value.normalize(EXACT)
        exp = normalized.as_tuple().exponent
        assert isinstance(exp, int)
        if -exp > MAX_FRACTION_DIGITS:
            raise NotAnExactQuantity(
                f"has more than {MAX_FRACTION_DIGITS} decimal places and cannot be stored exactly"
            )
        value = normalized
    if value != 0 and value.adjusted() >= MAX_INTEGER_DIGITS:
        raise NotAnExactQuantity(f"is larger than 10^{MAX_INTEGER_DIGITS} and cannot be stored")
    return value


def format_quantity(value: Decimal) -> str:
    """Plain notation without exponent or trailing zeros: Decimal('1E+3') -> '1000'."""
    if value == 0:
        return "0"
    text = format(value.normalize(EXACT), "f")
    return text


def format_optional(value: Decimal | None) -> str | None:
    """format_quantity, passing None through (nullable columns and JSON fields)."""
    return None if value is None else format_quantity(value)
