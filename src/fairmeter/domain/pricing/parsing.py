"""Charges and prices from JSON, every bad field reported at once with its JSON Pointer.

The shape (decimals are strings such as "0.002"; exact JSON numbers are accepted too, floats
are not; every decimal is non-negative with at most 12 decimal places):

    {"meter": "api_calls",            required, a meter key
     "model": "graduated",            per_unit | package | graduated | volume | flat
     "tiers": [{"up_to": "1000", "unit_price": "0.01", "flat_fee": "0"},
               {"up_to": null, "unit_price": "0.005"}],
     "included": "1000000",           free units per period (default "0")
     "minimum": "10", "maximum": "5000",   optional bounds of the charge per period
     "limit": "5000000", "policy": "block", "throttle_rate": "10"}   optional limit

The fields of each model: per_unit {"unit_price"}; package {"package_price",
"package_size" > 0} (a price per started block); graduated and volume {"tiers": 1 to 50
tiers, `up_to` strictly increasing, the last null; `flat_fee` defaults to "0"}; flat
{"amount"} (charged once any unit is used). `policy` is required with a `limit`;
`throttle_rate` (> 0) with, and only with, the throttle policy. Unknown fields are refused.
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal

from fairmeter.domain.errors import Problems
from fairmeter.domain.meters import KEY_PATTERN
from fairmeter.domain.pricing.charges import Charge, ChargeLimit, LimitPolicy, PriceModel
from fairmeter.domain.pricing.fields import FieldReader, as_object
from fairmeter.domain.pricing.models import ZERO, Flat, Package, PerUnit
from fairmeter.domain.pricing.tiers import MAX_TIERS, Graduated, Tier, Volume, tier_order_errors

MODEL_FIELDS: dict[str, tuple[str, ...]] = {
    "per_unit": ("unit_price",),
    "package": ("package_price", "package_size"),
    "graduated": ("tiers",),
    "volume": ("tiers",),
    "flat": ("amount",),
}
CHARGE_FIELDS = ("meter", "model", "included", "minimum", "maximum")
LIMIT_FIELDS = ("limit", "policy", "throttle_rate")
TIER_FIELDS = ("up_to", "unit_price", "flat_fee")


def parse_price(body: Mapping[str, object], pointer_prefix: str = "") -> PriceModel:
    """A price model alone, e.g. {"model": "per_unit", "unit_price": "0.002"}."""
    problems = Problems()
    model = None
    if as_object(body, pointer_prefix, problems) is not None:
        fields = FieldReader(body, pointer_prefix, problems)
        model = collect_price(fields)
        fields.only(("model", *_model_fields(body)), "this price")
    problems.raise_if_any("The price is not valid")
    assert model is not None
    return model


def parse_charge(body: Mapping[str, object], pointer_prefix: str = "") -> Charge:
    problems = Problems()
    charge = collect_charge(body, pointer_prefix, problems)
    problems.raise_if_any("The charge is not valid")
    assert charge is not None
    return charge


def collect_charge(raw: object, prefix: str, problems: Problems) -> Charge | None:
    """The charge at `prefix`, or None with its problems added to `problems`."""
    body = as_object(raw, prefix, problems)
    if body is None:
        return None
    before = len(problems.items)
    fields = FieldReader(body, prefix, problems)
    meter = fields.text("meter", required=True, pattern=KEY_PATTERN, rule=_METER_RULE)
    model = collect_price(fields)
    included = fields.decimal("included")
    minimum, maximum = fields.decimal("minimum"), fields.decimal("maximum")
    if minimum is not None and maximum is not None and minimum > maximum:
        fields.report("minimum", "must not be greater than maximum")
    limit = _limit(fields)
    fields.only((*CHARGE_FIELDS, *LIMIT_FIELDS, *_model_fields(body)), "this charge")
    if len(problems.items) > before or meter is None or model is None:
        return None
    return Charge(meter, model, included or ZERO, minimum, maximum, limit)


def _model_fields(body: Mapping[str, object]) -> tuple[str, ...]:
    """The fields the body's model takes; any model's while the model itself is unknown, so
    that a mistyped model is reported once, not with each of its fields."""
    model = body.get("model")
    if isinstance(model, str) and model in MODEL_FIELDS:
        return MODEL_FIELDS[model]
    return tuple(name for names in MODEL_FIELDS.values() for name in names)


_METER_RULE = "must be a meter key: lowercase letters, digits and _ (start with a letter)"


def _limit(fields: FieldReader) -> ChargeLimit | None:
    """The optional limit; kept on the plan, enforced by a later layer."""
    if not any(fields.given(name) for name in LIMIT_FIELDS):
        return None
    before = len(fields.problems.items)
    limit = fields.decimal("limit", required=True)
    policy = fields.required_choice("policy", LimitPolicy)
    rate = fields.decimal("throttle_rate", positive=True)
    if policy is LimitPolicy.THROTTLE and not fields.given("throttle_rate"):
        fields.report("throttle_rate", "is required for the throttle policy")
    elif policy not in (None, LimitPolicy.THROTTLE) and fields.given("throttle_rate"):
        fields.report("throttle_rate", "applies only to the throttle policy")
    if len(fields.problems.items) > before or limit is None or policy is None:
        return None
    return ChargeLimit(limit, policy, rate)


def collect_price(fields: FieldReader) -> PriceModel | None:
    """The price model of the object `fields` reads, or None with its problems reported."""
    raw = fields.body.get("model")
    if raw is None:
        fields.report("model", "is required")
        return None
    if not isinstance(raw, str) or raw not in MODEL_FIELDS:
        fields.report("model", "must be one of " + ", ".join(MODEL_FIELDS))
        return None
    if raw == "per_unit":
        price = fields.decimal("unit_price", required=True)
        return None if price is None else PerUnit(price)
    if raw == "package":
        price = fields.decimal("package_price", required=True)
        size = fields.decimal("package_size", required=True, positive=True)
        return None if price is None or size is None else Package(price, size)
    if raw == "flat":
        amount = fields.decimal("amount", required=True)
        return None if amount is None else Flat(amount)
    tiers = _tiers(fields)
    if tiers is None:
        return None
    return Graduated(tiers) if raw == "graduated" else Volume(tiers)


def _tiers(fields: FieldReader) -> tuple[Tier, ...] | None:
    raw = fields.body.get("tiers")
    if not isinstance(raw, list) or not 1 <= len(raw) <= MAX_TIERS:
        fields.report("tiers", f"must be a list of 1 to {MAX_TIERS} tiers")
        return None
    problems = fields.problems
    before = len(problems.items)
    up_tos: list[Decimal | None] = []
    unreadable: set[int] = set()
    tiers: list[Tier] = []
    for index, item in enumerate(raw):
        up_to, readable, tier = _tier(item, f"{fields.at('tiers')}/{index}", problems)
        up_tos.append(up_to)
        if not readable:
            unreadable.add(index)
        if tier is not None:
            tiers.append(tier)
    for index, reason in tier_order_errors(up_tos, unreadable):
        problems.add(f"{fields.at('tiers')}/{index}/up_to", reason)
    return tuple(tiers) if len(problems.items) == before else None


def _tier(
    raw: object, pointer: str, problems: Problems
) -> tuple[Decimal | None, bool, Tier | None]:
    """(up_to, whether up_to could be read, the tier if every field is valid)."""
    body = as_object(raw, pointer, problems)
    if body is None:
        return None, False, None
    fields = FieldReader(body, pointer, problems)
    fields.only(TIER_FIELDS, "a tier")
    before = len(problems.items)
    up_to = fields.decimal("up_to")
    readable = len(problems.items) == before
    price = fields.decimal("unit_price", required=True)
    fee = fields.decimal("flat_fee")
    if len(problems.items) > before or price is None:
        return up_to, readable, None
    return up_to, readable, Tier(up_to, price, fee or ZERO)
