"""Meters and usage queries."""

from __future__ import annotations

from typing import Any

import msgspec
from fastapi import APIRouter, Body, Depends, Query, Response

from fairmeter.api import render
from fairmeter.api.deps import admin, json_body, runtime
from fairmeter.domain.meters import parse_meter
from fairmeter.domain.windows import Window
from fairmeter.services import catalog
from fairmeter.services.runtime import Runtime
from fairmeter.services.usage import query_usage
from fairmeter.services.usage_request import usage_query

router = APIRouter(tags=["meters"], dependencies=[Depends(admin), Depends(json_body)])

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


_USAGE_EXAMPLE = {
    "meter": "tokens",
    "window": "day",
    "timezone": "Europe/Madrid",
    "data": [
        {
            "from": "2026-11-25T23:00:00Z",
            "to": "2026-11-26T23:00:00Z",
            "customer": "acme",
            "group": {"model": "large"},
            "value": "1200",
        }
    ],
}


@router.get(
    "/v1/meters/{key}/usage",
    summary="Usage per window, customer and group",
    responses={
        200: {
            "description": "One row per window, customer and group; values are decimal strings",
            "content": {"application/json": {"example": _USAGE_EXAMPLE}},
        }
    },
)
def usage(
    key: str,
    customer: str | None = None,
    from_: str | None = Query(None, alias="from", description="RFC 3339; default: month start"),
    to: str | None = Query(None, description="RFC 3339, exclusive; default: now"),
    window: Window = Window.NONE,
    timezone: str | None = Query(None, description="IANA zone; default: customer's, else UTC"),
    group_by: str | None = Query(None, description="comma-separated group names"),
    rt: Runtime = Depends(runtime),
) -> Response:
    query = usage_query(rt, key, customer, from_, to, window, timezone, group_by)
    rows = query_usage(rt.db, query)
    body = {
        "data": render.usage_rows(rows),
        "meter": key,
        "window": window.value,
        "timezone": query.zone.key,
    }
    # Encoded directly: a month of hours is 744 rows, and the generic encoder costs
    # microseconds per value.
    return Response(msgspec.json.encode(body), media_type="application/json")
