"""Ingest tells its listeners what it committed: each written contribution once, after the
commit, never duplicates, and a failing listener fails no acknowledgement."""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal

import msgspec
from tests.services.test_services_ingest import customer, event, meter

from fairmeter.api.codec import parse_batch
from fairmeter.domain.events import IngestResult
from fairmeter.domain.windows import to_us
from fairmeter.services.hooks import Lifecycle, LifecycleNotice, Origin, Recorded
from fairmeter.services.ingest import IngestRequest
from fairmeter.services.runtime import Runtime

_JSON = msgspec.json.Encoder(decimal_format="number")


def post(
    rt: Runtime, events: list[dict[str, object]], origin: Origin = Origin.EVENTS
) -> IngestResult:
    now = rt.clock.now()
    items, rejected = parse_batch(_JSON.encode(events), now, rt.policy)
    return rt.ingest.record(IngestRequest(items, rejected, to_us(now), origin=origin))


def test_listeners_hear_each_written_contribution_once(runtime: Runtime) -> None:
    heard: list[Recorded] = []
    runtime.hooks.on_usage(heard.extend)
    meter(runtime, "sum", "tokens")
    meter(runtime, "count", "calls")
    customer(runtime)
    post(runtime, [event(1, tokens=5), event(2, tokens=7)])
    post(runtime, [event(1, tokens=5), event(3, tokens=1)])  # e1 again: a duplicate
    by_meter: dict[str, list[Decimal | str]] = {}
    for item in heard:
        by_meter.setdefault(item.meter.key, []).append(item.value)
    assert sorted(by_meter["tokens"]) == [Decimal(1), Decimal(5), Decimal(7)]
    assert len(by_meter["calls"]) == 3
    assert {item.origin for item in heard} == {Origin.EVENTS}
    assert {item.subject for item in heard} == {"acme"}


def test_the_origin_travels_with_the_request(runtime: Runtime) -> None:
    heard: list[Recorded] = []
    runtime.hooks.on_usage(heard.extend)
    meter(runtime, "sum", "tokens")
    post(runtime, [event(1, tokens=2)], origin=Origin.ENTITLEMENTS)
    assert [(i.origin, i.value) for i in heard] == [(Origin.ENTITLEMENTS, Decimal(2))]


def test_a_failing_listener_fails_no_acknowledgement(runtime: Runtime) -> None:
    def broken(items: Sequence[Recorded]) -> None:
        raise RuntimeError("listener bug")

    heard: list[Recorded] = []
    runtime.hooks.on_usage(broken)
    runtime.hooks.on_usage(heard.extend)
    meter(runtime, "sum", "tokens")
    result = post(runtime, [event(1, tokens=2)])
    assert result.accepted == 1
    assert len(heard) == 1  # the next listener still hears it


def test_lifecycle_notices_reach_every_listener(runtime: Runtime) -> None:
    seen: list[LifecycleNotice] = []
    runtime.hooks.on_lifecycle(seen.append)
    notice = LifecycleNotice(Lifecycle.LIMIT_REACHED, "acme", runtime.clock.now())
    runtime.hooks.lifecycle(notice)
    assert seen == [notice]
