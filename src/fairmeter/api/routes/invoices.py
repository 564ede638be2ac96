"""Invoices: the billing run, threshold checks, listing, status changes, HTML and PDF."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from datetime import datetime
from typing import Any

from fastapi import APIRouter, Body, Depends, FastAPI, Query
from fastapi.responses import HTMLResponse, Response

from fairmeter.api.deps import admin, json_body, runtime
from fairmeter.api.invoice_pdf import invoice_pdf
from fairmeter.api.invoice_render import InvoiceView, invoice_html, invoice_json, invoice_view
from fairmeter.api.routes.notifications import warning
from fairmeter.domain.errors import FieldError, InvalidInput
from fairmeter.domain.invoices import Invoice, InvoiceStatus, StatusAction
from fairmeter.domain.windows import from_us, parse_instant
from fairmeter.services.billing import RunReport, run_billing
from fairmeter.services.invoices import (
    change_status,
    get_invoice,
    invoice_buyer,
    list_invoices,
)
from fairmeter.services.notification_log import warnings_between
from fairmeter.services.runtime import Runtime
from fairmeter.services.thresholds import ThresholdSweeper, check_thresholds

router = APIRouter(tags=["invoices"], dependencies=[Depends(admin), Depends(json_body)])


def _fields(body: Mapping[str, Any] | None, allowed: tuple[str, ...]) -> Mapping[str, Any]:
    body = body or {}
    unknown = [name for name in body if name not in allowed]
    if unknown:
        raise InvalidInput(
            f"unknown field {unknown[0]!r}",
            errors=tuple(FieldError(f"/{n}", "is not a field of this request") for n in unknown),
        )
    return body


def _as_of(raw: object) -> datetime | None:
    return None if raw is None else parse_instant(raw, "/as_of")


def _summary(invoice: Invoice) -> dict[str, object]:
    body = invoice_json(invoice)
    return {k: body[k] for k in ("id", "number", "status", "kind", "customer", "total")}


def _report(report: RunReport) -> dict[str, object]:
    return {
        "as_of": report.as_of.isoformat().replace("+00:00", "Z"),
        "created": [_summary(i) for i in report.created],
        "updated": [_summary(i) for i in report.updated],
        "finalized": [_summary(i) for i in report.finalized],
        "thresholds": [_summary(i) for i in report.thresholds],
    }


@router.post("/v1/billing/run", summary="Invoice every period that has ended (idempotent)")
def billing_run(
    body: dict[str, Any] | None = Body(None, examples=[{"as_of": "2026-12-01T00:00:00Z"}]),
    rt: Runtime = Depends(runtime),
) -> dict[str, object]:
    fields = _fields(body, ("as_of",))
    return _report(run_billing(rt, _as_of(fields.get("as_of"))))


@router.post("/v1/billing/thresholds", summary="Issue the threshold invoices that are due")
def billing_thresholds(
    body: dict[str, Any] | None = Body(None, examples=[{"customer": "acme"}]),
    rt: Runtime = Depends(runtime),
) -> dict[str, object]:
    customer = _fields(body, ("customer",)).get("customer")
    if customer is not None and not isinstance(customer, str):
        raise InvalidInput(
            "customer must be a key", errors=(FieldError("/customer", "must be a string"),)
        )
    issued = check_thresholds(rt, customers=None if customer is None else [customer])
    return {"issued": [invoice_json(i) for i in issued]}


@router.get("/v1/invoices", summary="List invoices (by id, oldest first; filter and paginate)")
def invoices_list(
    customer: str | None = None,
    status: str | None = None,
    starting_after: str | None = None,
    limit: int = Query(100, ge=1, le=1000),
    rt: Runtime = Depends(runtime),
) -> dict[str, object]:
    state = None
    if status is not None:
        try:
            state = InvoiceStatus(status)
        except ValueError:
            allowed = ", ".join(s.value for s in InvoiceStatus)
            raise InvalidInput(
                f"{status!r} is not an invoice status",
                errors=(FieldError("/status", f"must be one of {allowed}"),),
            ) from None
    found = list_invoices(rt, customer, state, starting_after, limit + 1)
    return {"data": [invoice_json(i) for i in found[:limit]], "has_more": len(found) > limit}


def _view_of(rt: Runtime, invoice_id: str) -> tuple[Invoice, InvoiceView]:
    invoice = get_invoice(rt, invoice_id)
    return invoice, invoice_view(invoice, invoice_buyer(rt, invoice))


@router.get("/v1/invoices/{invoice_id}.html", summary="An invoice as an HTML document")
def invoice_as_html(invoice_id: str, rt: Runtime = Depends(runtime)) -> HTMLResponse:
    _, view = _view_of(rt, invoice_id)
    return HTMLResponse(invoice_html(view))


@router.get(
    "/v1/invoices/{invoice_id}.pdf",
    summary="An invoice as a PDF document",
    response_class=Response,
    responses={200: {"content": {"application/pdf": {}}}},
)
def invoice_as_pdf(invoice_id: str, rt: Runtime = Depends(runtime)) -> Response:
    invoice, view = _view_of(rt, invoice_id)
    dated = from_us(invoice.issued_us or invoice.updated_us)
    name = (invoice.number or f"draft-{invoice.id}") + ".pdf"
    return Response(
        invoice_pdf(view, dated),
        media_type="application/pdf",
        headers={"Content-Disposition": f'inline; filename="{name}"'},
    )


@router.get("/v1/invoices/{invoice_id}", summary="An invoice with its lines")
def invoice_get(invoice_id: str, rt: Runtime = Depends(runtime)) -> dict[str, object]:
    invoice = get_invoice(rt, invoice_id)
    # The warnings the customer was sent in the invoice's period: the proof they were told.
    sent = warnings_between(
        rt, invoice.customer_key, invoice.period_start_us, invoice.period_end_us
    )
    return {**invoice_json(invoice), "warnings": [warning(record) for record in sent]}


def _status_route(action: StatusAction) -> None:
    @router.post(
        f"/v1/invoices/{{invoice_id}}/{action.value}",
        name=f"invoice_{action.name.lower()}",
        summary=f"Mark a finalized invoice {action.value.replace('mark-', '')}",
    )
    def change(invoice_id: str, rt: Runtime = Depends(runtime)) -> dict[str, object]:
        return invoice_json(change_status(rt, invoice_id, action))


for _action in StatusAction:
    _status_route(_action)


def watch_thresholds(app: FastAPI, rt: Runtime) -> None:
    """Sweep thresholds in the background while the app runs (every
    `rt.billing.threshold_check_seconds`; 0 turns it off)."""
    inner = app.router.lifespan_context

    @asynccontextmanager
    async def lifespan(application: Any) -> AsyncIterator[Any]:
        sweeper = ThresholdSweeper(rt, rt.billing.threshold_check_seconds).start()
        try:
            async with inner(application) as state:
                yield state
        finally:
            sweeper.stop()

    app.router.lifespan_context = lifespan
