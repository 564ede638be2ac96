"""Writing admitted usage: at once for consume(), in batches for admit().

Every admission a counter made ends with exactly one `settled` (its usage is in the
database) or `release` (it is not: the write failed, or the idempotency key had been
used). A batch whose write fails is retried with the next flush, a few times; then its
usage is released and counted as unrecorded (logged)."""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping
from dataclasses import replace
from decimal import Decimal
from typing import TYPE_CHECKING

from fairmeter.domain.entitlements import Decision, decide
from fairmeter.domain.errors import FieldError, IdempotencyConflict, InvalidInput
from fairmeter.domain.events import IngestResult, UsageEvent
from fairmeter.domain.meters import EventNotMetered
from fairmeter.domain.numbers import EXACT
from fairmeter.domain.windows import to_us
from fairmeter.services.entitlement_recording import (
    Batch,
    PendingUsage,
    new_event_id,
    usage_events,
    usage_run,
)
from fairmeter.services.entitlement_stats import DecisionStats
from fairmeter.services.entitlement_terms import ONE, Armed
from fairmeter.services.hooks import Origin
from fairmeter.services.ingest import IngestRequest
from fairmeter.storage.counters import Counters
from fairmeter.storage.usage import Usage

if TYPE_CHECKING:
    from fairmeter.services.runtime import Runtime

log = logging.getLogger("fairmeter.limits")
MAX_ATTEMPTS = 5
STATS_EVERY = 5  # flushes between two writes of the denial counts


class Writer:
    def __init__(
        self,
        rt: Runtime,
        counters: Counters,
        pending: PendingUsage,
        stats: DecisionStats,
        interval_s: float,
    ) -> None:
        self.rt, self.counters, self.pending, self.stats = rt, counters, pending, stats
        self.interval_s = interval_s
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._start_lock = threading.Lock()
        self._flush_lock = threading.Lock()

    # -- consume(): at once ---------------------------------------------------------------

    def write_now(
        self,
        armed: Armed,
        decision: Decision,
        quantity: Decimal,
        counted: bool,
        now_us: int,
        idempotency_key: str | None,
        data: Mapping[str, object] | None,
    ) -> Decision:
        customer = armed.terms.customer
        events = usage_events(
            *usage_run(
                armed.meter, customer, quantity, idempotency_key or new_event_id(), data, now_us
            )
        )
        try:
            if len(events) > 1 and idempotency_key:
                self._refuse_reused_key(events[0][1])
            result = self._record(events, now_us)
        except BaseException:
            self._end(armed, quantity, counted, Decimal(0))
            raise
        unit = quantity if armed.meter.value_property is not None else ONE
        written = EXACT.multiply(unit, Decimal(result.accepted))
        self._end(armed, quantity, counted, written)
        self._tell_siblings(armed, events[0][1], result.accepted)
        if result.rejected:
            raise _refused(result)
        self.start()  # denial counts are written by the background writer
        if written == quantity:
            return decision
        if decision.usage is None:
            return replace(decision, duplicate=True)
        usage = EXACT.subtract(decision.usage, EXACT.subtract(quantity, written))
        again = decide(armed.terms, allowed=True, usage=usage, upgraded_to=decision.upgraded_to)
        return replace(again, duplicate=True)

    def _refuse_reused_key(self, first: UsageEvent) -> None:
        """Several events: a key reused with another quantity must write none of them (the
        ids after the first would otherwise be new and recorded)."""
        with self.rt.db.read() as conn:
            stored = Usage(conn).stored_digests([(first.source, first.id)])
        digest = stored.get((first.source, first.id))
        if digest is not None and digest != first.digest:
            raise _conflict()

    def _record(self, events: list[tuple[int, UsageEvent]], now_us: int) -> IngestResult:
        request = IngestRequest(events, [], now_us, batch=True, origin=Origin.ENTITLEMENTS)
        return self.rt.ingest.record(request)

    def _end(self, armed: Armed, quantity: Decimal, counted: bool, written: Decimal) -> None:
        if not counted or armed.period is None:
            return
        if written >= quantity:
            self.counters.settled(armed.key, armed.period, quantity)
        else:
            self.counters.release(armed.key, armed.period, EXACT.subtract(quantity, written))

    def _tell_siblings(self, armed: Armed, event: UsageEvent, accepted: int) -> None:
        """Other count/sum meters of the event type count the written events too."""
        if not accepted or not armed.siblings:
            return
        adds = []
        for meter in armed.siblings:
            try:
                value = meter.measure(event.data)
            except EventNotMetered:
                continue
            if isinstance(value, Decimal):
                total = EXACT.multiply(value, Decimal(accepted))
                adds.append(((event.subject, meter.key), event.time_us, total))
        if adds:
            self.counters.add(adds)

    # -- admit(): in batches --------------------------------------------------------------

    def start(self) -> None:
        if self._thread is not None:
            return
        with self._start_lock:
            if self._thread is None and not self._stop.is_set():
                self._thread = threading.Thread(
                    target=self._run, name="fairmeter-limits-writer", daemon=True
                )
                self._thread.start()

    def _run(self) -> None:
        rounds = 0
        while not self._stop.wait(self.interval_s):
            rounds += 1
            self._write_batches()
            if rounds % STATS_EVERY == 0:
                self.stats.flush(self.rt.db)

    def flush(self) -> None:
        self._write_batches()
        self.stats.flush(self.rt.db)

    def close(self) -> None:
        self._stop.set()
        thread = self._thread
        if thread is not None:
            thread.join()
        self.flush()

    def _write_batches(self) -> None:
        with self._flush_lock:
            for batch in self.pending.take():
                try:
                    self._write_batch(batch)
                except Exception:
                    log.exception("could not write admitted usage of %s", batch.armed.key)
                    self._retry(batch)

    def _write_batch(self, batch: Batch) -> None:
        armed, customer = batch.armed, batch.armed.terms.customer
        now_us = to_us(self.rt.clock.now())
        time_us = min(now_us, batch.period.end_us - 1)  # the period the usage was admitted in
        if batch.quantity > 0:
            # One event, or a count meter's run of them: one row either way (ADR 13).
            first, count = usage_run(
                armed.meter, customer, batch.quantity, new_event_id(), None, time_us
            )
            result = self.rt.ingest.record_run(first, count, now_us, Origin.ENTITLEMENTS)
            if result.rejected:
                log.error("admitted usage of %s refused by ingest: %s", armed.key, result.rejected)
                self._give_up(batch)
                return
            self._tell_siblings(armed, first, result.accepted)
            batch.written = EXACT.add(batch.written, batch.quantity)
            batch.quantity = Decimal(0)
        self._finish(batch, Decimal(0))

    def _retry(self, batch: Batch) -> None:
        batch.attempts += 1
        if batch.attempts < MAX_ATTEMPTS:
            self.pending.put_back(batch)
        else:
            self._give_up(batch)

    def _give_up(self, batch: Batch) -> None:
        self.stats.unrecorded += 1
        self._finish(batch, batch.quantity)

    def _finish(self, batch: Batch, unwritten: Decimal) -> None:
        counted, period, key = batch.counted, batch.period, batch.armed.key
        if unwritten > 0 and counted:
            self.counters.release(key, period, unwritten)
            counted -= 1
        if counted:
            self.counters.settled(key, period, batch.written, admissions=counted)


def _conflict() -> IdempotencyConflict:
    detail = "this idempotency key was used for a different call (other quantity or data)"
    return IdempotencyConflict(
        detail, errors=(FieldError("/idempotency_key", detail, "idempotency_conflict"),)
    )


def _refused(result: IngestResult) -> Exception:
    errors = tuple(error for rejection in result.rejected for error in rejection.errors)
    if any(error.code == "event_conflict" for error in errors):
        return _conflict()
    first = errors[0] if errors else FieldError("/data", "the usage event was refused")
    return InvalidInput(f"the usage event was refused: {first.detail}", errors=errors)
