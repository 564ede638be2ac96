"""Evaluate alert rules for the customers and meters that just recorded usage.

One pass (`evaluate`): load each customer's current period, plan and effective rules
(alert_contexts.py); read the usage each rule needs (one exact read per meter and span,
database-summed rollups); price the period when a spend rule asks (alert_spend.py); find
the crossed thresholds; enqueue their notifications in one transaction. A threshold
already told (its dedupe key is in `told`, this process's memory) costs no read; one told
by another process is refused by the UNIQUE dedupe key, so each crossing is told once
whoever sees it first.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal

from sqlalchemy.engine import Connection

from fairmeter.domain.alert_crossings import (
    crossed,
    dedupe_key,
    project_spend,
    project_usage,
    recorded_until,
    targets,
    trailing_window,
)
from fairmeter.domain.alerts import AlertRule, RuleKind
from fairmeter.domain.meters import Meter
from fairmeter.domain.windows import Span, from_us, to_us
from fairmeter.services.alert_contexts import (
    AlertContext,
    ContextCache,
    base_of,
    load_contexts,
)
from fairmeter.services.alert_messages import (
    spend_forecast_note,
    spend_note,
    usage_forecast_note,
    usage_note,
)
from fairmeter.services.alert_spend import Spend, spend_of, spend_reads
from fairmeter.services.billing_accounts import meters_by_key
from fairmeter.services.billing_usage import Measure, MeasureKey, measure_key, measure_usage
from fairmeter.services.notifications import NewNotification, enqueue
from fairmeter.services.runtime import Runtime
from fairmeter.storage.alert_usage import BATCHABLE, HeadStore, Read, UsageBatch

Touched = Mapping[str, Collection[str]]  # customer key -> meter keys with new usage


@dataclass
class Told:
    """Dedupe keys this process has enqueued or found enqueued (bounded memory)."""

    keys: set[str] = field(default_factory=set)
    limit: int = 200_000

    def add(self, key: str) -> None:
        if len(self.keys) >= self.limit:
            self.keys.clear()  # forgetting costs a read and a refused insert, never a repeat
        self.keys.add(key)


def evaluate(
    rt: Runtime, touched: Touched, told: Told | None = None, cache: ContextCache | None = None
) -> list[str]:
    """Check the rules of `touched` customers and enqueue what crossed; the dedupe keys of
    the notifications enqueued by this call."""
    told = told if told is not None else Told()
    now_us = to_us(rt.clock.now())
    if cache is None:
        contexts = load_contexts(rt.db, touched, now_us)
    else:
        contexts = cache.contexts(rt.db, touched, now_us)
    work = [(ctx, rule) for ctx in contexts for rule in _pending(ctx, touched, told)]
    if not work:
        return []
    usage_work = [(ctx, rule, _reads(ctx, rule, now_us)) for ctx, rule in work if rule.meter]
    spend_work = _spend_work(work)
    accounts = [ctx.spend for ctx, _ in spend_work.values()]
    wanted = [r for _, _, reads in usage_work for r in reads]
    # One read transaction for the whole pass: each query is a trip that, on a busy
    # server, waits its turn for the interpreter.
    with rt.db.read() as conn:
        meters = meters_by_key(conn)
        reads = wanted + spend_reads(accounts, from_us(now_us))
        measures = measure_reads(conn, meters, reads, now_us, rt.heads)
    spends = spend_of(accounts, measures, meters, from_us(now_us))
    notes = _usage_notes(usage_work, measures, meters, now_us)
    notes += _spend_notes(spend_work, spends, now_us)
    fresh = [note for note in notes if note.dedupe_key not in told.keys]
    if not fresh:
        return []  # no write transaction: on SQLite it would queue behind ingest
    enqueued: list[str] = []
    with rt.db.write() as conn:
        queued_us = to_us(rt.clock.now())
        for note in fresh:
            if enqueue(conn, note, queued_us) is not None:
                enqueued.append(note.dedupe_key)
    for note in fresh:
        told.add(note.dedupe_key)
    return enqueued


def measure_reads(
    conn: Connection,
    meters: Mapping[str, Meter],
    wanted: Iterable[_Read],
    now_us: int | None = None,
    heads: HeadStore | None = None,
) -> dict[MeasureKey, Measure]:
    """`billing_usage.measure_usage`, with count and sum meters read in a few statements
    for every customer of the pass (storage/alert_usage.py; `now_us` and `heads` let it
    read fewer raw events)."""
    batch: dict[MeasureKey, Read] = {}
    rest: list[_Read] = []
    for subject, meter_key, span in wanted:
        meter = meters.get(meter_key)
        if meter and meter.aggregation in BATCHABLE and meter.archived_seq is None:
            read = (subject, meter, span.start_us, span.end_us)
            batch[measure_key(subject, meter_key, span)] = read
        else:
            rest.append((subject, meter_key, span))
    found = measure_usage(conn, meters, rest) if rest else {}
    reads = list(batch.values())
    partials = UsageBatch(conn).read(reads, now_us, heads)
    for wanted_key, read, partial in zip(batch, reads, partials, strict=True):
        value = partial.value(read[1].aggregation) or Decimal(0)
        found[wanted_key] = Measure(value, partial.count)
    return found


def _pending(ctx: AlertContext, touched: Touched, told: Told) -> list[AlertRule]:
    """The rules worth reading usage for: about a touched meter (or spend) and with a
    threshold not told yet this period."""
    meters = set(touched.get(ctx.customer.key, ()))
    kept: list[AlertRule] = []
    for rule in ctx.rules:
        if rule.meter is not None and rule.meter not in meters:
            continue
        keys = {
            dedupe_key(rule.id, ctx.customer.key, ctx.period.start_us, t.threshold)
            for t in targets(rule, base_of(ctx, rule))
        }
        if keys - told.keys:
            kept.append(rule)
    return kept


_Read = tuple[str, str, Span]


def _usage_notes(
    usage_work: list[tuple[AlertContext, AlertRule, list[_Read]]],
    measures: Mapping[MeasureKey, Measure],
    meters: Mapping[str, Meter],
    now_us: int,
) -> list[NewNotification]:
    notes: list[NewNotification] = []
    for ctx, rule, reads in usage_work:
        meter = meters.get(rule.meter or "")
        unit = meter.unit if meter else ""
        usage = measures[measure_key(*reads[0])].quantity
        found = targets(rule, base_of(ctx, rule))
        if rule.kind is not RuleKind.FORECAST:
            notes += [usage_note(ctx, rule, t, usage, unit) for t in crossed(found, usage)]
        elif len(reads) == 2:
            trailing = measures[measure_key(*reads[1])].quantity
            window = (reads[1][2].start_us, reads[1][2].end_us)
            projection = project_usage(usage, trailing, window, now_us, ctx.period.end_us)
            hits = [t for t in found if projection.crosses(t)]
            notes += [usage_forecast_note(ctx, rule, t, projection, unit) for t in hits]
    return notes


def _reads(ctx: AlertContext, rule: AlertRule, now_us: int) -> list[_Read]:
    """What a usage rule reads: the period's usage so far, and for a forecast the usage of
    the trailing window (none before the period has run a day)."""
    assert rule.meter is not None
    end = max(recorded_until(now_us, ctx.period.end_us), ctx.period.start_us)
    reads = [(ctx.customer.key, rule.meter, Span(ctx.period.start, from_us(end)))]
    window = trailing_window(ctx.period.start_us, now_us)
    if rule.kind is RuleKind.FORECAST and window is not None:
        reads.append((ctx.customer.key, rule.meter, _span(window)))
    return reads


_SpendWork = dict[str, tuple[AlertContext, list[AlertRule]]]


def _spend_work(work: list[tuple[AlertContext, AlertRule]]) -> _SpendWork:
    """The spend rules to check, by customer (the period is priced once per customer)."""
    by_customer: _SpendWork = {}
    for ctx, rule in work:
        if rule.meter is None:
            by_customer.setdefault(ctx.customer.key, (ctx, []))[1].append(rule)
    return by_customer


def _spend_notes(
    spend_work: _SpendWork, spends: Mapping[str, Spend], now_us: int
) -> list[NewNotification]:
    notes: list[NewNotification] = []
    for key, (ctx, rules) in spend_work.items():
        spend = spends.get(key)
        if spend is None:
            continue
        projection = project_spend(spend.spent, spend.projected, now_us, ctx.period.end_us)
        for rule in rules:
            found = targets(rule, base_of(ctx, rule))
            if rule.kind is RuleKind.FORECAST:
                hits = [t for t in found if projection.crosses(t)]
                notes += [spend_forecast_note(ctx, rule, t, projection) for t in hits]
            else:
                hits = crossed(found, spend.spent)
                notes += [spend_note(ctx, rule, t, spend.spent) for t in hits]
    return notes


def _span(window: tuple[int, int]) -> Span:
    return Span(from_us(window[0]), from_us(window[1]))
