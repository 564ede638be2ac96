"""Plans: the catalog (versioned) and price quotes."""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from fastapi import APIRouter, Body, Depends, Query

from fairmeter.api import render
from fairmeter.api.deps import admin, json_body, runtime
from fairmeter.domain.errors import Problems
from fairmeter.domain.money import NotAnAmount, parse_decimal
from fairmeter.domain.plans import Plan, parse_plan
from fairmeter.domain.pricing.fields import escape
from fairmeter.services import plans
from fairmeter.services.runtime import Runtime

router = APIRouter(tags=["plans"], dependencies=[Depends(admin), Depends(json_body)])

# What GET adds to a plan: sent back with an edit, they are ignored, not refused.
READ_ONLY = ("version", "created_at", "edit")
QUOTE_FIELDS = ("usage", "version")

_EXAMPLE = {
    "key": "pro",
    "name": "Pro",
    "currency": "USD",
    "interval": "month",
    "base_fee": "49",
    "charges": [
        {"meter": "api_calls", "model": "per_unit", "unit_price": "0.002", "included": "1000000"}
    ],
}


def _plan(body: Mapping[str, Any]) -> Plan:
    return parse_plan({name: value for name, value in body.items() if name not in READ_ONLY})


@router.post("/v1/plans", status_code=201, summary="Create a plan (version 1)")
def create_plan(
    body: dict[str, Any] = Body(..., examples=[_EXAMPLE]), rt: Runtime = Depends(runtime)
) -> dict[str, object]:
    return render.plan(plans.create_plan(rt.db, rt.clock, _plan(body)))


@router.get("/v1/plans", summary="List plans (latest version of each, or every version)")
def list_plans(include_versions: bool = False, rt: Runtime = Depends(runtime)) -> dict[str, object]:
    return {"data": [render.plan(e) for e in plans.list_plans(rt.db, include_versions)]}


@router.get("/v1/plans/{key}", summary="Get a plan (latest version, or ?version=N)")
def get_plan(
    key: str, version: int | None = Query(None, ge=1), rt: Runtime = Depends(runtime)
) -> dict[str, object]:
    return render.plan(plans.get_plan(rt.db, key, version))


@router.put(
    "/v1/plans/{key}",
    summary="Edit a plan: a new version if subscriptions hold the current one",
    description=(
        "`edit` says what happened: `unchanged` (same terms), `new_version` (subscriptions "
        "hold the current version: they keep it) or `replaced` (nobody holds it: edited in "
        "place, same version)."
    ),
)
def edit_plan(
    key: str, body: dict[str, Any] = Body(..., examples=[_EXAMPLE]), rt: Runtime = Depends(runtime)
) -> dict[str, object]:
    entry, edit = plans.edit_plan(rt.db, rt.clock, key, _plan({"key": key, **body}))
    return {**render.plan(entry), "edit": edit.value}


@router.post("/v1/plans/{key}/quote", summary="Price one whole period with the given usage")
def quote(
    key: str,
    body: dict[str, Any] = Body(..., examples=[{"usage": {"api_calls": "4500000"}}]),
    rt: Runtime = Depends(runtime),
) -> dict[str, object]:
    usage, version = _quote_request(body)
    return render.quote(plans.quote(rt.db, key, usage, version))


def _quote_request(body: Mapping[str, Any]) -> tuple[dict[str, Decimal], int | None]:
    """{"usage": {meter: quantity as a decimal string}, "version": N (optional)}."""
    problems = Problems()
    for name in body:
        if name not in QUOTE_FIELDS:
            problems.add(f"/{escape(name)}", "is not a field of a quote request")
    raw = body.get("usage") or {}
    usage: dict[str, Decimal] = {}
    if not isinstance(raw, Mapping):
        problems.add("/usage", "must be an object of meter key -> quantity")
        raw = {}
    for meter, value in raw.items():
        try:
            usage[meter] = parse_decimal(value)
        except NotAnAmount as exc:
            problems.add(f"/usage/{escape(meter)}", str(exc))
    version = body.get("version")
    if version is not None and not _is_version(version):
        problems.add("/version", "must be a version number (1, 2, ...)")
    problems.raise_if_any("The quote request is not valid")
    return usage, version


def _is_version(raw: object) -> bool:
    return isinstance(raw, int) and not isinstance(raw, bool) and raw >= 1
