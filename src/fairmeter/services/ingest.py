"""record_events: dedupe, meter and store usage events in one transaction.

Several requests can share one transaction (group commit, see ingest_queue.py); each keeps
its own outcome, and an event repeated across them is stored once."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from decimal import Decimal

from fairmeter.domain.errors import FieldError
from fairmeter.domain.events import IngestResult, Rejection, UsageEvent
from fairmeter.domain.meters import EventNotMetered, Meter
from fairmeter.services.rollups import Group, RollupBatch
from fairmeter.storage.catalog import Meters
from fairmeter.storage.database import Database
from fairmeter.storage.dialect import EventRow
from fairmeter.storage.usage import Usage

Identity = tuple[str, str]
Contribution = tuple[Meter, "Decimal | str", Group]


@dataclass(frozen=True)
class IngestRequest:
    """One caller's parsed events, as indexed in its own request."""

    items: Sequence[tuple[int, UsageEvent]]
    rejected: Sequence[Rejection]
    received_us: int
    batch: bool = True


@dataclass
class _Outcome:
    request: IngestRequest
    accepted: int = 0
    duplicates: int = 0
    rejected: list[Rejection] = field(default_factory=list)

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
    contributions: list[Contribution] = field(default_factory=list)


def record_events(
    db: Database,
    items: Sequence[tuple[int, UsageEvent]],
    rejected: Sequence[Rejection],
    received_us: int,
    batch: bool = True,
) -> IngestResult:
    """Store each new event once; report duplicates and conflicts item by item."""
    return record_requests(db, [IngestRequest(items, rejected, received_us, batch)])[0]


def record_requests(db: Database, requests: Sequence[IngestRequest]) -> list[IngestResult]:
    """The dedupe check, the event rows and their rollups commit together, so an event is
    acknowledged only once it is durably stored, and a failure leaves no claim behind."""
    outcomes = [_Outcome(r, rejected=list(r.rejected)) for r in requests]
    unique = _first_of_each_identity(outcomes)
    with db.write() as conn:
        usage = Usage(conn)
        meters = Meters(conn).active_for_types({e.event.type for e in unique})
        stored = usage.stored_digests([(e.event.source, e.event.id) for e in unique])
        fresh = [e for e in unique if _is_new(e, stored) and _measure(e, meters)]
        written = usage.insert_events([_row(e) for e in fresh])
        rollups = RollupBatch()
        lost: list[_Entry] = []
        for entry in fresh:
            event = entry.event
            if (event.source, event.id) not in written:
                lost.append(entry)
                continue
            entry.outcome.accepted += 1
            for meter, value, group in entry.contributions:
                rollups.add(meter, event.subject, event.time_us, value, group)
        rollups.write(usage)
        if lost:
            # A concurrent transaction stored these first (PostgreSQL only): same rules apply.
            stored = usage.stored_digests([(e.event.source, e.event.id) for e in lost])
            for entry in lost:
                digest = stored[(entry.event.source, entry.event.id)]
                entry.outcome.repeat(digest, entry.index, entry.event)
    return [o.result() for o in outcomes]


def _first_of_each_identity(outcomes: Sequence[_Outcome]) -> list[_Entry]:
    first: dict[Identity, UsageEvent] = {}
    unique: list[_Entry] = []
    for outcome in outcomes:
        for index, event in outcome.request.items:
            identity = (event.source, event.id)
            seen = first.get(identity)
            if seen is None:
                first[identity] = event
                unique.append(_Entry(outcome, index, event))
            else:
                outcome.repeat(seen.digest, index, event)
    return unique


def _is_new(entry: _Entry, stored: dict[Identity, bytes]) -> bool:
    known = stored.get((entry.event.source, entry.event.id))
    if known is None:
        return True
    entry.outcome.repeat(known, entry.index, entry.event)
    return False


def _measure(entry: _Entry, meters: dict[str, list[Meter]]) -> bool:
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


def _row(entry: _Entry) -> EventRow:
    event = entry.event
    return (
        event.source,
        event.id,
        event.type,
        event.subject,
        event.time_us,
        entry.outcome.request.received_us,
        event.data_json.decode(),
        event.digest,
    )
