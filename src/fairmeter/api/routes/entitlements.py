"""Entitlements: may this customer use this much now (check), and use it (consume); what a
customer may use this period (entitlements view)."""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from typing import Any

import msgspec
from fastapi import APIRouter, Body, Depends
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool

from fairmeter.api.deps import admin, ingest, json_body, runtime
from fairmeter.domain.errors import Problems
from fairmeter.domain.meters import KEY_PATTERN
from fairmeter.domain.numbers import format_optional
from fairmeter.domain.pricing.fields import FieldReader, as_object
from fairmeter.domain.windows import format_instant
from fairmeter.services.entitlement_recording import encodable
from fairmeter.services.entitlement_view import CustomerEntitlements, customer_entitlements
from fairmeter.services.entitlements import Enforcer
from fairmeter.services.runtime import Runtime

router = APIRouter(tags=["entitlements"], dependencies=[Depends(json_body)])

CHECK_FIELDS = ("customer", "meter", "quantity")
CONSUME_FIELDS = (*CHECK_FIELDS, "idempotency_key", "data")
MAX_KEY_LENGTH = 200  # count meters append ":n" to the key for their n-th event
_EXAMPLE = {"customer": "acme", "meter": "api_calls", "quantity": "1"}
_ENCODE = msgspec.json.Encoder().encode
_ANSWERS: dict[int | str, dict[str, Any]] = {
    200: {"description": "The decision (also when allowed is false)"}
}


async def enforcer(rt: Runtime = Depends(runtime)) -> Enforcer:
    limits = rt.limits
    assert limits is not None, "wiring.build creates the limits engine"
    return limits


class _Call:
    def __init__(self, body: Mapping[str, Any], allowed: tuple[str, ...], what: str) -> None:
        problems = Problems()
        if as_object(body, "", problems) is None:
            problems.raise_if_any(f"The {what} is not valid")
        fields = FieldReader(body, "", problems)
        fields.only(allowed, f"a {what}")
        self.customer = fields.text("customer", required=True)
        self.meter = fields.text("meter", required=True, max_length=63, pattern=KEY_PATTERN,
                                 rule="must be a meter key")  # fmt: skip
        quantity = fields.decimal("quantity", positive=True) if fields.given("quantity") else None
        self.quantity = quantity if quantity is not None else Decimal(1)
        self.key = fields.text("idempotency_key", max_length=MAX_KEY_LENGTH)
        data = body.get("data")
        if data is not None and (not isinstance(data, dict) or not encodable(data)):
            fields.report("data", "must be a JSON object")
        self.data = data
        problems.raise_if_any(f"The {what} is not valid")


@router.post(
    "/v1/entitlements/check",
    summary="May the customer use this quantity now? Records nothing",
    responses=_ANSWERS,
)
def check(
    body: dict[str, Any] = Body(..., examples=[_EXAMPLE]),
    _: object = Depends(ingest),
    engine: Enforcer = Depends(enforcer),
) -> Response:
    call = _Call(body, CHECK_FIELDS, "check")
    assert call.customer is not None and call.meter is not None
    return _json(engine.check(call.customer, call.meter, call.quantity).as_dict())


@router.post(
    "/v1/entitlements/consume",
    summary="Decide and, when allowed, record the usage (idempotency_key = event id)",
    responses=_ANSWERS,
)
async def consume(
    body: dict[str, Any] = Body(..., examples=[{**_EXAMPLE, "idempotency_key": "req-7f3a"}]),
    _: object = Depends(ingest),
    engine: Enforcer = Depends(enforcer),
) -> Response:
    call = _Call(body, CONSUME_FIELDS, "consume")
    assert call.customer is not None and call.meter is not None
    decision = await run_in_threadpool(
        engine.consume, call.customer, call.meter, call.quantity, call.key, call.data
    )
    return _json(decision.as_dict())


def _json(body: dict[str, object]) -> Response:
    """Encoded at once: FastAPI's generic encoder costs more than the decision itself."""
    return Response(_ENCODE(body), media_type="application/json")


@router.get(
    "/v1/customers/{key}/entitlements",
    summary="Every limited meter: usage, limit, remaining, policy, reset; denials, upgrades",
    dependencies=[Depends(admin)],
)
def entitlements(key: str, engine: Enforcer = Depends(enforcer)) -> dict[str, object]:
    return render(customer_entitlements(engine, key))


def render(found: CustomerEntitlements) -> dict[str, object]:
    period = found.period
    return {
        "customer": found.customer,
        "plan": found.plan,
        "suspended": found.suspended,
        "period": None
        if period is None
        else {"start": format_instant(period[0]), "end": format_instant(period[1])},
        "meters": [
            {
                "meter": item.terms.meter,
                "policy": None if item.terms.policy is None else item.terms.policy.value,
                "usage": format_optional(item.usage),
                "limit": format_optional(item.terms.limit.limit if item.terms.limit else None),
                "remaining": format_optional(item.remaining),
                "overage_amount": format_optional(item.overage_amount),
                "spend_cap": format_optional(item.terms.spend_cap),
                "currency": item.terms.currency,
                "rate_limit": item.terms.rate_limit.as_dict() if item.terms.rate_limit else None,
                "resets_at": format_instant(item.terms.period_end_us),
                "denials": item.denials,
            }
            for item in found.meters
        ],
        "upgrades": [
            {"at": format_instant(u.at_us), "from_plan": u.from_plan, "to_plan": u.to_plan}
            for u in found.upgrades
        ],
    }
