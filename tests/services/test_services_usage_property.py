"""query_usage equals a brute-force recount of the raw events, on every backend.

Events are ingested in random batches (with resends); queries use random spans (often
unaligned to the microsecond), windows, time zones, customers and group_by. The expected
value of every returned row is recomputed here from the generated events alone."""

from __future__ import annotations

import itertools
import uuid
from bisect import bisect_left
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from zoneinfo import ZoneInfo

import msgspec
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fairmeter.api.codec import parse_batch
from fairmeter.domain.customers import parse_customer
from fairmeter.domain.meters import parse_meter
from fairmeter.domain.windows import Span, Window, from_us, to_us
from fairmeter.services import catalog
from fairmeter.services.ingest import record_events
from fairmeter.services.runtime import Runtime
from fairmeter.services.usage import UsageQuery, UsageRow, query_usage

AGGREGATIONS = ("count", "sum", "max", "latest", "unique_count")
ZONES = ("UTC", "Europe/Madrid", "America/New_York", "Asia/Kolkata", "Asia/Kathmandu")
GROUPINGS = ((), ("region",), ("tier",), ("region", "tier"))
HOUR_US = 3_600_000_000
DAY_US = 24 * HOUR_US
_JSON = msgspec.json.Encoder(decimal_format="number")


@dataclass(frozen=True)
class Sent:
    subject: int
    time_us: int
    value: Decimal
    unique: str | int
    region: str | None
    tier: int


@dataclass(frozen=True)
class Ask:
    span: Span
    window: Window
    zone: ZoneInfo
    group_by: tuple[str, ...]
    customer: int | None


# Up to 13 significant digits: such a decimal survives any float round trip, so this
# property checks the query arithmetic; exact digits beyond that are pinned separately.
VALUES = st.builds(
    lambda n, places: Decimal(n).scaleb(-places),
    st.integers(-(10**12), 10**12),
    st.integers(0, 12),
)


def events(now_us: int, days: int) -> st.SearchStrategy[list[Sent]]:
    # Times sit on whole hours or near them, so buckets, windows and ties hold several events.
    hours = st.integers(1, days * 24).map(lambda h: now_us - h * HOUR_US)
    jitter = st.one_of(st.just(0), st.integers(0, HOUR_US - 1), st.integers(0, 3))
    times = st.builds(lambda base, j: base + j, hours, jitter).filter(lambda t: t < now_us)
    one = st.builds(
        Sent,
        subject=st.sampled_from([0, 0, 1, 1, 2]),
        time_us=times,
        value=VALUES,
        unique=st.one_of(st.sampled_from(["a", "b", "1"]), st.integers(1, 3)),
        region=st.sampled_from([None, "eu", "us"]),
        tier=st.integers(1, 2),
    )
    return st.lists(one, min_size=20, max_size=80)


@st.composite
def asks(draw: st.DrawFn, now_us: int, days: int, sent: list[Sent]) -> Ask:
    near_event = st.sampled_from([e.time_us for e in sent] or [now_us]).flatmap(
        lambda t: st.sampled_from([t - 1, t, t + 1])
    )
    hour = st.integers(0, (days + 1) * 24).map(lambda h: now_us - h * HOUR_US)
    anywhere = st.integers(now_us - (days + 1) * DAY_US, now_us + HOUR_US)
    bound = st.one_of(anywhere, near_event, hour)
    a, b = draw(bound), draw(bound)
    start, end = min(a, b), max(a, b) + (1 if a == b else 0)
    window = draw(st.sampled_from(list(Window)))
    if window is Window.HOUR:
        end = min(end, start + 6 * DAY_US)
    return Ask(
        Span(from_us(start), from_us(end)),
        window,
        ZoneInfo(draw(st.sampled_from(ZONES))),
        draw(st.sampled_from(GROUPINGS)),
        draw(st.sampled_from([None, None, 0, 1])),
    )


def _cloud_event(run: str, index: int, e: Sent) -> dict[str, object]:
    data: dict[str, object] = {"v": e.value, "u": e.unique, "tier": e.tier}
    if e.region is not None:
        data["region"] = e.region
    return {
        "specversion": "1.0",
        "id": f"{run}-{index}",
        "source": "property",
        "type": f"t.{run}",
        "subject": f"s{e.subject}-{run}",
        "time": from_us(e.time_us).isoformat(),
        "data": data,
    }


def _ingest(rt: Runtime, batches: list[list[dict[str, object]]]) -> int:
    accepted = 0
    for batch in batches:
        items, rejected = parse_batch(_JSON.encode(batch), rt.clock.now(), rt.policy)
        assert rejected == []
        accepted += record_events(rt.db, items, rejected, to_us(rt.clock.now())).accepted
    return accepted


def _setup(rt: Runtime, run: str, unknown_third: bool) -> None:
    for aggregation in AGGREGATIONS:
        body: dict[str, object] = {
            "key": f"{aggregation}_{run}",
            "event_type": f"t.{run}",
            "aggregation": aggregation,
            "group_by": {"region": "$.region", "tier": "$.tier"},
        }
        if aggregation != "count":
            body["value_property"] = "$.u" if aggregation == "unique_count" else "$.v"
        catalog.create_meter(rt.db, rt.clock, parse_meter(body))
    for subject in range(2 if unknown_third else 3):
        catalog.create_customer(rt.db, rt.clock, parse_customer({"key": f"s{subject}-{run}"}))


Key = tuple[str, tuple[tuple[str, str | None], ...]]


def _group(e: Sent, names: tuple[str, ...]) -> tuple[tuple[str, str | None], ...]:
    values = {"region": e.region, "tier": str(e.tier)}
    return tuple((name, values[name]) for name in names)


def _expected_value(aggregation: str, chosen: list[Sent]) -> Decimal | None:
    """Each aggregation from its definition: no partials, no buckets."""
    if aggregation == "count":
        return Decimal(len(chosen))
    if aggregation == "unique_count":
        return Decimal(len({(type(e.unique), str(e.unique)) for e in chosen}))
    if aggregation == "sum":
        return sum((e.value for e in chosen), Decimal(0))
    if not chosen:
        return None
    if aggregation == "max":
        return max(e.value for e in chosen)
    last = max(e.time_us for e in chosen)
    return max(e.value for e in chosen if e.time_us == last)


def _unit(moment: datetime, window: Window, zone: ZoneInfo) -> tuple[object, ...]:
    """The local calendar unit of an instant; the offset tells a repeated hour apart."""
    local = moment.astimezone(zone)
    parts = (local.year, local.month, local.day, local.hour, local.utcoffset())
    return parts[: {Window.MONTH: 2, Window.DAY: 3, Window.HOUR: 5}[window]]


def _assert_windows(spans: list[Span], ask: Ask) -> None:
    """Windows tile the span; each holds one local calendar unit and starts a new one."""
    assert spans[0].start == ask.span.start and spans[-1].end == ask.span.end
    assert all(a.end == b.start for a, b in itertools.pairwise(spans))
    if ask.window is Window.NONE:
        assert spans == [ask.span]
        return
    for w in spans:
        last = from_us(w.end_us - 1)
        assert _unit(w.start, ask.window, ask.zone) == _unit(last, ask.window, ask.zone)
    for w in spans[1:]:
        before = from_us(w.start_us - 1)
        assert _unit(before, ask.window, ask.zone) != _unit(w.start, ask.window, ask.zone)


def _check(rows: list[UsageRow], ask: Ask, aggregation: str, truth: dict[Key, list[Sent]]) -> None:
    by_key: dict[Key, list[UsageRow]] = {}
    for row in rows:
        by_key.setdefault((row.customer, tuple(row.group.items())), []).append(row)
    assert set(by_key) == set(truth)
    for key, key_rows in by_key.items():
        _assert_windows([r.span for r in key_rows], ask)
        chosen = truth[key]
        times = [e.time_us for e in chosen]
        for row in key_rows:
            inside = chosen[
                bisect_left(times, row.span.start_us) : bisect_left(times, row.span.end_us)
            ]
            assert row.value == _expected_value(aggregation, inside), (key, row.span)


def _truth(sent: list[Sent], ask: Ask, run: str, known: set[int]) -> dict[Key, list[Sent]]:
    """The events each (customer, group) row must add up, sorted by time."""
    truth: dict[Key, list[Sent]] = {}
    for e in sorted(sent, key=lambda e: e.time_us):
        if not ask.span.start_us <= e.time_us < ask.span.end_us or e.subject not in known:
            continue
        if ask.customer is None or e.subject == ask.customer:
            truth.setdefault((f"s{e.subject}-{run}", _group(e, ask.group_by)), []).append(e)
    if ask.customer is not None and not truth and not ask.group_by:
        # A customer asked for by key gets its (empty) windows even without usage.
        truth[(f"s{ask.customer}-{run}", ())] = []
    return truth


@st.composite
def batches(draw: st.DrawFn, run: str, sent: list[Sent]) -> list[list[dict[str, object]]]:
    """The events in random order and batch sizes, some of them sent again."""
    items = [_cloud_event(run, i, e) for i, e in enumerate(sent)]
    order = draw(st.permutations(items))
    resent = draw(st.lists(st.sampled_from(items), max_size=5)) if items else []
    order = order + resent
    cuts = sorted(draw(st.lists(st.integers(0, len(order)), max_size=4)))
    bounds = [0, *cuts, len(order)]
    return [order[a:b] for a, b in itertools.pairwise(bounds) if a < b]


def test_usage_equals_a_brute_force_recount_of_the_events(runtime: Runtime) -> None:
    now_us = to_us(runtime.clock.now())
    # PostgreSQL round trips cost more; SQLite carries most of the search.
    examples = 30 if runtime.db.dialect == "sqlite" else 20

    @settings(
        max_examples=examples,
        deadline=None,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    )
    @given(data=st.data())
    def check(data: st.DataObject) -> None:
        run = uuid.uuid4().hex[:12]
        days = data.draw(st.sampled_from([1, 3, 30]), label="days of history")
        sent = data.draw(events(now_us, days), label="events")
        unknown_third = data.draw(st.booleans(), label="third subject is not a customer")
        _setup(runtime, run, unknown_third)
        assert _ingest(runtime, data.draw(batches(run, sent), label="batches")) == len(sent)
        known = {0, 1} if unknown_third else {0, 1, 2}
        for _ in range(3):
            ask = data.draw(asks(now_us, days, sent), label="query")
            customer = None if ask.customer is None else f"s{ask.customer}-{run}"
            truth = _truth(sent, ask, run, known)
            for aggregation in AGGREGATIONS:
                query = UsageQuery(
                    f"{aggregation}_{run}", customer, ask.span, ask.window, ask.zone, ask.group_by
                )
                _check(query_usage(runtime.db, query), ask, aggregation, truth)

    check()
