"""The HTTP API: parse -> service -> render."""

from __future__ import annotations

from fastapi import FastAPI

from fairmeter import __version__
from fairmeter.api import problems
from fairmeter.api.routes import (
    alert_rules,
    customers,
    entitlements,
    events,
    invoices,
    limits,
    meters,
    metrics,
    notifications,
    plans,
    subscriptions,
)
from fairmeter.services.runtime import Runtime


def create_app(rt: Runtime) -> FastAPI:
    app = FastAPI(
        title="fairmeter",
        version=__version__,
        description="Meter every unit of use exactly once. Errors are RFC 9457 problem+json.",
        openapi_url="/openapi.json",
        docs_url="/docs",
    )
    app.state.runtime = rt
    problems.install(app)
    app.include_router(events.router)
    app.include_router(meters.router)
    app.include_router(customers.router)
    app.include_router(plans.router)
    app.include_router(subscriptions.router)
    app.include_router(invoices.router)
    app.include_router(alert_rules.router)
    app.include_router(notifications.router)
    app.include_router(entitlements.router)
    app.include_router(limits.router)
    app.state.metrics = metrics.registry_for(rt.limits)
    app.include_router(metrics.router)
    invoices.watch_thresholds(app, rt)

    @app.get("/healthz", tags=["system"], summary="Liveness: the database answers")
    def healthz() -> dict[str, str]:
        with rt.db.read() as conn:
            conn.exec_driver_sql("SELECT 1")
        return {"status": "ok"}

    return app
