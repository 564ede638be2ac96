"""record_events: dedupe, meter and store usage events in one transaction.

Work is split so that little happens while the write lock is held: `prepare` measures each
event against the meters (and sums its rollups) in the caller's thread, outside any
transaction; `record_prepared` then dedupes, inserts and commits. Several prepared
requests can share one transaction (group commit, see ingest_queue.py); each keeps its own
outcome, and an event repeated across them is stored once."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from decimal import Decimal

from fairmeter.domain.errors import FieldError
from fairmeter.domain.events import IngestResult, Rejection, UsageEvent
from fairmeter.domain.meters import EventNotMetered, Meter
from fairmeter.services.hooks import Origin, Recorded
from fairmeter.services.rollups import Group, RollupBatch
from fairmeter.storage.catalog import Meters
from fairmeter.storage.database import Database
from fairmeter.storage.dialect import EventRow
from fairmeter.storage.usage import Usage

Identity = tuple[str, str]
Contribution = tuple[Meter, "Decimal | str", Group]
MetersByType = dict[str, list[Meter]]


@dataclass(frozen=True)
class IngestRequest:
    """One caller's parsed events, as indexed in its own request."""

    items: Sequence[tuple[int, UsageEvent]]
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
    # What was known before the transaction (events already stored, parse and measure
    # rejections): an attempt starts from it, so a retried transaction counts nothing twice.
    settled: list[Rejection] = field(default_factory=list)
    settled_duplicates: int = 0
    unmeasured: list[Rejection] = field(default_factory=list)  # settled before measuring

    def restart(self) -> None:
        self.accepted, self.duplicates = 0, self.settled_duplicates
        self.rejected = list(self.settled)

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
class _Entry:
    outcome: _Outcome
    index: int
    event: UsageEvent
    row: EventRow  # built in the request thread, not under the write lock
    contributions: list[Contribution] = field(default_factory=list)


@dataclass
class Prepared:
    """A request measured against the meters it saw; its rollups assume every event is new.

    `candidates` are the events not found stored when preparing; `entries` those of them
    every meter could measure."""

    outcome: _Outcome
    candidates: list[_Entry]
    entries: list[_Entry]
    meters: MetersByType
    rollups: RollupBatch


def record_events(
    db: Database,
    items: Sequence[tuple[int, UsageEvent]],
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
    keys = [(event.source, event.id) for _, event in request.items]
    received_us = request.received_us
    with db.read() as conn:
        meters = Meters(conn).active_for_types({event.type for _, event in request.items})
        stored = Usage(conn).stored_digests(keys)
    outcome = _Outcome(request, rejected=list(request.rejected))
    candidates: list[_Entry] = []
    for index, event in request.items:
        known = stored.get((event.source, event.id))
        if known is None:
            candidates.append(_Entry(outcome, index, event, _row(event, received_us)))
        else:
            outcome.repeat(known, index, event)
    outcome.settled_duplicates = outcome.duplicates
    outcome.unmeasured = list(outcome.rejected)
    return _measured(outcome, candidates, meters)


def _measured(outcome: _Outcome, candidates: list[_Entry], meters: MetersByType) -> Prepared:
    outcome.rejected = list(outcome.unmeasured)
    for entry in candidates:
        entry.contributions = []
    kept = [entry for entry in candidates if _measure(entry, meters)]
    outcome.settled = list(outcome.rejected)
    return Prepared(outcome, candidates, kept, meters, _rollups(kept))


def _rollups(entries: Sequence[_Entry]) -> RollupBatch:
    rollups = RollupBatch()
    for entry in entries:
        event = entry.event
        for meter, value, group in entry.contributions:
            rollups.add(meter, event.subject, event.time_us, value, group)
    return rollups


def record_prepared(
    db: Database, prepared: Sequence[Prepared], recorded: list[Recorded] | None = None
) -> list[IngestResult]:
    """The dedupe check, the event rows and their rollups commit together, so an event is
    acknowledged only once it is durably stored, and a failure leaves no claim behind.

    When `recorded` is given, each written event's contributions are appended to it once
    the transaction has committed (for the listeners of `hooks`)."""
    for p in prepared:
        p.outcome.restart()
    if not any(p.candidates for p in prepared):
        return [p.outcome.result() for p in prepared]  # all settled: nothing to write
    with db.write() as conn:
        usage = Usage(conn)
        current = Meters(conn).active_for_types(
            {e.event.type for p in prepared for e in p.candidates}
        )
        prepared = [_remeasured(p, current) for p in prepared]
        # Identities were looked up in `prepare`; one stored since then by another writer
        # is caught by the insert itself (its conflict), so no second lookup is needed.
        fresh, repeated = _first_of_each_identity(prepared)
        written = usage.insert_events([e.row for e in fresh])
        lost = [] if written is None else [e for e in fresh if _identity(e) not in written]
        for entry in fresh:
            entry.outcome.accepted += 1
        _rollups_of_written(prepared, fresh, lost, repeated).write(usage)
        if lost:
            # Another writer stored these since `prepare` looked: same rules apply.
            stored = usage.stored_digests([_identity(e) for e in lost])
            for entry in lost:
                entry.outcome.accepted -= 1
                digest = stored[_identity(entry)]
                entry.outcome.repeat(digest, entry.index, entry.event)
    if recorded is not None:
        recorded.extend(_recorded(fresh, lost))
    return [p.outcome.result() for p in prepared]


def _recorded(fresh: Sequence[_Entry], lost: Sequence[_Entry]) -> list[Recorded]:
    lost_ids = {id(e) for e in lost}
    return [
        Recorded(e.event.subject, meter, e.event.time_us, value, group, e.outcome.request.origin)
        for e in fresh
        if id(e) not in lost_ids
        for meter, value, group in e.contributions
    ]


def _remeasured(prepared: Prepared, current: MetersByType) -> Prepared:
    """Meters changed since `prepare` (created, archived): measure again under the lock."""
    types = {e.event.type for e in prepared.candidates}
    if all(prepared.meters.get(t, []) == current.get(t, []) for t in types):
        return prepared
    measured = _measured(prepared.outcome, prepared.candidates, current)
    prepared.outcome.restart()
    return measured


def _identity(entry: _Entry) -> Identity:
    return entry.event.source, entry.event.id


def _rollups_of_written(
    prepared: Sequence[Prepared],
    fresh: Sequence[_Entry],
    lost: Sequence[_Entry],
    repeated: set[int],
) -> RollupBatch:
    """The prepared sums where every event of a request was written; otherwise recounted."""
    if not lost and not repeated:
        total = RollupBatch()  # the common case: every measured event is new
        for p in prepared:
            total.merge(p.rollups)
        return total
    written_per_request: dict[int, int] = {}
    for entry in fresh:
        key = id(entry.outcome)
        written_per_request[key] = written_per_request.get(key, 0) + 1
    for entry in lost:
        written_per_request[id(entry.outcome)] -= 1
    lost_ids = {id(e) for e in lost}
    total = RollupBatch()
    for p in prepared:
        if written_per_request.get(id(p.outcome), 0) == len(p.entries):
            total.merge(p.rollups)
        else:
            mine = [e for e in fresh if e.outcome is p.outcome and id(e) not in lost_ids]
            total.merge(_rollups(mine))
    return total


def _first_of_each_identity(prepared: Sequence[Prepared]) -> tuple[list[_Entry], set[int]]:
    """The first entry of each identity across the group, and the requests (by id of their
    outcome) that repeated one."""
    first: dict[Identity, UsageEvent] = {}
    unique: list[_Entry] = []
    repeated: set[int] = set()
    for p in prepared:
        for entry in p.entries:
            event = entry.event
            identity = (event.source, event.id)
            seen = first.get(identity)
            if seen is None:
                first[identity] = event
                unique.append(entry)
            else:
                entry.outcome.repeat(seen.digest, entry.index, event)
                repeated.add(id(entry.outcome))
    return unique, repeated


def _measure(entry: _Entry, meters: MetersByType) -> bool:
    """Compute the entry's contribution to each meter; reject it if a meter cannot."""
    data = entry.event.data
    errors: list[FieldError] = []
    for meter in meters.get(entry.event.type, ()):
        try:
            entry.contributions.append((meter, meter.measure(data), meter.group_of(data)))
        except EventNotMetered as exc:
            assert meter.value_property is not None
            path = "/".join(meter.value_property.segments)
            pointer = f"{entry.outcome.pointer(entry.index)}/data/{path}"
            errors.append(FieldError(pointer, f"{exc} (meter {meter.key!r})", "invalid_value"))
    if errors:
        entry.outcome.rejected.append(Rejection(entry.index, entry.event.id, tuple(errors)))
        return False
    return True


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
