"""Meters and usage queries."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from fastapi import APIRouter, Body, Depends, Query, Response

from fairmeter.api import render
from fairmeter.api.deps import admin, runtime
from fairmeter.domain.errors import FieldError, InvalidInput
from fairmeter.domain.meters import parse_meter
from fairmeter.domain.windows import Span, Window
from fairmeter.services import catalog
from fairmeter.services.runtime import Runtime
from fairmeter.services.usage import UsageQuery, query_usage

router = APIRouter(tags=["meters"], dependencies=[Depends(admin)])

_METER_EXAMPLE = {
    "key": "tokens",
    "name": "LLM tokens",
    "event_type": "api.request",
    "aggregation": "sum",
    "value_property": "$.tokens",
    "group_by": {"model": "$.model"},
    "unit": "tokens",
}


@router.post("/v1/meters", status_code=201, summary="Create a meter")
def create_meter(
    body: dict[str, Any] = Body(..., examples=[_METER_EXAMPLE]), rt: Runtime = Depends(runtime)
) -> dict[str, object]:
    meter, counted = catalog.create_meter(rt.db, rt.clock, parse_meter(body))
    return {**render.meter(meter), "backfilled_events": counted}


@router.get("/v1/meters", summary="List meters")
def list_meters(
    include_archived: bool = False, rt: Runtime = Depends(runtime)
) -> dict[str, object]:
    return {"data": [render.meter(m) for m in catalog.list_meters(rt.db, include_archived)]}


@router.get("/v1/meters/{key}", summary="Get a meter")
def get_meter(key: str, rt: Runtime = Depends(runtime)) -> dict[str, object]:
    return render.meter(catalog.get_meter(rt.db, key))


@router.post("/v1/meters/{key}/archive", summary="Archive a meter (keeps its history)")
def archive_meter(key: str, rt: Runtime = Depends(runtime)) -> dict[str, object]:
    return render.meter(catalog.archive_meter(rt.db, rt.clock, key))


@router.delete("/v1/meters/{key}", status_code=204, summary="Delete a meter no event refers to")
def delete_meter(key: str, rt: Runtime = Depends(runtime)) -> Response:
    catalog.delete_meter(rt.db, key)
    return Response(status_code=204)


@router.get("/v1/meters/{key}/usage", summary="Usage per window, customer and group")
def usage(
    key: str,
    customer: str | None = None,
    from_: str | None = Query(None, alias="from", description="RFC 3339; default: month start"),
    to: str | None = Query(None, description="RFC 3339, exclusive; default: now"),
    window: Window = Window.NONE,
    timezone: str | None = Query(None, description="IANA zone; default: customer's, else UTC"),
    group_by: str | None = Query(None, description="comma-separated group names"),
    rt: Runtime = Depends(runtime),
) -> dict[str, object]:
    zone = _zone(timezone, customer, rt)
    now = rt.clock.now()
    start = _instant(from_, "/from") if from_ else _month_start(now, zone)
    end = _instant(to, "/to") if to else now
    if not start < end:
        raise InvalidInput(
            "'from' must be before 'to'", errors=(FieldError("/from", "must be before 'to'"),)
        )
    names = tuple(n.strip() for n in group_by.split(",") if n.strip()) if group_by else ()
    query = UsageQuery(key, customer, Span(start, end), window, zone, names)
    rows = query_usage(rt.db, query)
    return {
        "data": [render.usage_row(r) for r in rows],
        "meter": key,
        "window": window.value,
        "timezone": zone.key,
    }


def _zone(name: str | None, customer: str | None, rt: Runtime) -> ZoneInfo:
    if name is None:
        if customer is None:
            return ZoneInfo("UTC")
        return catalog.get_customer(rt.db, customer).zone
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise InvalidInput(
            f"{name!r} is not a time zone",
            errors=(FieldError("/timezone", "must be an IANA time zone such as Europe/Madrid"),),
        ) from None


def _instant(text: str, pointer: str) -> datetime:
    try:
        moment = datetime.fromisoformat(text.replace("z", "Z"))
    except ValueError:
        moment = None
    if moment is None or moment.tzinfo is None:
        raise InvalidInput(
            f"{text!r} is not an RFC 3339 timestamp with an offset",
            errors=(FieldError(pointer, "must be like 2026-11-01T00:00:00Z"),),
        )
    return moment.astimezone(UTC)


def _month_start(now: datetime, zone: ZoneInfo) -> datetime:
    local = now.astimezone(zone)
    return datetime(local.year, local.month, 1, tzinfo=zone).astimezone(UTC)
