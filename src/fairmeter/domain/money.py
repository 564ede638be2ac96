"""Currencies, exact amounts and the one place an amount is rounded to a currency.

Amounts at rest are integer minor units plus an ISO 4217 code (`Money`). Prices, fees and
thresholds are exact Decimals with up to 12 decimal places; an invoice line's exact amount
is rounded once, by `round_to_minor`, with the rule the invoice stores (`RoundingRule`).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from decimal import ROUND_DOWN, ROUND_HALF_EVEN, ROUND_HALF_UP, ROUND_UP, Decimal, Inexact
from enum import StrEnum

from fairmeter.domain.numbers import EXACT, NotAnExactQuantity, to_quantity

# ISO 4217 active codes by minor-unit exponent: a table, never a hard-coded 100.
_CODES_BY_EXPONENT: dict[int, str] = {
    2: (
        "AED AFN ALL AMD ANG AOA ARS AUD AWG AZN BAM BBD BDT BGN BMD BND BOB BRL BSD BTN "
        "BWP BYN BZD CAD CDF CHF CNY COP CRC CUP CVE CZK DKK DOP DZD EGP ERN ETB EUR FJD "
        "FKP GBP GEL GHS GIP GMD GTQ GYD HKD HNL HTG HUF IDR ILS INR IRR JMD KES KGS KHR "
        "KPW KYD KZT LAK LBP LKR LRD LSL MAD MDL MGA MKD MMK MNT MOP MRU MUR MVR MWK MXN "
        "MYR MZN NAD NGN NIO NOK NPR NZD PAB PEN PGK PHP PKR PLN QAR RON RSD RUB SAR SBD "
        "SCR SDG SEK SGD SHP SLE SOS SRD SSP STN SVC SYP SZL THB TJS TMT TOP TRY TTD TWD "
        "TZS UAH USD UYU UZS VES WST XCD YER ZAR ZMW ZWL"
    ),
    0: "BIF CLP DJF GNF ISK JPY KMF KRW PYG RWF UGX UYI VND VUV XAF XOF XPF",
    3: "BHD IQD JOD KWD LYD OMR TND",
    4: "CLF UYW",
}
_EXPONENTS: dict[str, int] = {
    code: exponent for exponent, codes in _CODES_BY_EXPONENT.items() for code in codes.split()
}


def is_currency(code: str) -> bool:
    return code in _EXPONENTS


def minor_unit_exponent(code: str) -> int:
    try:
        return _EXPONENTS[code]
    except KeyError:
        raise ValueError(f"{code!r} is not an ISO 4217 currency code") from None


class RoundingRule(StrEnum):
    """How a line's exact amount becomes minor units; symmetric around zero (a credit
    rounds like the charge it mirrors)."""

    HALF_UP = "half_up"
    HALF_EVEN = "half_even"
    DOWN = "down"
    UP = "up"


_DECIMAL_ROUNDING = {
    RoundingRule.HALF_UP: ROUND_HALF_UP,
    RoundingRule.HALF_EVEN: ROUND_HALF_EVEN,
    RoundingRule.DOWN: ROUND_DOWN,
    RoundingRule.UP: ROUND_UP,
}


def round_to_minor(
    amount: Decimal, currency: str, rule: RoundingRule = RoundingRule.HALF_UP
) -> int:
    """The one place an amount is rounded: exact `amount` to integer minor units."""
    if not isinstance(amount, Decimal) or not amount.is_finite():
        raise ValueError(f"{amount!r} is not a finite Decimal amount")
    scaled = amount.scaleb(minor_unit_exponent(currency), EXACT)
    # Rounding is the point here, so Inexact is not trapped; the precision still holds
    # every amount an exact computation can produce.
    context = EXACT.copy()
    context.traps[Inexact] = False
    context.rounding = _DECIMAL_ROUNDING[RoundingRule(rule)]
    return int(scaled.to_integral_value(context=context))


def to_minor(amount: Decimal, currency: str) -> int:
    """An amount already at the currency's precision as minor units; refuses to round."""
    if not isinstance(amount, Decimal) or not amount.is_finite():
        raise ValueError(f"{amount!r} is not a finite Decimal amount")
    scaled = amount.scaleb(minor_unit_exponent(currency), EXACT)
    if scaled != scaled.to_integral_value():
        raise ValueError(f"{amount} has more decimals than {currency} allows")
    return int(scaled)


def exact_sum(values: Iterable[Decimal]) -> Decimal:
    """A sum that never rounds. Python's sum() adds in the default 28-digit context and
    would silently round a long exact amount (a 12-place price times a large quantity)."""
    total = Decimal(0)
    for value in values:
        total = EXACT.add(total, value)
    return total


class NotAnAmount(ValueError):
    pass


def parse_decimal(raw: object) -> Decimal:
    """A price, fee, threshold or term: a decimal string (or an exact JSON number),
    non-negative, with at most 12 decimal places. Floats are refused: they are not exact."""
    if isinstance(raw, float):
        raise NotAnAmount('must be a decimal string such as "19.99", not a float')
    try:
        value = to_quantity(raw)
    except NotAnExactQuantity as exc:
        raise NotAnAmount(str(exc)) from None
    if value < 0:
        raise NotAnAmount("must not be negative")
    return value


def parse_amount(raw: object, currency: str) -> Decimal:
    """A fee or threshold in `currency`: like a price, up to 12 decimal places (not only
    the currency's), because it is rounded only when it lands on an invoice line."""
    minor_unit_exponent(currency)
    return parse_decimal(raw)


@dataclass(frozen=True)
class Money:
    """An amount at rest: integer minor units of one currency."""

    minor: int
    currency: str

    def __post_init__(self) -> None:
        if isinstance(self.minor, bool) or not isinstance(self.minor, int):
            raise TypeError("minor units must be an int")
        minor_unit_exponent(self.currency)

    @classmethod
    def zero(cls, currency: str) -> Money:
        return cls(0, currency)

    @classmethod
    def of(cls, amount: Decimal, currency: str, rule: RoundingRule = RoundingRule.HALF_UP) -> Money:
        return cls(round_to_minor(amount, currency, rule), currency)

    def __add__(self, other: Money) -> Money:
        return Money(self.minor + self._same(other).minor, self.currency)

    def __sub__(self, other: Money) -> Money:
        return Money(self.minor - self._same(other).minor, self.currency)

    def __neg__(self) -> Money:
        return Money(-self.minor, self.currency)

    def _same(self, other: Money) -> Money:
        if not isinstance(other, Money):
            raise TypeError(f"cannot combine Money with {type(other).__name__}")
        if other.currency != self.currency:
            raise ValueError(f"cannot combine {self.currency} and {other.currency}")
        return other

    def as_decimal(self) -> Decimal:
        return Decimal(self.minor).scaleb(-minor_unit_exponent(self.currency), EXACT)

    def format(self) -> str:
        """Locale-neutral, grouped: 'USD 7,000.00', 'JPY 1,235', 'KWD -1.235'."""
        places = minor_unit_exponent(self.currency)
        return f"{self.currency} {self.as_decimal():,.{places}f}"

    def __str__(self) -> str:
        return self.format()
