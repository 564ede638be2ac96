"""Subscriptions: subscribe, change plan, cancel; a customer's subscription and upcoming
invoice."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from fastapi import APIRouter, Body, Depends

from fairmeter.api import render
from fairmeter.api.deps import admin, json_body, runtime
from fairmeter.domain.errors import InvalidInput, Problems
from fairmeter.domain.pricing.fields import FieldReader
from fairmeter.domain.subscriptions import ChangeAt
from fairmeter.domain.windows import parse_instant
from fairmeter.services import subscriptions
from fairmeter.services.runtime import Runtime
from fairmeter.services.upcoming import upcoming_invoice

router = APIRouter(tags=["subscriptions"], dependencies=[Depends(admin), Depends(json_body)])


def _instant(fields: FieldReader, name: str) -> datetime | None:
    """An optional RFC 3339 timestamp with an offset, between 1970 and 2999."""
    raw = fields.body.get(name)
    if raw is None:
        return None
    try:
        return parse_instant(raw, f"/{name}")
    except InvalidInput as exc:
        fields.report(name, exc.errors[0].detail)
        return None


def _reader(body: Mapping[str, Any], allowed: tuple[str, ...], what: str) -> FieldReader:
    fields = FieldReader(body, "", Problems())
    fields.only(allowed, what)
    return fields


@router.post("/v1/subscriptions", status_code=201, summary="Subscribe a customer to a plan")
def create_subscription(
    body: dict[str, Any] = Body(..., examples=[{"customer": "acme", "plan": "pro"}]),
    rt: Runtime = Depends(runtime),
) -> dict[str, object]:
    allowed = ("customer", "plan", "start_at", "billing_anchor", "max_overage_amount")
    fields = _reader(body, allowed, "a subscription")
    customer = fields.text("customer", required=True, max_length=256)
    plan = fields.text("plan", required=True, max_length=63)
    start_at, anchor = _instant(fields, "start_at"), _instant(fields, "billing_anchor")
    cap = fields.decimal("max_overage_amount")  # the spend cap on overage (docs/limits.md)
    fields.problems.raise_if_any("The subscription is not valid")
    assert customer is not None and plan is not None
    view = subscriptions.create_subscription(
        rt.db, rt.clock, customer, plan, start_at, anchor, max_overage_amount=cap
    )
    return render.subscription(view)


@router.get("/v1/subscriptions", summary="List subscriptions (of one customer)")
def list_subscriptions(
    customer: str | None = None, rt: Runtime = Depends(runtime)
) -> dict[str, object]:
    found = subscriptions.list_subscriptions(rt.db, rt.clock, customer)
    return {"data": [render.subscription(view) for view in found]}


@router.get("/v1/subscriptions/{subscription_id}", summary="Get a subscription")
def get_subscription(subscription_id: str, rt: Runtime = Depends(runtime)) -> dict[str, object]:
    return render.subscription(subscriptions.get_subscription(rt.db, rt.clock, subscription_id))


@router.post(
    "/v1/subscriptions/{subscription_id}/change",
    summary="Change the plan now (prorated) or at the end of the period",
)
def change_plan(
    subscription_id: str,
    body: dict[str, Any] = Body(..., examples=[{"plan": "scale", "at": "now"}]),
    rt: Runtime = Depends(runtime),
) -> dict[str, object]:
    fields = _reader(body, ("plan", "at"), "a plan change")
    plan = fields.text("plan", required=True, max_length=63)
    at = fields.required_choice("at", ChangeAt)
    fields.problems.raise_if_any("The plan change is not valid")
    assert plan is not None and at is not None
    view = subscriptions.change_plan(rt.db, rt.clock, subscription_id, plan, at)
    return render.subscription(view)


@router.post(
    "/v1/subscriptions/{subscription_id}/cancel",
    summary="Cancel now or at the end of the period",
)
def cancel_subscription(
    subscription_id: str,
    body: dict[str, Any] = Body(..., examples=[{"at": "period_end"}]),
    rt: Runtime = Depends(runtime),
) -> dict[str, object]:
    fields = _reader(body, ("at",), "a cancellation")
    at = fields.required_choice("at", ChangeAt)
    fields.problems.raise_if_any("The cancellation is not valid")
    assert at is not None
    view = subscriptions.cancel_subscription(rt.db, rt.clock, subscription_id, at)
    return render.subscription(view)


@router.get("/v1/customers/{key}/subscription", summary="A customer's active subscription")
def customer_subscription(key: str, rt: Runtime = Depends(runtime)) -> dict[str, object]:
    return render.subscription(subscriptions.customer_subscription(rt.db, rt.clock, key))


@router.get(
    "/v1/customers/{key}/upcoming-invoice",
    summary="The current period to date, with a projected total",
)
def upcoming(key: str, rt: Runtime = Depends(runtime)) -> dict[str, object]:
    return render.upcoming(upcoming_invoice(rt.db, rt.clock, key))
