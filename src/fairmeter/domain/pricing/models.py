"""Price models without tiers, and what every model reports for an invoice (`TierUse`).

A model prices a billable quantity exactly (`amount`, never rounded) and explains the price
(`breakdown`). Quantity 0 costs 0 in every model, and its breakdown is empty.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import ClassVar

from fairmeter.domain.numbers import EXACT, format_quantity

ZERO = Decimal(0)


@dataclass(frozen=True)
class TierUse:
    """One priced part of a quantity, for invoice display.

    The band is (lower, upper]; `upper` None is open-ended. `units` is how much of the
    quantity fell in the band. `unit_price` is the price of one unit, or of one package
    when `packages` is set; None for a flat amount. `amount` = units (or packages) x
    unit_price + flat_fee, exactly.
    """

    lower: Decimal
    upper: Decimal | None
    units: Decimal
    unit_price: Decimal | None
    flat_fee: Decimal
    amount: Decimal
    packages: int | None = None


def require_non_negative(value: Decimal, name: str) -> None:
    if not isinstance(value, Decimal) or not value.is_finite() or value < 0:
        raise ValueError(f"{name} must be a non-negative Decimal, got {value!r}")


def require_quantity(quantity: Decimal) -> None:
    """Models price billable quantities; the charge has already subtracted the allowance."""
    if not isinstance(quantity, Decimal) or not quantity.is_finite() or quantity < 0:
        raise ValueError(f"a billable quantity is a non-negative Decimal, got {quantity!r}")


@dataclass(frozen=True)
class PerUnit:
    """Every unit at the same price. Quantity 0 costs 0."""

    unit_price: Decimal
    kind: ClassVar[str] = "per_unit"

    def __post_init__(self) -> None:
        require_non_negative(self.unit_price, "unit_price")

    def amount(self, quantity: Decimal) -> Decimal:
        require_quantity(quantity)
        return EXACT.multiply(quantity, self.unit_price)

    def breakdown(self, quantity: Decimal) -> tuple[TierUse, ...]:
        amount = self.amount(quantity)
        if quantity == 0:
            return ()
        return (TierUse(ZERO, None, quantity, self.unit_price, ZERO, amount),)

    def as_dict(self) -> dict[str, object]:
        return {"model": self.kind, "unit_price": format_quantity(self.unit_price)}


@dataclass(frozen=True)
class Package:
    """A price per started block of `package_size` units: 1..N units are one package.
    Quantity 0 is no package and costs 0."""

    package_price: Decimal
    package_size: Decimal
    kind: ClassVar[str] = "package"

    def __post_init__(self) -> None:
        require_non_negative(self.package_price, "package_price")
        require_non_negative(self.package_size, "package_size")
        if self.package_size == 0:
            raise ValueError("package_size must be greater than 0")

    def packages(self, quantity: Decimal) -> int:
        require_quantity(quantity)
        # Integer division and remainder are exact, unlike quantity / size (1/3 would trap).
        whole = EXACT.divide_int(quantity, self.package_size)
        started = 1 if EXACT.remainder(quantity, self.package_size) else 0
        return int(whole) + started

    def amount(self, quantity: Decimal) -> Decimal:
        return EXACT.multiply(Decimal(self.packages(quantity)), self.package_price)

    def breakdown(self, quantity: Decimal) -> tuple[TierUse, ...]:
        count = self.packages(quantity)
        if count == 0:
            return ()
        amount = self.amount(quantity)
        return (TierUse(ZERO, None, quantity, self.package_price, ZERO, amount, count),)

    def as_dict(self) -> dict[str, object]:
        return {
            "model": self.kind,
            "package_price": format_quantity(self.package_price),
            "package_size": format_quantity(self.package_size),
        }


@dataclass(frozen=True)
class Flat:
    """A fixed amount for the period once any unit is used; nothing at quantity 0."""

    fee: Decimal
    kind: ClassVar[str] = "flat"

    def __post_init__(self) -> None:
        require_non_negative(self.fee, "amount")

    def amount(self, quantity: Decimal) -> Decimal:
        require_quantity(quantity)
        return self.fee if quantity > 0 else ZERO

    def breakdown(self, quantity: Decimal) -> tuple[TierUse, ...]:
        amount = self.amount(quantity)
        if quantity == 0:
            return ()
        return (TierUse(ZERO, None, quantity, None, amount, amount),)

    def as_dict(self) -> dict[str, object]:
        return {"model": self.kind, "amount": format_quantity(self.fee)}
