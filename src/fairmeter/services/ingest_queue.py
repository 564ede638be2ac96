"""Group commit: concurrent ingest requests share one transaction and one fsync.

A durable commit costs milliseconds whatever it holds. Requests that arrive while a commit
is running wait together and are written by the next one, so many small requests (one
event each, from many clients) cost little more than one large batch. Each request still
gets its own outcome, and is acknowledged only after the commit that holds it."""

from __future__ import annotations

import queue
import threading
from concurrent.futures import Future

from fairmeter.domain.events import IngestResult, UsageEvent
from fairmeter.services.hooks import Hooks, Origin, Recorded
from fairmeter.services.ingest import (
    IngestRequest,
    Prepared,
    prepare,
    record_prepared,
    record_run,
)
from fairmeter.storage.database import Database

_Pending = tuple[Prepared, "Future[IngestResult]"]


class GroupCommitter:
    def __init__(self, db: Database, max_events: int = 20_000, hooks: Hooks | None = None):
        self.db = db
        self.hooks = hooks or Hooks()
        self.max_events = max_events
        self._queue: queue.SimpleQueue[_Pending | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def record(self, request: IngestRequest) -> IngestResult:
        """Blocks until the request is committed (or has failed).

        Measuring happens here, in the caller's thread, while the committer may be waiting
        on the disk for the previous group."""
        prepared = prepare(self.db, request)
        if not prepared.candidates:
            return record_prepared(self.db, [prepared])[0]  # all settled: no write, no wait
        future: Future[IngestResult] = Future()
        self._ensure_started()
        self._queue.put((prepared, future))
        return future.result()

    def record_run(
        self, first: UsageEvent, count: int, received_us: int, origin: Origin
    ) -> IngestResult:
        """`ingest.record_run` in the caller's thread and its own transaction (a writer's
        batch, not a request waiting on others), then the usage listeners."""
        recorded: list[Recorded] | None = [] if self.hooks.wants_usage else None
        result = record_run(self.db, first, count, received_us, origin, recorded)
        if recorded:
            self.hooks.usage_recorded(recorded)
        return result

    def close(self) -> None:
        with self._lock:
            if self._thread is not None:
                self._queue.put(None)
                self._thread.join()
                self._thread = None

    def _ensure_started(self) -> None:
        with self._lock:
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name="fairmeter-group-commit", daemon=True
                )
                self._thread.start()

    def _run(self) -> None:
        while True:
            first = self._queue.get()
            if first is None:
                return
            group = [first]
            size = first[0].size
            while size < self.max_events:
                try:
                    following = self._queue.get_nowait()
                except queue.Empty:
                    break
                if following is None:
                    self._queue.put(None)
                    break
                group.append(following)
                size += following[0].size
            self._commit(group)

    def _commit(self, group: list[_Pending]) -> None:
        recorded: list[Recorded] | None = [] if self.hooks.wants_usage else None
        try:
            results = record_prepared(self.db, [prepared for prepared, _ in group], recorded)
        except Exception as exc:
            if len(group) == 1:
                group[0][1].set_exception(exc)
                return
            # One bad request must not fail the others: retry them one by one.
            for pending in group:
                self._commit([pending])
            return
        if recorded:
            self.hooks.usage_recorded(recorded)  # before the acknowledgements: fresh counters
        for (_, future), result in zip(group, results, strict=True):
            future.set_result(result)
