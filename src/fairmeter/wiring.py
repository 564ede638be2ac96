"""build(settings): the one place that picks implementations."""

from __future__ import annotations

from datetime import timedelta

from fairmeter.config import Settings
from fairmeter.domain.events import IngestPolicy
from fairmeter.domain.invoices import BillingSettings
from fairmeter.services.clock import Clock, SystemClock
from fairmeter.services.runtime import Runtime
from fairmeter.storage.database import Database, make_engine
from fairmeter.storage.migrate import upgrade


def build(settings: Settings, clock: Clock | None = None, migrate: bool = True) -> Runtime:
    db = Database(make_engine(settings.database_url))
    if migrate:
        upgrade(db.engine)
    policy = IngestPolicy(
        backdate_window=settings.backdate_window,
        max_batch_events=settings.max_batch_events,
        max_body_bytes=settings.max_body_bytes,
    )
    billing = BillingSettings(
        grace=timedelta(hours=settings.invoice_grace_hours),
        seller_name=settings.seller_name,
        seller_address=settings.seller_address,
        threshold_check_seconds=settings.threshold_check_seconds,
    )
    return Runtime(db=db, clock=clock or SystemClock(), policy=policy, billing=billing)


def create_app_from_env() -> object:
    """Entry point for `uvicorn --factory fairmeter.wiring:create_app_from_env`."""
    from fairmeter.api.app import create_app

    return create_app(build(Settings.from_env()))
