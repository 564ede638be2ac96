"""build(settings): the one place that picks implementations."""

from __future__ import annotations

import gc
from datetime import timedelta

from fairmeter.config import Settings
from fairmeter.domain.events import IngestPolicy
from fairmeter.domain.invoices import BillingSettings
from fairmeter.domain.notifications import ChannelSettings, TargetPolicy
from fairmeter.services.alert_evaluator import AlertEvaluator
from fairmeter.services.clock import Clock, SystemClock
from fairmeter.services.entitlements import Enforcer
from fairmeter.services.notifications import lifecycle_listener
from fairmeter.services.runtime import Runtime
from fairmeter.storage.counters import Counters
from fairmeter.storage.counters_local import LocalCounters
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
    channels = ChannelSettings(
        smtp_url=settings.smtp_url,
        targets=TargetPolicy.parse(settings.webhook_allow_private),
        poll_seconds=settings.worker_poll_seconds,
    )
    rt = Runtime(
        db=db, clock=clock or SystemClock(), policy=policy, billing=billing, channels=channels
    )
    # Every lifecycle notice (limit reached, plan upgraded, ...) becomes a notification.
    rt.hooks.on_lifecycle(lifecycle_listener(rt.db, rt.clock))
    # Alert rules are evaluated as usage is recorded, in a thread of their own.
    rt.alerts = AlertEvaluator(rt)
    rt.hooks.on_usage(rt.alerts.listener)
    rt.limits = Enforcer(rt, _counters(settings), fail_open=settings.redis_failure == "open")
    return rt


def _counters(settings: Settings) -> Counters:
    """Redis when configured (several processes enforce one limit), else this process;
    local counters re-read the database every second when idle, so usage written by other
    processes (a CLI import) shows up."""
    if settings.redis_url:
        from fairmeter.storage.counters_redis import RedisCounters

        return RedisCounters(settings.redis_url, prefix=settings.redis_prefix)
    return LocalCounters(refresh_after_s=1.0)


def create_app_from_env() -> object:
    """Entry point for `uvicorn --factory fairmeter.wiring:create_app_from_env`."""
    from fairmeter.api.app import create_app

    app = create_app(build(Settings.from_env()))
    settle_heap()
    return app


# Young objects are collected after this many allocations (Python's default: 700). A batch
# of 1,000 events allocates thousands of containers, all freed by reference counting.
YOUNG_GENERATION_THRESHOLD = 20_000


def settle_heap() -> None:
    """For a server process, once it is built: move every object alive now (modules, the
    app, the runtime) out of the garbage collector's sight, and collect young objects less
    often. Otherwise each full collection walks the whole startup heap again; under ingest
    that cost about a quarter of the throughput (ADR 8)."""
    gc.collect()
    gc.freeze()
    _, middle, old = gc.get_threshold()
    gc.set_threshold(YOUNG_GENERATION_THRESHOLD, middle, old)
