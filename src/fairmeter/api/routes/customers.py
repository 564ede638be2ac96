"""Customers."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Body, Depends, Query

from fairmeter.api import render
from fairmeter.api.deps import admin, json_body, runtime
from fairmeter.domain.customers import parse_customer, parse_customer_changes
from fairmeter.services import catalog
from fairmeter.services.runtime import Runtime

router = APIRouter(tags=["customers"], dependencies=[Depends(admin), Depends(json_body)])

_EXAMPLE = {
    "key": "acme",
    "name": "Acme Corp",
    "email": "billing@acme.example",
    "currency": "USD",
    "timezone": "Europe/Madrid",
    "metadata": {"crm_id": "0017"},
    "budget": "500.00",
}


@router.post("/v1/customers", status_code=201, summary="Create a customer")
def create_customer(
    body: dict[str, Any] = Body(..., examples=[_EXAMPLE]), rt: Runtime = Depends(runtime)
) -> dict[str, object]:
    return render.customer(catalog.create_customer(rt.db, rt.clock, parse_customer(body)))


@router.get("/v1/customers", summary="List customers (by key; paginate with starting_after)")
def list_customers(
    starting_after: str | None = None,
    limit: int = Query(100, ge=1, le=1000),
    rt: Runtime = Depends(runtime),
) -> dict[str, object]:
    found = catalog.list_customers(rt.db, starting_after, limit + 1)
    return {"data": [render.customer(c) for c in found[:limit]], "has_more": len(found) > limit}


@router.get("/v1/customers/{key}", summary="Get a customer")
def get_customer(key: str, rt: Runtime = Depends(runtime)) -> dict[str, object]:
    return render.customer(catalog.get_customer(rt.db, key))


@router.patch("/v1/customers/{key}", summary="Change a customer's name, email, currency, ...")
def update_customer(
    key: str, body: dict[str, Any] = Body(...), rt: Runtime = Depends(runtime)
) -> dict[str, object]:
    changes = parse_customer_changes(body)
    changed = catalog.update_customer(rt.db, rt.clock, key, changes)
    if "budget" in changes and rt.alerts is not None:
        rt.alerts.forget()  # alert evaluation reads the new budget at once
    return render.customer(changed)
