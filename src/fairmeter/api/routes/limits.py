"""A customer's limits: overrides of the plan's terms per meter, suspension and restore."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Body, Depends, Response

from fairmeter.api.deps import admin, json_body, runtime
from fairmeter.domain.errors import Problems
from fairmeter.domain.limits import Override, parse_override
from fairmeter.domain.pricing.fields import FieldReader, as_object
from fairmeter.domain.windows import format_instant
from fairmeter.services import limits
from fairmeter.services.runtime import Runtime
from fairmeter.storage.limits import Suspension

router = APIRouter(tags=["limits"], dependencies=[Depends(admin), Depends(json_body)])

_OVERRIDE = {"limit": "5000", "policy": "overage", "max_overage_amount": "50",
             "rate_limit": {"limit": "100", "per": "second"}}  # fmt: skip


def _override(customer: str, meter: str, override: Override) -> dict[str, object]:
    return {"customer": customer, "meter": meter, **override.as_dict()}


@router.put(
    "/v1/customers/{key}/limits/{meter}",
    summary="Override the plan's limit, policy, spend cap or rate limit for one meter",
)
def put_override(
    key: str,
    meter: str,
    body: dict[str, Any] = Body(..., examples=[_OVERRIDE]),
    rt: Runtime = Depends(runtime),
) -> dict[str, object]:
    override = limits.put_override(rt, key, meter, parse_override(body))
    return _override(key, meter, override)


@router.get("/v1/customers/{key}/limits/{meter}", summary="A customer's override for one meter")
def get_override(key: str, meter: str, rt: Runtime = Depends(runtime)) -> dict[str, object]:
    return _override(key, meter, limits.get_override(rt, key, meter))


@router.delete(
    "/v1/customers/{key}/limits/{meter}",
    status_code=204,
    summary="Remove the override: the plan's terms apply again",
)
def delete_override(key: str, meter: str, rt: Runtime = Depends(runtime)) -> Response:
    limits.delete_override(rt, key, meter)
    return Response(status_code=204)


@router.get("/v1/customers/{key}/limits", summary="A customer's overrides and suspension")
def list_overrides(key: str, rt: Runtime = Depends(runtime)) -> dict[str, object]:
    found = limits.list_overrides(rt, key)
    return {
        "data": [_override(key, meter, override) for meter, override in found.items()],
        "suspension": _suspension(key, limits.suspension(rt, key)),
    }


@router.post(
    "/v1/customers/{key}/suspend",
    summary="Refuse every call of the customer (reason 'suspended') until restored",
)
def suspend(
    key: str,
    body: dict[str, Any] = Body(..., examples=[{"reason": "invoice 2026-0042 is past due"}]),
    rt: Runtime = Depends(runtime),
) -> dict[str, object]:
    problems = Problems()
    if as_object(body, "", problems) is not None:
        fields = FieldReader(body, "", problems)
        fields.only(("reason",), "a suspension")
        reason = fields.text("reason", required=True, max_length=1024)
    problems.raise_if_any("The suspension is not valid")
    assert reason is not None
    return _suspension(key, limits.suspend(rt, key, reason))


@router.post("/v1/customers/{key}/restore", summary="Lift the customer's suspension")
def restore(key: str, rt: Runtime = Depends(runtime)) -> dict[str, object]:
    limits.restore(rt, key)
    return _suspension(key, None)


def _suspension(customer: str, found: Suspension | None) -> dict[str, object]:
    if found is None:
        return {"customer": customer, "suspended": False, "reason": None, "suspended_at": None}
    at = format_instant(found.suspended_us)
    return {"customer": customer, "suspended": True, "reason": found.reason, "suspended_at": at}
