"""Group commit: concurrent requests share transactions without sharing outcomes."""

from __future__ import annotations

import json
import threading
from collections.abc import Sequence
from concurrent.futures import Future
from decimal import Decimal

import pytest
from sqlalchemy import func, select

from fairmeter.api import codec
from fairmeter.domain.customers import parse_customer
from fairmeter.domain.events import UsageEvent
from fairmeter.domain.meters import parse_meter
from fairmeter.domain.windows import Span, Window, to_us
from fairmeter.services import catalog
from fairmeter.services.hooks import Origin, Recorded
from fairmeter.services.ingest import IngestRequest, prepare, record_prepared
from fairmeter.services.ingest_queue import GroupCommitter
from fairmeter.services.rollups import RollupBatch
from fairmeter.services.runtime import Runtime
from fairmeter.services.usage import UsageQuery, query_usage
from fairmeter.storage.tables import events


def _request(runtime: Runtime, ids: Sequence[int], subject: str = "acme") -> IngestRequest:
    events = [
        {
            "specversion": "1.0",
            "id": f"e{i}",
            "source": "t",
            "type": "api.request",
            "subject": subject,
            "time": "2026-11-15T11:00:00Z",
            "data": {"tokens": i},
        }
        for i in ids
    ]
    items, rejected = codec.parse_batch(
        json.dumps(events).encode(), runtime.clock.now(), runtime.policy
    )
    return IngestRequest(items, rejected, to_us(runtime.clock.now()))


def _setup(runtime: Runtime) -> None:
    catalog.create_customer(runtime.db, runtime.clock, parse_customer({"key": "acme"}))
    body = {
        "key": "tokens",
        "event_type": "api.request",
        "aggregation": "sum",
        "value_property": "$.tokens",
    }
    catalog.create_meter(runtime.db, runtime.clock, parse_meter(body))


def _total(runtime: Runtime) -> Decimal | None:
    span = Span(runtime.clock.now().replace(hour=0), runtime.clock.now())
    rows = query_usage(runtime.db, UsageQuery("tokens", "acme", span, Window.NONE, _utc()))
    return rows[0].value


def _utc():  # type: ignore[no-untyped-def]
    from zoneinfo import ZoneInfo

    return ZoneInfo("UTC")


def test_concurrent_overlapping_requests_store_each_event_once(runtime: Runtime) -> None:
    _setup(runtime)
    requests = [_request(runtime, range(start, start + 50)) for start in range(0, 200, 25)]
    results = []
    lock = threading.Lock()

    def send(request: IngestRequest) -> None:
        result = runtime.ingest.record(request)
        with lock:
            results.append(result)

    threads = [threading.Thread(target=send, args=(r,)) for r in requests for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sum(r.accepted for r in results) == 225  # ids 0..224
    assert sum(r.accepted + r.duplicates for r in results) == 50 * len(threads)
    assert _total(runtime) == sum(range(225))


def test_a_failing_request_does_not_fail_or_double_count_its_group(
    runtime: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    _setup(runtime)
    real_write = RollupBatch.write

    def poisoned_write(self: RollupBatch, usage) -> None:  # type: ignore[no-untyped-def]
        # Fails inside the transaction, after outcomes were counted: it must roll back.
        if any(subject == "poison" for _, subject, _, _ in self.partials):
            raise RuntimeError("poisoned")
        real_write(self, usage)

    monkeypatch.setattr(RollupBatch, "write", poisoned_write)
    requests = [
        _request(runtime, range(10)),
        _request(runtime, [999], "poison"),
        _request(runtime, range(5, 15)),
    ]
    group = [(prepare(runtime.db, r), Future()) for r in requests]
    GroupCommitter(runtime.db)._commit(group)  # one group, as if all arrived together
    good, bad, good2 = (future for _, future in group)
    assert isinstance(bad.exception(), RuntimeError)
    assert good.result().accepted + good2.result().accepted == 15
    assert good.result().duplicates + good2.result().duplicates == 5
    assert _total(runtime) == sum(range(15))


def test_a_retry_answers_under_the_meters_it_writes_with(
    runtime: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Meters change between `prepare` and the first attempt, and back before the retry:
    the retry's answer must come from the meters the retry measured with, not the first's."""
    _setup(runtime)
    request = _request(runtime, range(3))
    prepared = prepare(runtime.db, request)  # under "tokens" alone: all three are fine
    strict = {
        "key": "models",
        "event_type": "api.request",
        "aggregation": "sum",
        "value_property": "$.model_tokens",  # absent from the events: each is refused
    }
    catalog.create_meter(runtime.db, runtime.clock, parse_meter(strict))
    real_write = RollupBatch.write
    attempts: list[int] = []

    def failing_once(self: RollupBatch, usage) -> None:  # type: ignore[no-untyped-def]
        attempts.append(1)
        if len(attempts) == 1:
            raise RuntimeError("the first attempt fails after measuring")
        real_write(self, usage)

    monkeypatch.setattr(RollupBatch, "write", failing_once)
    with pytest.raises(RuntimeError):
        record_prepared(runtime.db, [prepared])  # measured again under both meters
    catalog.archive_meter(runtime.db, runtime.clock, "models")  # back to "tokens" alone
    result = record_prepared(runtime.db, [prepared])[0]
    assert (result.accepted, result.duplicates, result.rejected) == (3, 0, ())
    assert _total(runtime) == 0 + 1 + 2


def test_events_sharing_one_data_object_are_each_measured_as_their_own(runtime: Runtime) -> None:
    """A run of events with the same data object, subject, time and type (a count meter's
    admitted calls) is measured once; any difference in subject, time or type, or another
    data object, is measured anew, and a rejected event rejects only itself."""
    _setup(runtime)
    catalog.create_customer(runtime.db, runtime.clock, parse_customer({"key": "globex"}))
    heard: list[tuple[str, int, object]] = []
    runtime.hooks.on_usage(
        lambda items: heard.extend((r.subject, r.time_us, r.value) for r in items)
    )
    data = {"tokens": 2}
    t = to_us(runtime.clock.now())
    shared = [("acme", t), ("acme", t), ("globex", t), ("globex", t - 1), ("acme", t)]

    def event(n: int, subject: str, time_us: int, payload: dict[str, object]) -> object:
        return UsageEvent("t", f"s{n}", "api.request", subject, time_us, payload,
                                json.dumps(payload).encode(), bytes(16))  # fmt: skip

    items = [(n, event(n, s, when, data)) for n, (s, when) in enumerate(shared)]
    items.append((5, event(5, "acme", t, {"tokens": 5})))
    items.append((6, event(6, "acme", t, {"no": "tokens"})))  # refused: no value
    items.append((7, event(7, "acme", t, {"no": "tokens"})))
    result = runtime.ingest.record(IngestRequest(items, [], t))  # type: ignore[arg-type]
    assert result.accepted == 6 and [r.index for r in result.rejected] == [6, 7]
    assert heard == [(s, when, Decimal(2)) for s, when in shared] + [("acme", t, Decimal(5))]


def _run_meters(runtime: Runtime) -> None:
    catalog.create_customer(runtime.db, runtime.clock, parse_customer({"key": "acme"}))
    for key in ("calls", "also_calls"):  # two count meters of one event type
        body = {"key": key, "event_type": "api.call", "aggregation": "count"}
        catalog.create_meter(runtime.db, runtime.clock, parse_meter(body))


def _usage(runtime: Runtime, meter: str) -> Decimal | None:
    span = Span(runtime.clock.now().replace(hour=0), runtime.clock.now())
    rows = query_usage(runtime.db, UsageQuery(meter, "acme", span, Window.NONE, _utc()))
    return rows[0].value


def test_a_run_is_one_row_standing_for_its_events_with_rollups_and_listeners(
    runtime: Runtime,
) -> None:
    """`record_run` (the limits writer's batches): `count` events that differ only by id
    (`id`, `id:2`, ...), measured once, stored as one row with `copies` = count (ADR 13),
    their rollups counted `count` times, the listeners told once per event and meter. A
    run sent again is a duplicate whole: nothing is written or counted twice."""
    _run_meters(runtime)
    heard: list[Recorded] = []
    runtime.hooks.on_usage(heard.extend)
    now_us = to_us(runtime.clock.now())
    hour_ago = now_us - 3_600_000_000  # in the usage queried (it ends now, excluded)
    first = UsageEvent("fairmeter.entitlements", "run-1", "api.call", "acme", hour_ago, {},
                       b"{}", bytes(16))  # fmt: skip
    result = runtime.ingest.record_run(first, 5, now_us, Origin.ENTITLEMENTS)
    assert (result.accepted, result.duplicates, result.rejected) == (5, 0, ())
    with runtime.db.read() as conn:
        rows = conn.execute(select(events.c.id, events.c.copies)).all()
    assert [tuple(row) for row in rows] == [("run-1", 5)]
    assert _usage(runtime, "calls") == _usage(runtime, "also_calls") == Decimal(5)
    assert len(heard) == 10 and {r.meter.key for r in heard} == {"calls", "also_calls"}
    assert {r.origin for r in heard} == {Origin.ENTITLEMENTS}

    again = runtime.ingest.record_run(first, 5, now_us, Origin.ENTITLEMENTS)
    assert (again.accepted, again.duplicates) == (0, 5)
    assert _usage(runtime, "calls") == Decimal(5) and len(heard) == 10
    with runtime.db.read() as conn:
        assert conn.execute(select(func.count()).select_from(events)).scalar() == 1


def test_a_run_a_meter_cannot_measure_is_refused_whole(runtime: Runtime) -> None:
    _run_meters(runtime)
    body = {"key": "tokens", "event_type": "api.call", "aggregation": "sum",
            "value_property": "$.tokens"}  # fmt: skip
    catalog.create_meter(runtime.db, runtime.clock, parse_meter(body))
    now_us = to_us(runtime.clock.now())
    first = UsageEvent("fairmeter.entitlements", "run-2", "api.call", "acme", now_us, {},
                       b"{}", bytes(16))  # fmt: skip
    result = runtime.ingest.record_run(first, 3, now_us, Origin.ENTITLEMENTS)
    assert result.accepted == 0 and [r.id for r in result.rejected] == ["run-2"]
    with runtime.db.read() as conn:
        assert conn.execute(select(func.count()).select_from(events)).scalar() == 0
    assert _usage(runtime, "calls") == Decimal(0)
