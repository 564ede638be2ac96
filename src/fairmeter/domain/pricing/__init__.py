"""Pricing: price models (one small module per family), charges and their JSON shape."""

from fairmeter.domain.pricing.charges import (
    Charge,
    ChargeAmount,
    ChargeLimit,
    LimitPolicy,
    PriceModel,
    prorate,
    proration_share,
)
from fairmeter.domain.pricing.models import Flat, Package, PerUnit, TierUse
from fairmeter.domain.pricing.parsing import (
    collect_charge,
    collect_price,
    parse_charge,
    parse_price,
)
from fairmeter.domain.pricing.tiers import MAX_TIERS, Graduated, Tier, Volume

__all__ = [
    "MAX_TIERS",
    "Charge",
    "ChargeAmount",
    "ChargeLimit",
    "Flat",
    "Graduated",
    "LimitPolicy",
    "Package",
    "PerUnit",
    "PriceModel",
    "Tier",
    "TierUse",
    "Volume",
    "collect_charge",
    "collect_price",
    "parse_charge",
    "parse_price",
    "prorate",
    "proration_share",
]
