"""A charge: one meter's usage priced by a model, after the plan's allowance, within bounds.

Choices, documented once:
- `included` units are free each period; only `quantity - included` (never below 0) is
  priced.
- `minimum` applies even at zero usage: it is a commitment per period, like a base fee.
- `maximum` caps the charge for the period whatever the usage.
- For a partial period (plan change mid-period) the per-period terms -- `included`,
  `minimum` and `maximum` -- scale with the share of the period used; usage itself is
  never prorated. A scaled term is cut (toward zero) to 12 decimal places, the precision
  of every price and quantity, so a prorated charge is an ordinary, storable charge.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from decimal import ROUND_DOWN, Context, Decimal, InvalidOperation
from enum import StrEnum
from fractions import Fraction
from typing import Literal, TypeAlias

from fairmeter.domain.meters import KEY_PATTERN
from fairmeter.domain.numbers import EXACT, MAX_FRACTION_DIGITS, format_quantity
from fairmeter.domain.pricing.models import (
    ZERO,
    Flat,
    Package,
    PerUnit,
    TierUse,
    require_non_negative,
)
from fairmeter.domain.pricing.tiers import Graduated, Volume

PriceModel: TypeAlias = PerUnit | Package | Graduated | Volume | Flat

_CUT = Context(prec=80, rounding=ROUND_DOWN, traps=[InvalidOperation])
_PLACES = Decimal(1).scaleb(-MAX_FRACTION_DIGITS)
ONE = Decimal(1)


def proration_share(fraction: Fraction | Decimal | int) -> Decimal:
    """The share of a period as a Decimal in [0, 1], cut to 12 places (10/31 -> 0.3225...)."""
    exact = Fraction(fraction)
    if not 0 <= exact <= 1:
        raise ValueError(f"a share of a period is between 0 and 1, got {fraction}")
    quotient = _CUT.divide(Decimal(exact.numerator), Decimal(exact.denominator))
    return _cut(quotient)


def prorate(value: Decimal, share: Decimal) -> Decimal:
    """A per-period term for a share of the period, cut to 12 decimal places."""
    if share == ONE:
        return value
    return _cut(EXACT.multiply(value, share))


def _cut(value: Decimal) -> Decimal:
    return value.quantize(_PLACES, context=_CUT).normalize(EXACT)


class LimitPolicy(StrEnum):
    """What happens at a charge's limit; kept on the plan, enforced by a later layer."""

    BLOCK = "block"
    OVERAGE = "overage"
    THROTTLE = "throttle"
    UPGRADE = "upgrade"


@dataclass(frozen=True)
class ChargeLimit:
    """A usage limit per period. `throttle_rate` (units per second once the limit is
    reached) is required for, and only for, the throttle policy."""

    limit: Decimal
    policy: LimitPolicy
    throttle_rate: Decimal | None = None

    def __post_init__(self) -> None:
        require_non_negative(self.limit, "limit")
        throttled = self.policy is LimitPolicy.THROTTLE
        if throttled != (self.throttle_rate is not None):
            raise ValueError("throttle_rate is required for, and only for, the throttle policy")
        if self.throttle_rate is not None:
            require_non_negative(self.throttle_rate, "throttle_rate")
            if self.throttle_rate == 0:
                raise ValueError("throttle_rate must be greater than 0")

    def as_dict(self) -> dict[str, object]:
        body: dict[str, object] = {
            "limit": format_quantity(self.limit),
            "policy": self.policy.value,
        }
        if self.throttle_rate is not None:
            body["throttle_rate"] = format_quantity(self.throttle_rate)
        return body


@dataclass(frozen=True)
class ChargeAmount:
    """A charge rated for one period. `usage_amount` is the model's price of `billable`;
    `amount` is after the minimum/maximum (`bounded_by` says which one applied). Exact."""

    quantity: Decimal
    included_used: Decimal
    included_left: Decimal
    billable: Decimal
    usage_amount: Decimal
    amount: Decimal
    bounded_by: Literal["minimum", "maximum"] | None
    breakdown: tuple[TierUse, ...]


@dataclass(frozen=True)
class Charge:
    meter: str
    model: PriceModel
    included: Decimal = ZERO
    minimum: Decimal | None = None
    maximum: Decimal | None = None
    limit: ChargeLimit | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.meter, str) or not KEY_PATTERN.match(self.meter):
            raise ValueError(f"{self.meter!r} is not a meter key")
        require_non_negative(self.included, "included")
        for bound in (self.minimum, self.maximum):
            if bound is not None:
                require_non_negative(bound, "minimum and maximum")
        low, high = self.minimum, self.maximum
        if low is not None and high is not None and low > high:
            raise ValueError("minimum must not exceed maximum")

    def rate(self, quantity: Decimal) -> ChargeAmount:
        """Price one period's usage of the meter (a negative total counts as none)."""
        if not isinstance(quantity, Decimal) or not quantity.is_finite():
            raise ValueError(f"usage must be a finite Decimal, got {quantity!r}")
        used = min(max(quantity, ZERO), self.included)
        billable = max(EXACT.subtract(quantity, self.included), ZERO)
        usage_amount = self.model.amount(billable)
        amount, bounded_by = self._bounded(usage_amount)
        left = EXACT.subtract(self.included, used)
        breakdown = self.model.breakdown(billable)
        return ChargeAmount(
            quantity, used, left, billable, usage_amount, amount, bounded_by, breakdown
        )

    def _bounded(self, amount: Decimal) -> tuple[Decimal, Literal["minimum", "maximum"] | None]:
        if self.minimum is not None and amount < self.minimum:
            return self.minimum, "minimum"
        if self.maximum is not None and amount > self.maximum:
            return self.maximum, "maximum"
        return amount, None

    def prorated(self, share: Decimal) -> Charge:
        """The charge for a share of a period: allowance and bounds scaled, prices not."""
        if share == ONE:
            return self
        return replace(
            self,
            included=prorate(self.included, share),
            minimum=None if self.minimum is None else prorate(self.minimum, share),
            maximum=None if self.maximum is None else prorate(self.maximum, share),
        )

    def as_dict(self) -> dict[str, object]:
        """The JSON body `parse_charge` reads back."""
        body: dict[str, object] = {"meter": self.meter, **self.model.as_dict()}
        body["included"] = format_quantity(self.included)
        for name in ("minimum", "maximum"):
            value = getattr(self, name)
            if value is not None:
                body[name] = format_quantity(value)
        if self.limit is not None:
            body.update(self.limit.as_dict())
        return body
