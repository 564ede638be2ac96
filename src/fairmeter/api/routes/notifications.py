"""Webhook endpoints, webhook deliveries (list failed ones, replay), and each customer's
notifications with the proof of their delivery."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from fastapi import APIRouter, Body, Depends, Query, Response
from sqlalchemy.engine import RowMapping

from fairmeter.api.deps import admin, json_body, runtime
from fairmeter.domain.errors import FieldError, InvalidInput
from fairmeter.domain.windows import format_instant, parse_instant, to_us
from fairmeter.services import webhooks
from fairmeter.services.notification_log import (
    DeliveryRecord,
    NotificationRecord,
    customer_log,
    list_webhook_deliveries,
    retry_delivery,
)
from fairmeter.services.runtime import Runtime
from fairmeter.services.webhooks import EndpointChanges

router = APIRouter(tags=["notifications"], dependencies=[Depends(admin), Depends(json_body)])

_EXAMPLE = {
    "url": "https://hooks.example.com/fairmeter",
    "events": ["alert.usage_threshold", "limit.reached", "invoice.issued"],
    "description": "billing alerts to our CRM",
}
_STATUSES = ("pending", "delivering", "delivered", "failed")


@router.post("/v1/webhook-endpoints", status_code=201, summary="Add a webhook endpoint")
def create_endpoint(
    body: dict[str, Any] = Body(..., examples=[_EXAMPLE]), rt: Runtime = Depends(runtime)
) -> dict[str, object]:
    """Returns the endpoint's signing secret (`whsec_...`) this once: keep it to verify the
    `webhook-signature` of each delivery (Standard Webhooks)."""
    _only(body, ("url", "events", "description"))
    row, secret = webhooks.create_endpoint(
        rt, body.get("url"), body.get("events"), _description(body.get("description", ""))
    )
    return {**endpoint(row), "secret": secret}


@router.get("/v1/webhook-endpoints", summary="List webhook endpoints")
def list_endpoints(rt: Runtime = Depends(runtime)) -> dict[str, object]:
    return {"data": [endpoint(row) for row in webhooks.list_endpoints(rt)]}


@router.get("/v1/webhook-endpoints/{endpoint_id}", summary="Get a webhook endpoint")
def get_endpoint(endpoint_id: str, rt: Runtime = Depends(runtime)) -> dict[str, object]:
    return endpoint(webhooks.get_endpoint(rt, endpoint_id))


@router.patch(
    "/v1/webhook-endpoints/{endpoint_id}",
    summary="Change an endpoint's url, events or description; enable or disable it",
)
def update_endpoint(
    endpoint_id: str,
    body: dict[str, Any] = Body(..., examples=[{"enabled": True}]),
    rt: Runtime = Depends(runtime),
) -> dict[str, object]:
    _only(body, ("url", "events", "description", "enabled"))
    enabled = body.get("enabled")
    if enabled is not None and not isinstance(enabled, bool):
        raise InvalidInput("enabled must be true or false", errors=(_field("/enabled"),))
    changes = EndpointChanges(
        url=body.get("url"),
        events=webhooks.parse_events(body["events"]) if "events" in body else None,
        description=_description(body["description"]) if "description" in body else None,
        enabled=enabled,
    )
    return endpoint(webhooks.update_endpoint(rt, endpoint_id, changes))


@router.delete(
    "/v1/webhook-endpoints/{endpoint_id}", status_code=204, summary="Delete a webhook endpoint"
)
def delete_endpoint(endpoint_id: str, rt: Runtime = Depends(runtime)) -> Response:
    webhooks.delete_endpoint(rt, endpoint_id)
    return Response(status_code=204)


@router.get("/v1/webhook-deliveries", summary="List webhook deliveries (e.g. ?status=failed)")
def list_deliveries(
    status: str | None = None,
    starting_after: str | None = None,
    limit: int = Query(100, ge=1, le=1000),
    rt: Runtime = Depends(runtime),
) -> dict[str, object]:
    if status is not None and status not in _STATUSES:
        detail = f"must be one of {', '.join(_STATUSES)}"
        raise InvalidInput(
            f"{status!r} is not a delivery status", errors=(_field("/status", detail),)
        )
    found = list_webhook_deliveries(rt, status, starting_after, limit + 1)
    return {"data": [delivery(d) for d in found[:limit]], "has_more": len(found) > limit}


@router.post(
    "/v1/webhook-deliveries/{delivery_id}/retry",
    status_code=202,
    summary="Replay a failed webhook delivery (queued, due now)",
)
def retry(delivery_id: str, rt: Runtime = Depends(runtime)) -> dict[str, object]:
    return delivery(retry_delivery(rt, delivery_id))


@router.get(
    "/v1/customers/{key}/notifications",
    summary="Every notification sent to a customer, with delivery attempts and outcome",
)
def customer_notifications(
    key: str,
    since: str | None = None,
    until: str | None = None,
    rt: Runtime = Depends(runtime),
) -> dict[str, object]:
    since_us = None if since is None else to_us(parse_instant(since, "/since"))
    until_us = None if until is None else to_us(parse_instant(until, "/until"))
    return {"data": [notification(r) for r in customer_log(rt, key, since_us, until_us)]}


# --- rendering ---------------------------------------------------------------------------------
def endpoint(row: RowMapping) -> dict[str, object]:
    return {
        "id": row["id"],
        "url": row["url"],
        "description": row["description"],
        "events": json.loads(row["events"]),
        "enabled": row["disabled_us"] is None,
        "disabled_at": format_instant(row["disabled_us"]),
        "disabled_reason": row["disabled_reason"],
        "created_at": format_instant(row["created_us"]),
        "updated_at": format_instant(row["updated_us"]),
    }


def notification(record: NotificationRecord) -> dict[str, object]:
    row = record.notification
    return {
        "id": row["id"],
        "customer": row["customer_key"],
        "kind": row["kind"],
        "title": row["title"],
        "rule_id": row["rule_id"],
        # What the customer was told, as it stood then (usage, limit, threshold, ...).
        "details": record.details,
        "period": _period(row["period_start_us"], row["period_end_us"]),
        "created_at": format_instant(row["created_us"]),
        "status": record.status,
        "channels": sorted({d.delivery["channel"] for d in record.deliveries}),
        "deliveries": [delivery(d) for d in record.deliveries],
    }


def warning(record: NotificationRecord) -> dict[str, object]:
    """A notification as an invoice links to it."""
    row = record.notification
    return {
        "id": row["id"],
        "kind": row["kind"],
        "title": row["title"],
        "created_at": format_instant(row["created_us"]),
        "status": record.status,
    }


def delivery(record: DeliveryRecord) -> dict[str, object]:
    row = record.delivery
    return {
        "id": row["id"],
        "notification_id": row["notification_id"],
        "channel": row["channel"],
        "endpoint_id": row["endpoint_id"],
        "recipient": row["recipient"],
        "status": row["status"],
        "attempts": [
            {
                "at": format_instant(a["at_us"]),
                "response_code": a["status_code"],
                "error": a["error"],
                "duration_ms": a["duration_ms"],
            }
            for a in record.attempts
        ],
        "response_code": row["last_status_code"],
        "last_error": row["last_error"],
        "delivered_at": format_instant(row["delivered_us"]),
        "next_attempt_at": format_instant(row["next_attempt_us"])
        if row["status"] == "pending"
        else None,
        "created_at": format_instant(row["created_us"]),
    }


def _period(start: int | None, end: int | None) -> dict[str, str | None] | None:
    return None if start is None else {"start": format_instant(start), "end": format_instant(end)}


def _only(body: Mapping[str, Any], allowed: tuple[str, ...]) -> None:
    unknown = [name for name in body if name not in allowed]
    if unknown:
        raise InvalidInput(
            f"unknown field {unknown[0]!r}",
            errors=tuple(_field(f"/{n}", "is not a field of this request") for n in unknown),
        )


def _description(raw: object) -> str:
    if not isinstance(raw, str) or len(raw) > 1000:
        detail = "must be a string of at most 1000 characters"
        raise InvalidInput(f"description {detail}", errors=(_field("/description", detail),))
    return raw


def _field(pointer: str, detail: str = "is not valid") -> FieldError:
    return FieldError(pointer, detail)
