"""record_events: dedupe, meter and store usage events in one transaction.

Work is split so that little happens while the write lock is held: `prepare` measures each
event against the meters (and sums its rollups) in the caller's thread, outside any
transaction; `record_prepared` then dedupes, inserts and commits. Several prepared
requests can share one transaction (group commit, see ingest_queue.py); each keeps its own
outcome, and an event repeated across them is stored once.

Per event, the hot path builds what it has to and nothing else: no object per event beyond
the row and one `Recorded` per meter, which serves the rollups and the listeners alike."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from sqlalchemy.engine import Connection

from fairmeter.domain.errors import FieldError
from fairmeter.domain.events import IngestResult, Rejection, UsageEvent
from fairmeter.domain.meters import EventNotMetered, Meter
from fairmeter.services.hooks import Origin, Recorded
from fairmeter.services.rollups import RollupBatch
from fairmeter.storage.catalog import Meters
from fairmeter.storage.database import Database
from fairmeter.storage.dialect import EventRow
from fairmeter.storage.usage import Usage

Identity = tuple[str, str]
MetersByType = dict[str, list[Meter]]
Item = tuple[int, UsageEvent]

# Recorded(...) goes through the NamedTuple's generated __new__; building the tuple
# directly costs half as much, once per event and meter.
_new_tuple = tuple.__new__


@dataclass(frozen=True)
class IngestRequest:
    """One caller's parsed events, as indexed in its own request."""

    items: Sequence[Item]
    rejected: Sequence[Rejection]
    received_us: int
    batch: bool = True
    origin: Origin = Origin.EVENTS


@dataclass
class _Outcome:
    request: IngestRequest
    accepted: int = 0
    duplicates: int = 0
    rejected: list[Rejection] = field(default_factory=list)
    # Settled before measuring (found stored, parse rejections): measuring again starts here.
    unmeasured: list[Rejection] = field(default_factory=list)
    unmeasured_duplicates: int = 0

    def restart(self, measured: Prepared) -> None:
        """An attempt starts from what was known before it under the meters `measured` was
        measured with (stored events, repeats, parse and measure rejections), so a retried
        transaction counts nothing twice, whichever meters an earlier attempt saw."""
        self.accepted, self.duplicates = 0, measured.settled_duplicates
        self.rejected = list(measured.settled)

    def pointer(self, index: int) -> str:
        return f"/{index}" if self.request.batch else ""

    def repeat(self, digest: bytes, index: int, event: UsageEvent) -> None:
        if digest == event.digest:
            self.duplicates += 1
            return
        detail = (
            f"an event with source {event.source!r} and id {event.id!r} was already recorded "
            "with different content; change the id to record a new event"
        )
        error = FieldError(self.pointer(index) or "/", detail, "event_conflict")
        self.rejected.append(Rejection(index, event.id, (error,)))

    def result(self) -> IngestResult:
        self.rejected.sort(key=lambda r: r.index)
        return IngestResult(self.accepted, self.duplicates, tuple(self.rejected))


@dataclass
class Prepared:
    """A request measured against the meters it saw; its rollups assume every event is new.

    `candidates` are the events not found stored when preparing. Of them, the ones to write
    (measured by every meter, first of their identity in the request) are held column-wise:
    `indices`, `events`, their `rows` and their `contributions` (one list per event).
    `settled` and `settled_duplicates` are the outcome known before writing, under these
    meters."""

    outcome: _Outcome
    candidates: list[Item]
    meters: MetersByType
    indices: list[int]
    events: list[UsageEvent]
    rows: list[EventRow]
    contributions: list[list[Recorded]]
    rollups: RollupBatch
    settled: list[Rejection]
    settled_duplicates: int

    @property
    def size(self) -> int:
        return len(self.events)

    def keeping(self, positions: Sequence[int]) -> Prepared:
        """The same request reduced to some of its events (rollups recounted)."""
        contributions = [self.contributions[i] for i in positions]
        return Prepared(
            self.outcome,
            self.candidates,
            self.meters,
            [self.indices[i] for i in positions],
            [self.events[i] for i in positions],
            [self.rows[i] for i in positions],
            contributions,
            _rollups(contributions),
            self.settled,
            self.settled_duplicates,
        )


def record_events(
    db: Database,
    items: Sequence[Item],
    rejected: Sequence[Rejection],
    received_us: int,
    batch: bool = True,
) -> IngestResult:
    """Store each new event once; report duplicates and conflicts item by item."""
    request = IngestRequest(items, rejected, received_us, batch)
    return record_prepared(db, [prepare(db, request)])[0]


def prepare(db: Database, request: IngestRequest) -> Prepared:
    """Outside the write lock: events already stored are settled as duplicates (stored
    events are never removed), the rest measured. A replayed batch thus costs one read."""
    items = request.items
    with db.read() as conn:
        meters = active_meters(conn)
        usage = Usage(conn)
        stored, same = usage.count_stored([(e.source, e.id, e.digest) for _, e in items])
        # Neither new nor all sent again (a retried part of a batch, a conflict): which ones?
        known = usage.stored_digests(_keys(items)) if stored and same < len(items) else {}
    outcome = _Outcome(request, rejected=list(request.rejected))
    if stored == 0:
        candidates = list(items)
    elif not known:
        candidates = []  # a replay: every event is stored with the same content
        outcome.duplicates = len(items)
    else:
        candidates = []
        for item, key in zip(items, _keys(items), strict=True):
            digest = known.get(key)
            if digest is None:
                candidates.append(item)
            else:
                outcome.repeat(digest, *item)
    outcome.unmeasured_duplicates = outcome.duplicates
    outcome.unmeasured = list(outcome.rejected)
    return _measured(outcome, candidates, meters)


def _keys(items: Sequence[Item]) -> list[Identity]:
    return [(event.source, event.id) for _, event in items]


def _measured(outcome: _Outcome, candidates: list[Item], meters: MetersByType) -> Prepared:
    """Measure the candidates; the first of each identity in the request is the one kept."""
    outcome.rejected = list(outcome.unmeasured)
    outcome.duplicates = outcome.unmeasured_duplicates
    origin = outcome.request.origin
    indices: list[int] = []
    events: list[UsageEvent] = []
    contributions: list[list[Recorded]] = []
    first: dict[Identity, UsageEvent] = {}
    # The events of a count meter's admitted calls share one data object, subject, time
    # and type (entitlement_recording.usage_run): measured once, not once per call.
    same: UsageEvent | None = None
    mine: list[Recorded] = []
    for index, event in candidates:
        if (
            same is None
            or event.data is not same.data
            or event.subject != same.subject
            or event.time_us != same.time_us
            or event.type != same.type
        ):
            metered = meters.get(event.type)
            measured = _measure(outcome, index, event, metered, origin) if metered else []
            if measured is None:
                same = None
                continue
            same, mine = event, measured
        known = len(first)
        seen = first.setdefault((event.source, event.id), event)
        if len(first) == known:
            outcome.repeat(seen.digest, index, event)
            continue
        indices.append(index)
        events.append(event)
        contributions.append(mine)
    received_us = outcome.request.received_us
    rows = [_row(event, received_us) for event in events]
    rollups = _rollups(contributions)
    settled, duplicates = list(outcome.rejected), outcome.duplicates
    return Prepared(
        outcome,
        candidates,
        meters,
        indices,
        events,
        rows,
        contributions,
        rollups,
        settled,
        duplicates,
    )


def _rollups(contributions: Sequence[list[Recorded]]) -> RollupBatch:
    rollups = RollupBatch()
    for mine in contributions:
        rollups.add_recorded(mine)
    return rollups


def record_prepared(
    db: Database, prepared: Sequence[Prepared], recorded: list[Recorded] | None = None
) -> list[IngestResult]:
    """The dedupe check, the event rows and their rollups commit together, so an event is
    acknowledged only once it is durably stored, and a failure leaves no claim behind.

    When `recorded` is given, each written event's contributions are appended to it once
    the transaction has committed (for the listeners of `hooks`)."""
    for p in prepared:
        p.outcome.restart(p)
    if not any(p.candidates for p in prepared):
        return [p.outcome.result() for p in prepared]  # all settled: nothing to write
    with db.write() as conn:
        usage = Usage(conn)
        current = active_meters(conn)
        batches = [_remeasured(p, current) for p in prepared]
        if len(batches) > 1:
            batches = _first_of_each_identity(batches)
        # Identities were looked up in `prepare`; one stored since then by another writer
        # is caught by the insert itself (its conflict), so no second lookup is needed.
        rows = batches[0].rows if len(batches) == 1 else [r for b in batches for r in b.rows]
        written = usage.insert_events(rows)
        if written is not None:
            batches = _settle_lost(usage, batches, written)
        total = batches[0].rollups if len(batches) == 1 else RollupBatch()
        for b in batches:
            b.outcome.accepted += len(b.events)
            if total is not b.rollups:
                total.merge(b.rollups)
        total.write(usage)
    if recorded is not None:
        recorded.extend([r for b in batches for mine in b.contributions for r in mine])
    return [p.outcome.result() for p in prepared]


def record_run(
    db: Database,
    first: UsageEvent,
    count: int,
    received_us: int,
    origin: Origin,
    recorded: list[Recorded] | None = None,
) -> IngestResult:
    """`count` events like `first` but for their ids (`id`, `id:2` .. `id:<count>`), in
    one transaction: measured once, stored as one row standing for them all (`copies`,
    ADR 13), their rollups added `count` times over. For a writer's batch of fresh ids:
    an identity found stored means the whole run is a duplicate. `recorded` (for the
    listeners) gets the contributions once per event written, the same objects repeated."""
    request = IngestRequest([(0, first)], [], received_us, batch=False, origin=origin)
    with db.write() as conn:
        usage = Usage(conn)
        measured = _measured(_Outcome(request), [(0, first)], active_meters(conn))
        outcome = measured.outcome
        if not measured.events:  # refused by a meter: none of the run is written
            return outcome.result()
        written = usage.insert_run(measured.rows[0], count)
        if written:  # (a run sent again adds nothing: no rollup rows of zero)
            rollups = RollupBatch()
            rollups.add_recorded(measured.contributions[0], times=written)
            rollups.write(usage)
    outcome.accepted, outcome.duplicates = written, count - written
    if recorded is not None:
        recorded.extend(measured.contributions[0] * written)
    return outcome.result()


def _settle_lost(usage: Usage, batches: list[Prepared], written: set[Identity]) -> list[Prepared]:
    """Events another writer stored since `prepare` looked: same rules as found stored."""
    lost = [e for b in batches for e in b.events if (e.source, e.id) not in written]
    stored = usage.stored_digests([(e.source, e.id) for e in lost])
    kept: list[Prepared] = []
    for b in batches:
        keep: list[int] = []
        for position, event in enumerate(b.events):
            identity = (event.source, event.id)
            if identity in written:
                keep.append(position)
            else:
                b.outcome.repeat(stored[identity], b.indices[position], event)
        kept.append(b if len(keep) == len(b.events) else b.keeping(keep))
    return kept


def _remeasured(prepared: Prepared, current: MetersByType) -> Prepared:
    """Meters changed since `prepare` (created, archived): measure again under the lock."""
    types = {event.type for _, event in prepared.candidates}
    if all(prepared.meters.get(t, []) == current.get(t, []) for t in types):
        return prepared
    measured = _measured(prepared.outcome, prepared.candidates, current)
    prepared.outcome.restart(measured)
    return measured


def _first_of_each_identity(batches: Sequence[Prepared]) -> list[Prepared]:
    """Across the group, the first event of each identity is written; a later request
    that repeats one is told so (each request has no repeat of its own left)."""
    first: dict[Identity, UsageEvent] = {}
    kept: list[Prepared] = []
    for b in batches:
        keep: list[int] = []
        for position, event in enumerate(b.events):
            known = len(first)
            seen = first.setdefault((event.source, event.id), event)
            if len(first) == known:
                b.outcome.repeat(seen.digest, b.indices[position], event)
            else:
                keep.append(position)
        kept.append(b if len(keep) == len(b.events) else b.keeping(keep))
    return kept


def _measure(
    outcome: _Outcome, index: int, event: UsageEvent, meters: list[Meter], origin: Origin
) -> list[Recorded] | None:
    """The event's contribution to each meter, or None (and a rejection) if a meter cannot
    measure it."""
    data = event.data
    subject, time_us = event.subject, event.time_us
    found: list[Recorded] = []
    errors: list[FieldError] = []
    for meter in meters:
        try:
            value = meter.measure(data)
            group = meter.group_of(data)
        except EventNotMetered as exc:
            assert meter.value_property is not None
            path = "/".join(meter.value_property.segments)
            pointer = f"{outcome.pointer(index)}/data/{path}"
            errors.append(FieldError(pointer, f"{exc} (meter {meter.key!r})", "invalid_value"))
            continue
        found.append(_new_tuple(Recorded, (subject, meter, time_us, value, group, origin)))
    if errors:
        outcome.rejected.append(Rejection(index, event.id, tuple(errors)))
        return None
    return found


_METERS_SEEN: dict[tuple[tuple[object, ...], ...], MetersByType] = {}


def active_meters(conn: Connection) -> MetersByType:
    """The active meters by event type, read in the caller's transaction.

    Their rows are read on every call (one cheap query); the meters built from them are
    reused while the rows are the same, so a meter created or archived is seen at once."""
    rows = Usage(conn).active_meter_rows()
    meters = _METERS_SEEN.get(rows)
    if meters is None:
        meters = Meters(conn).active_for_types({str(row[3]) for row in rows})
        if len(_METERS_SEEN) >= 64:
            _METERS_SEEN.clear()
        _METERS_SEEN[rows] = meters
    return meters


def _row(event: UsageEvent, received_us: int) -> EventRow:
    return (
        event.source,
        event.id,
        event.type,
        event.subject,
        event.time_us,
        received_us,
        event.data_json.decode(),
        event.digest,
    )
