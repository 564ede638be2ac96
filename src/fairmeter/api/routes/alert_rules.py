"""Alert rules: usage, spend and forecast thresholds on a plan or on one customer."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Body, Depends, Response

from fairmeter.api.deps import admin, json_body, runtime
from fairmeter.domain.alerts import AlertRule
from fairmeter.domain.windows import format_instant
from fairmeter.services import alerts
from fairmeter.services.runtime import Runtime

router = APIRouter(tags=["alerts"], dependencies=[Depends(admin), Depends(json_body)])

_EXAMPLES = [
    {"customer": "acme", "kind": "usage_threshold", "meter": "api_calls", "thresholds": ["80"]},
    {"plan": "pro", "kind": "spend_threshold", "measure": "amount", "thresholds": ["500", "1000"]},
    {"customer": "acme", "kind": "forecast", "meter": "api_calls", "of": "limit"},
]


def render(rule: AlertRule) -> dict[str, object]:
    return {
        **rule.as_dict(),
        "created_at": format_instant(rule.created_us),
        "updated_at": format_instant(rule.updated_us),
    }


@router.post("/v1/alert-rules", status_code=201, summary="Create an alert rule")
def create_rule(
    body: dict[str, Any] = Body(..., examples=_EXAMPLES), rt: Runtime = Depends(runtime)
) -> dict[str, object]:
    created = alerts.create_rule(rt.db, rt.clock, body)
    _changed(rt)
    return render(created)


@router.get("/v1/alert-rules", summary="List alert rules (of a customer, a plan or a kind)")
def list_rules(
    customer: str | None = None,
    plan: str | None = None,
    kind: str | None = None,
    rt: Runtime = Depends(runtime),
) -> dict[str, object]:
    return {"data": [render(r) for r in alerts.list_rules(rt.db, customer, plan, kind)]}


@router.get("/v1/alert-rules/{rule_id}", summary="Get an alert rule")
def get_rule(rule_id: str, rt: Runtime = Depends(runtime)) -> dict[str, object]:
    return render(alerts.get_rule(rt.db, rule_id))


@router.patch(
    "/v1/alert-rules/{rule_id}", summary="Change an alert rule's thresholds, measure, of, enabled"
)
def update_rule(
    rule_id: str, body: dict[str, Any] = Body(...), rt: Runtime = Depends(runtime)
) -> dict[str, object]:
    changed = alerts.update_rule(rt.db, rt.clock, rule_id, body)
    _changed(rt)
    return render(changed)


@router.delete("/v1/alert-rules/{rule_id}", status_code=204, summary="Delete an alert rule")
def delete_rule(rule_id: str, rt: Runtime = Depends(runtime)) -> Response:
    alerts.delete_rule(rt.db, rule_id)
    _changed(rt)
    return Response(status_code=204)


def _changed(rt: Runtime) -> None:
    """This process's evaluator sees the change at once (others within a second)."""
    if rt.alerts is not None:
        rt.alerts.forget()
