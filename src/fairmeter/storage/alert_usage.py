"""Many customers' usage at once, in two round trips: what an alert pass asks, and what a
limits counter reads when it is loaded or re-read (one read, the period so far).

An alert pass needs a few numbers (one per customer, meter and span) for the customers that
just recorded usage. Asked one by one they cost a query each (rollups) plus one per
unaligned edge (raw events); on a busy server every query waits its turn for the
interpreter, so a pass of forty queries takes far longer than its work. Here the rollup
sums of every wanted span are one UNION ALL statement, and the raw events at unaligned
edges one statement per distinct edge and event type, for all the subjects at once.
Exactly what `billing_usage.measure_usage` answers, for count and sum meters that are not
archived (the callers send the others there)."""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterator, Sequence
from contextlib import suppress
from decimal import Decimal
from typing import NamedTuple, Protocol

from sqlalchemy import select

from fairmeter.domain.aggregates import Partial
from fairmeter.domain.meters import Aggregation, EventNotMetered, Meter
from fairmeter.domain.numbers import EXACT
from fairmeter.domain.windows import BUCKET_US, bucket_of
from fairmeter.storage.tables import events
from fairmeter.storage.usage_totals import UsageTotals

BATCHABLE = (Aggregation.COUNT, Aggregation.SUM)
Read = tuple[str, Meter, int, int]  # subject, meter, start_us, end_us
_SUM = {"postgresql": "SUM(total)", "sqlite": "fm_dec_sum(total)"}


class HeadStore(Protocol):
    """Where `UsageBatch` may keep what the raw events before a span's start add up to,
    in the bucket the span starts in (see `services.usage_heads`): they are in the past,
    so they change only when a late event is recorded, which the store hears about."""

    def generation(self) -> int: ...

    def get(self, key: HeadKey) -> Partial | None: ...

    def put(self, key: HeadKey, partial: Partial, generation: int) -> None: ...


# (event type, subject, meter id, bucket start, span start): the events of that subject
# and type from the bucket's start to the span's start, as that meter measures them.
HeadKey = tuple[str, str, int, int, int]


class UsageBatch(UsageTotals):
    def read(
        self, reads: Sequence[Read], now_us: int | None = None, heads: HeadStore | None = None
    ) -> list[Partial]:
        """What each read adds up to, in order (count and sum meters, not archived).

        A span that starts inside a bucket (a period that began at 14:37) needs raw events
        of that bucket. With `heads`, it is the whole bucket's rollup less the events
        before the span's start, which `heads` keeps (they are past: a period's usage
        reads no raw event at its start however busy its first bucket). Without, the
        cheaper side by time: the events from the start to the bucket's end, or the
        rollup less those before the start. A span that ends inside a bucket later than
        `now_us` is the bucket's rollup less the events after its end (only future-dated
        ones can be there), not the events of the bucket so far."""
        plans = [
            _plan(start_us, end_us, now_us, heads is not None) for *_, start_us, end_us in reads
        ]
        partials = [Partial() for _ in reads]
        self._rollups(reads, plans, partials)
        self._edges(reads, plans, partials, heads)
        return partials

    def _rollups(
        self, reads: Sequence[Read], plans: Sequence[_Plan], partials: list[Partial]
    ) -> None:
        parts: list[str] = []
        params: list[object] = []
        m = self.mark
        for index, ((subject, meter, _, _), plan) in enumerate(zip(reads, plans, strict=True)):
            if plan.rollup_start >= plan.rollup_end:
                continue
            parts.append(
                f"SELECT {index}, SUM(count), {_SUM[self.dialect]} FROM usage_rollups "
                f"WHERE meter_id = {m} AND subject = {m} AND bucket_us >= {m} AND bucket_us < {m}"
            )
            params += [meter.id, subject, plan.rollup_start, plan.rollup_end]
        for start in range(0, len(parts), 200):  # bounded statements, whatever the pass
            chunk = parts[start : start + 200]
            chunk_params = params[start * 4 : (start + len(chunk)) * 4]
            for index, count, total in self._fetch(" UNION ALL ".join(chunk), chunk_params):
                partial = partials[int(index)]
                partial.count += int(count or 0)
                if total is not None:
                    partial.total = Decimal(total)

    def _edges(
        self,
        reads: Sequence[Read],
        plans: Sequence[_Plan],
        partials: list[Partial],
        heads: HeadStore | None,
    ) -> None:
        generation = 0 if heads is None else heads.generation()
        # (event type, start, end) -> (read index, piece index) that want those raw events
        wanted: dict[tuple[str, int, int], list[tuple[int, int]]] = defaultdict(list)
        found: list[list[Partial]] = []
        for index, ((subject, meter, _, _), plan) in enumerate(zip(reads, plans, strict=True)):
            found.append([])
            for number, piece in enumerate(plan.pieces):
                cached = None
                if piece.kept and heads is not None:
                    cached = heads.get(_head_key(subject, meter, piece))
                found[index].append(cached or Partial())
                if cached is None:
                    wanted[(meter.event_type, piece.start_us, piece.end_us)].append((index, number))
        for (event_type, start_us, end_us), where in wanted.items():
            subjects = sorted({reads[i][0] for i, _ in where})
            raw = self._raw(event_type, start_us, end_us, subjects)
            for subject, time_us, data, copies in raw:
                for i, number in where:
                    if reads[i][0] == subject:
                        _add(found[i][number], reads[i][1], data, time_us, copies)
        for index, ((subject, meter, _, _), plan) in enumerate(zip(reads, plans, strict=True)):
            for piece, part in zip(plan.pieces, found[index], strict=True):
                if piece.kept and heads is not None:
                    heads.put(_head_key(subject, meter, piece), part, generation)
                _apply(partials[index], part, piece.subtract)

    def _raw(
        self, event_type: str, start_us: int, end_us: int, subjects: list[str]
    ) -> Iterator[tuple[str, int, object, int]]:
        e = events.c
        query = select(e.subject, e.time_us, e.data, e.copies).where(
            e.type == event_type,
            e.time_us >= start_us,
            e.time_us < end_us,
            e.subject.in_(subjects),
        )
        for subject, time_us, data_json, copies in self.conn.execute(query):
            yield subject, time_us, json.loads(data_json, parse_float=Decimal), copies


class _Piece(NamedTuple):
    """Raw events a read takes: [start_us, end_us), added or subtracted; `kept` ones are
    before the read's start, in its first bucket (what a `HeadStore` keeps)."""

    start_us: int
    end_us: int
    subtract: bool = False
    kept: bool = False


class _Plan(NamedTuple):
    rollup_start: int
    rollup_end: int
    pieces: tuple[_Piece, ...]


def _plan(start_us: int, end_us: int, now_us: int | None, keeps_heads: bool) -> _Plan:
    """The rollup range and raw pieces that add up to [start_us, end_us)."""
    inner_start, inner_end = _inner(start_us, end_us)
    if inner_start >= inner_end:  # within one bucket (or empty): its raw events
        edge = (_Piece(start_us, end_us),) if start_us < end_us else ()
        return _Plan(inner_start, inner_start, edge)
    pieces: list[_Piece] = []
    rollup_start, rollup_end = inner_start, inner_end
    if start_us < inner_start:
        bucket_start = inner_start - BUCKET_US
        stored_until = inner_start if now_us is None else min(inner_start, now_us)
        if keeps_heads or start_us - bucket_start < stored_until - start_us:
            rollup_start = bucket_start  # the bucket's rollup, less what precedes the start
            pieces.append(_Piece(bucket_start, start_us, subtract=True, kept=keeps_heads))
        else:
            pieces.append(_Piece(start_us, inner_start))
    if inner_end < end_us:
        if now_us is not None and now_us < end_us:
            rollup_end = inner_end + BUCKET_US  # the bucket's rollup, less what follows the end
            pieces.append(_Piece(end_us, rollup_end, subtract=True))
        else:
            pieces.append(_Piece(inner_end, end_us))
    return _Plan(rollup_start, rollup_end, tuple(pieces))


def _head_key(subject: str, meter: Meter, piece: _Piece) -> HeadKey:
    return (meter.event_type, subject, meter.id, piece.start_us, piece.end_us)


def _apply(partial: Partial, part: Partial, subtract: bool) -> None:
    """Count and sum only: a count and a total can be taken back."""
    if subtract:
        partial.count -= part.count
        partial.total = EXACT.subtract(partial.total, part.total)
    else:
        partial.count += part.count
        partial.total = EXACT.add(partial.total, part.total)


def _inner(start_us: int, end_us: int) -> tuple[int, int]:
    """The whole buckets of [start, end): rollups answer them; raw events the rest."""
    inner_start = -(-start_us // BUCKET_US) * BUCKET_US
    return inner_start, max(bucket_of(end_us), inner_start)


def _add(partial: Partial, meter: Meter, data: object, time_us: int, copies: int) -> None:
    with suppress(EventNotMetered):  # an event without the meter's value counts nothing
        partial.add(meter.measure(data), time_us, copies)  # type: ignore[arg-type]
