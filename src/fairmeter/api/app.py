"""The HTTP API: parse -> service -> render."""

from __future__ import annotations

from fastapi import FastAPI

from fairmeter import __version__
from fairmeter.api import problems
from fairmeter.api.routes import customers, events, invoices, meters, plans, subscriptions
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
    invoices.watch_thresholds(app, rt)

    @app.get("/healthz", tags=["system"], summary="Liveness: the database answers")
    def healthz() -> dict[str, str]:
        with rt.db.read() as conn:
            conn.exec_driver_sql("SELECT 1")
        return {"status": "ok"}

    return app
