"""record_events: dedupe, meter and store a batch of usage events in one transaction."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from fairmeter.domain.errors import FieldError
from fairmeter.domain.events import IngestResult, Rejection, UsageEvent
from fairmeter.domain.meters import EventNotMetered, Meter
from fairmeter.services.rollups import Group, RollupBatch
from fairmeter.storage.catalog import Meters
from fairmeter.storage.database import Database
from fairmeter.storage.dialect import EventRow
from fairmeter.storage.usage import Usage

Identity = tuple[str, str]
Contribution = tuple[Meter, object, Group]


@dataclass
class _Outcome:
    duplicates: int = 0
    rejected: list[Rejection] = field(default_factory=list)

    def conflict(self, index: int, event: UsageEvent, prefix: str) -> None:
        detail = (
            f"an event with source {event.source!r} and id {event.id!r} was already recorded "
            "with different content; change the id to record a new event"
        )
        self.rejected.append(
            Rejection(index, event.id, (FieldError(prefix or "/", detail, "event_conflict"),))
        )


def record_events(
    db: Database,
    items: Sequence[tuple[int, UsageEvent]],
    rejected: Sequence[Rejection],
    received_us: int,
    batch: bool = True,
) -> IngestResult:
    """Store each new event once; report duplicates and conflicts item by item.

    The dedupe check, the event rows and their rollups commit together, so an event is
    acknowledged only once it is durably stored, and a failure leaves no claim behind."""
    outcome = _Outcome(rejected=list(rejected))
    unique = _drop_repeats_within_batch(items, outcome, batch)
    accepted = 0
    with db.write() as conn:
        usage = Usage(conn)
        meters = Meters(conn).active_for_types({event.type for _, event in unique})
        stored = usage.stored_digests([(e.source, e.id) for _, e in unique])
        fresh: list[tuple[int, UsageEvent, list[Contribution]]] = []
        for index, event in unique:
            prefix = f"/{index}" if batch else ""
            known = stored.get((event.source, event.id))
            if known is not None:
                _count_repeat(known, index, event, prefix, outcome)
                continue
            contributions = _measure(index, event, meters.get(event.type, ()), prefix, outcome)
            if contributions is not None:
                fresh.append((index, event, contributions))
        written = usage.insert_events([_row(e, received_us) for _, e, _ in fresh])
        rollups = RollupBatch()
        lost_races: list[tuple[int, UsageEvent]] = []
        for index, event, contributions in fresh:
            if (event.source, event.id) not in written:
                lost_races.append((index, event))
                continue
            accepted += 1
            for meter, value, group in contributions:
                rollups.add(meter, event.subject, event.time_us, value, group)  # type: ignore[arg-type]
        rollups.write(usage)
        if lost_races:
            # A concurrent transaction stored these first (PostgreSQL only): same rules apply.
            stored = usage.stored_digests([(e.source, e.id) for _, e in lost_races])
            for index, event in lost_races:
                prefix = f"/{index}" if batch else ""
                _count_repeat(stored[(event.source, event.id)], index, event, prefix, outcome)
    outcome.rejected.sort(key=lambda r: r.index)
    return IngestResult(accepted, outcome.duplicates, tuple(outcome.rejected))


def _drop_repeats_within_batch(
    items: Sequence[tuple[int, UsageEvent]], outcome: _Outcome, batch: bool
) -> list[tuple[int, UsageEvent]]:
    first: dict[Identity, UsageEvent] = {}
    unique: list[tuple[int, UsageEvent]] = []
    for index, event in items:
        identity = (event.source, event.id)
        seen = first.get(identity)
        if seen is None:
            first[identity] = event
            unique.append((index, event))
        else:
            _count_repeat(seen.digest, index, event, f"/{index}" if batch else "", outcome)
    return unique


def _count_repeat(
    digest: bytes, index: int, event: UsageEvent, prefix: str, outcome: _Outcome
) -> None:
    if digest == event.digest:
        outcome.duplicates += 1
    else:
        outcome.conflict(index, event, prefix)


def _measure(
    index: int, event: UsageEvent, meters: Sequence[Meter], prefix: str, outcome: _Outcome
) -> list[Contribution] | None:
    contributions: list[Contribution] = []
    errors: list[FieldError] = []
    for meter in meters:
        try:
            contributions.append((meter, meter.measure(event.data), meter.group_of(event.data)))
        except EventNotMetered as exc:
            assert meter.value_property is not None
            pointer = prefix + "/data/" + "/".join(meter.value_property.segments)
            errors.append(FieldError(pointer, f"{exc} (meter {meter.key!r})", "invalid_value"))
    if errors:
        outcome.rejected.append(Rejection(index, event.id, tuple(errors)))
        return None
    return contributions


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
