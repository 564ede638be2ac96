"""GET /metrics: Prometheus text, no authentication (scrapers rarely hold API keys; it
exposes counts, no customer data). Each app has its own registry, so two apps in one
process (tests, the embedded engine) never mix their counts."""

from __future__ import annotations

from collections.abc import Iterator

from fastapi import APIRouter, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, Metric
from prometheus_client.registry import Collector

from fairmeter.services.entitlements import Enforcer

router = APIRouter(tags=["system"])


class _Decisions(Collector):
    """Read at scrape time from the engine's in-memory counts: nothing on the hot path."""

    def __init__(self, engine: Enforcer) -> None:
        self.engine = engine

    def collect(self) -> Iterator[Metric]:
        stats = self.engine.stats
        decisions = CounterMetricFamily(
            "fairmeter_limit_decisions",
            "Decisions of the limits engine by operation, reason, policy and answer",
            labels=["operation", "reason", "policy", "allowed"],
        )
        for (operation, reason, policy, allowed), count in sorted(stats.decisions().items()):
            decisions.add_metric([operation, reason, policy, str(allowed).lower()], count)
        yield decisions
        yield CounterMetricFamily(
            "fairmeter_limits_unavailable",
            "Decisions taken while the shared counters (Redis) could not be reached",
            value=stats.unavailable,
        )
        yield CounterMetricFamily(
            "fairmeter_limits_unrecorded_batches",
            "Batches of admitted usage that could not be written to the database",
            value=stats.unrecorded,
        )


def registry_for(engine: Enforcer | None) -> CollectorRegistry:
    registry = CollectorRegistry(auto_describe=True)
    if engine is not None:
        registry.register(_Decisions(engine))
    return registry


@router.get("/metrics", summary="Prometheus metrics: decisions by reason, policy and answer")
def metrics(request: Request) -> Response:
    registry: CollectorRegistry = request.app.state.metrics
    return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)
