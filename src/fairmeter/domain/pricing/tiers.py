"""Tiered price models: graduated (each band at its own price) and volume (the whole
quantity at the price of the tier it lands in).

Tiers are ordered by `up_to`, strictly increasing, and the last is open (`up_to` None).
Tier i covers the band (previous up_to, up_to], the first starting above 0.
"""

from __future__ import annotations

from collections.abc import Collection, Iterator, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import ClassVar

from fairmeter.domain.money import exact_sum
from fairmeter.domain.numbers import EXACT, format_quantity
from fairmeter.domain.pricing.models import ZERO, TierUse, require_non_negative, require_quantity

MAX_TIERS = 50


@dataclass(frozen=True)
class Tier:
    up_to: Decimal | None
    unit_price: Decimal
    flat_fee: Decimal = ZERO

    def __post_init__(self) -> None:
        require_non_negative(self.unit_price, "unit_price")
        require_non_negative(self.flat_fee, "flat_fee")
        if self.up_to is not None:
            require_non_negative(self.up_to, "up_to")

    def as_dict(self) -> dict[str, object]:
        return {
            "up_to": None if self.up_to is None else format_quantity(self.up_to),
            "unit_price": format_quantity(self.unit_price),
            "flat_fee": format_quantity(self.flat_fee),
        }


def tier_order_errors(
    up_tos: Sequence[Decimal | None], unreadable: Collection[int] = ()
) -> list[tuple[int, str]]:
    """(index, reason) for every tier edge out of order; shared by the parser and the model.

    Edges at `unreadable` indexes (already reported by the parser) are skipped."""
    errors: list[tuple[int, str]] = []
    previous = ZERO
    for index, up_to in enumerate(up_tos):
        last = index == len(up_tos) - 1
        if index in unreadable:
            continue
        if up_to is None:
            if not last:
                errors.append((index, "only the last tier may be open-ended (null)"))
            continue
        if last:
            errors.append((index, "must be null: the last tier is open-ended"))
        if up_to <= previous:
            errors.append((index, _NOT_ABOVE[index == 0]))
        previous = max(previous, up_to)
    return errors


_NOT_ABOVE = {
    True: "must be greater than 0",
    False: "must be greater than the previous tier's up_to",
}


@dataclass(frozen=True)
class _Tiered:
    tiers: tuple[Tier, ...]

    def __post_init__(self) -> None:
        object.__setattr__(self, "tiers", tuple(self.tiers))
        if not self.tiers or len(self.tiers) > MAX_TIERS:
            raise ValueError(f"a tiered price needs 1 to {MAX_TIERS} tiers")
        errors = tier_order_errors([tier.up_to for tier in self.tiers])
        if errors:
            index, reason = errors[0]
            raise ValueError(f"tier {index}: up_to {reason}")

    def bands(self) -> Iterator[tuple[Decimal, Tier]]:
        """Each tier with the lower (exclusive) edge of its band."""
        lower = ZERO
        for tier in self.tiers:
            yield lower, tier
            if tier.up_to is not None:
                lower = tier.up_to

    def tiers_as_dicts(self) -> list[dict[str, object]]:
        return [tier.as_dict() for tier in self.tiers]


@dataclass(frozen=True)
class Graduated(_Tiered):
    """Each band's units at that band's price, plus the band's flat fee when any unit falls
    in it. Quantity 0 touches no band and costs 0."""

    kind: ClassVar[str] = "graduated"

    def breakdown(self, quantity: Decimal) -> tuple[TierUse, ...]:
        require_quantity(quantity)
        uses: list[TierUse] = []
        for lower, tier in self.bands():
            if quantity <= lower:
                break
            top = quantity if tier.up_to is None else min(quantity, tier.up_to)
            units = EXACT.subtract(top, lower)
            price = EXACT.multiply(units, tier.unit_price)
            amount = EXACT.add(price, tier.flat_fee)
            uses.append(TierUse(lower, tier.up_to, units, tier.unit_price, tier.flat_fee, amount))
        return tuple(uses)

    def amount(self, quantity: Decimal) -> Decimal:
        return exact_sum(use.amount for use in self.breakdown(quantity))

    def as_dict(self) -> dict[str, object]:
        return {"model": self.kind, "tiers": self.tiers_as_dicts()}


@dataclass(frozen=True)
class Volume(_Tiered):
    """The whole quantity at the unit price of the tier it lands in, plus that tier's flat
    fee. Quantity 0 lands in no tier and costs 0 (no flat fee)."""

    kind: ClassVar[str] = "volume"

    def landing(self, quantity: Decimal) -> tuple[Decimal, Tier]:
        """The tier whose band (lower, up_to] holds `quantity`, with its lower edge."""
        require_quantity(quantity)
        for lower, tier in self.bands():
            if tier.up_to is None or quantity <= tier.up_to:
                return lower, tier
        raise AssertionError("the last tier is open-ended")

    def breakdown(self, quantity: Decimal) -> tuple[TierUse, ...]:
        lower, tier = self.landing(quantity)
        if quantity == 0:
            return ()
        price = EXACT.multiply(quantity, tier.unit_price)
        amount = EXACT.add(price, tier.flat_fee)
        return (TierUse(lower, tier.up_to, quantity, tier.unit_price, tier.flat_fee, amount),)

    def amount(self, quantity: Decimal) -> Decimal:
        uses = self.breakdown(quantity)
        return uses[0].amount if uses else ZERO

    def as_dict(self) -> dict[str, object]:
        return {"model": self.kind, "tiers": self.tiers_as_dicts()}
