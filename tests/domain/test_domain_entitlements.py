"""Entitlement rules: terms per policy, the exact overage, the spend cap's usage ceiling."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fairmeter.domain.entitlements import (
    Reason,
    Terms,
    build_terms,
    decide,
    overage_amount,
    usage_ceiling,
)
from fairmeter.domain.errors import InvalidInput
from fairmeter.domain.limits import Override, Per, RateLimit, parse_override
from fairmeter.domain.plans import parse_plan
from fairmeter.domain.pricing import parse_charge
from fairmeter.domain.pricing.charges import Charge, ChargeLimit, LimitPolicy

D = Decimal
STEP = D("1e-12")


def _charge(**body: object) -> Charge:
    return parse_charge({"meter": "calls", "model": "per_unit", "unit_price": "0.01", **body})


def test_overage_is_the_price_of_usage_past_the_limit_only():
    charge = _charge(included="50")
    assert overage_amount(charge, D(100), D(100)) == 0
    assert overage_amount(charge, D(100), D(130)) == D("0.30")


def test_per_unit_ceiling_is_the_exact_inverse_of_the_cap():
    assert usage_ceiling(_charge(), D(100), D("1.00")) == D(200)
    assert usage_ceiling(_charge(), D(100), D("1.005")) == D("200.5")


def test_a_zero_cap_stops_usage_at_the_limit():
    assert usage_ceiling(_charge(), D(100), D(0)) == D(100)


def test_a_free_overage_has_no_ceiling():
    assert usage_ceiling(_charge(unit_price="0"), D(100), D(5)) is None


def test_volume_ceiling_stops_before_the_first_crossing_not_after_a_cheaper_tier():
    tiers = [{"up_to": "150", "unit_price": "1"}, {"up_to": None, "unit_price": "0.1"}]
    charge = parse_charge({"meter": "calls", "model": "volume", "tiers": tiers})
    # overage(u) = u - 100 up to 150 (cap 40 reached at 140), then drops to 0.1u - 100 < 0
    assert usage_ceiling(charge, D(100), D(40)) == D(140)


_MODELS = st.sampled_from(
    [
        {"model": "per_unit", "unit_price": "0.5"},
        {"model": "package", "package_price": "3", "package_size": "4"},
        {"model": "flat", "amount": "7"},
        {
            "model": "graduated",
            "tiers": [
                {"up_to": "20", "unit_price": "1", "flat_fee": "2"},
                {"up_to": None, "unit_price": "0.25"},
            ],
        },
        {
            "model": "volume",
            "tiers": [
                {"up_to": "30", "unit_price": "2"},
                {"up_to": "60", "unit_price": "0.5", "flat_fee": "1"},
                {"up_to": None, "unit_price": "1"},
            ],
        },
    ]
)


@settings(max_examples=60, deadline=None)
@given(
    model=_MODELS,
    included=st.integers(0, 30),
    limit=st.integers(0, 40),
    cap=st.decimals(D(0), D(80), places=2),
)
def test_usage_ceiling_matches_a_brute_force_walk_over_the_pricing_models(
    model, included, limit, cap
):
    charge = parse_charge({"meter": "calls", "included": str(included), **model})
    ceiling = usage_ceiling(charge, D(limit), cap)
    # Brute force on whole units: the first usage whose overage passes the cap.
    first_over = next(
        (u for u in range(limit, 400) if overage_amount(charge, D(limit), D(u)) > cap), None
    )
    if ceiling is None:
        assert first_over is None
        return
    assert first_over is not None and ceiling < first_over <= ceiling + 1
    assert all(
        overage_amount(charge, D(limit), D(u)) <= cap for u in range(limit, int(ceiling) + 1)
    )
    assert overage_amount(charge, D(limit), ceiling) <= cap
    assert overage_amount(charge, D(limit), ceiling + STEP) > cap


def _terms(policy: str, **extra: object) -> Terms:
    charge = {"meter": "calls", "model": "per_unit", "unit_price": "0.01"}
    charge.update(limit="100", policy=policy, **extra)
    body: dict[str, object] = {"key": "p", "currency": "USD", "charges": [charge]}
    if policy == "upgrade":
        body["next_plan"] = "bigger"
    plan = parse_plan(body)
    return build_terms("acme", "calls", plan=plan, period=(0, 10), subscription_cap=D(1))


def test_each_policy_sets_its_ceiling():
    assert _terms("block").ceiling == 100
    assert _terms("upgrade").ceiling == 100 and _terms("upgrade").upgrades_to == "bigger"
    assert _terms("overage").ceiling == 200  # 1.00 of cap at 0.01 a unit
    throttled = _terms("throttle", throttle_rate="5")
    assert throttled.ceiling is None and throttled.soft_limit == 100


def test_an_override_replaces_only_the_terms_it_names():
    plan_limit = ChargeLimit(D(100), LimitPolicy.BLOCK)
    assert Override(limit=D(5)).applied_to(plan_limit) == ChargeLimit(D(5), LimitPolicy.BLOCK)
    both = Override(policy=LimitPolicy.THROTTLE, throttle_rate=D(2)).applied_to(plan_limit)
    assert both == ChargeLimit(D(100), LimitPolicy.THROTTLE, D(2))
    assert Override(limit=D(7)).applied_to(None) == ChargeLimit(D(7), LimitPolicy.BLOCK)


def test_an_override_without_any_field_names_the_body():
    with pytest.raises(InvalidInput) as caught:
        parse_override({})
    assert caught.value.errors[0].pointer == "/"


def test_override_errors_name_their_fields():
    with pytest.raises(InvalidInput) as caught:
        parse_override(
            {"limit": "-1", "policy": "nope", "rate_limit": {"limit": "0", "per": "day"}, "x": 1}
        )
    pointers = {error.pointer for error in caught.value.errors}
    assert pointers == {"/limit", "/policy", "/rate_limit/limit", "/rate_limit/per", "/x"}


def test_throttle_override_needs_a_rate():
    with pytest.raises(InvalidInput) as caught:
        parse_override({"policy": "throttle"})
    assert caught.value.errors[0].pointer == "/throttle_rate"


def test_an_override_reads_back_what_it_writes():
    override = Override(D(5), LimitPolicy.OVERAGE, None, D("9.5"), RateLimit(D(100), Per.MINUTE))
    assert parse_override({k: v for k, v in override.as_dict().items() if v is not None}) == (
        override
    )


def test_refusals_at_the_ceiling_say_which_limit_and_when_it_resets():
    blocked = decide(_terms("block"), allowed=False, usage=D(99), refused_by="ceiling")
    assert blocked.reason is Reason.LIMIT_REACHED and blocked.retry_after_us == 10
    capped = decide(_terms("overage"), allowed=False, usage=D(199), refused_by="ceiling")
    assert capped.reason is Reason.SPEND_CAP_REACHED
    throttled = decide(
        _terms("throttle", throttle_rate="5"),
        allowed=False,
        usage=D(120),
        refused_by="throttle",
        retry_in_us=200_000,
        now_us=3,
    )
    assert throttled.reason is Reason.THROTTLED and throttled.retry_after_us == 200_003


def test_decisions_render_decimals_as_strings_and_times_as_rfc3339():
    body = decide(_terms("overage"), allowed=True, usage=D("150.5")).as_dict()
    assert body["reason"] == "overage" and body["overage_amount"] == "0.505"
    assert body["remaining"] == "0" and body["resets_at"] == "1970-01-01T00:00:00.000010Z"
