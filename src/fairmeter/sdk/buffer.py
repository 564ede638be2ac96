"""Buffered event sending: `add` is cheap, batches go out by size or on a timer.

Each event gets its id when it is added, and keeps it until the server has
settled it, so a batch that failed in transit is resent without double counting.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from types import TracebackType
from typing import TYPE_CHECKING, Any, Self

from . import _json
from .errors import FairmeterError, RateLimitError, ServerError, TransportError
from .events import build_event

if TYPE_CHECKING:
    from .async_client import AsyncClient
    from .client import Client

__all__ = ["AsyncEventBuffer", "EventBuffer", "Rejection", "RejectionHandler"]

logger = logging.getLogger("fairmeter.sdk")

# Worth another try with the same ids; anything else will fail the same way again.
_TRANSIENT = (TransportError, ServerError, RateLimitError)


@dataclass(frozen=True)
class Rejection:
    """An event the server refused; it is dropped from the buffer, not retried."""

    event: dict[str, Any] | None
    code: str
    detail: str | None
    problem: dict[str, Any]


RejectionHandler = Callable[[list[Rejection]], None]


def _find(sent: list[dict[str, Any]], item: Mapping[str, Any]) -> dict[str, Any] | None:
    index = item.get("index")
    if isinstance(index, int) and 0 <= index < len(sent):
        return sent[index]
    return next((event for event in sent if event["id"] == item.get("id")), None)


def _item_rejection(sent: list[dict[str, Any]], item: dict[str, Any]) -> Rejection:
    # The server explains an item with field errors: [{"pointer", "detail", "code"}].
    errors = [e for e in item.get("errors") or [] if isinstance(e, dict)]
    code = item.get("code") or (errors[0].get("code") if errors else None) or "rejected"
    detail = item.get("detail") or "; ".join(
        f"{e.get('pointer', '')}: {e.get('detail', '')}" for e in errors
    )
    return Rejection(_find(sent, item), str(code), detail or None, item)


def _item_rejections(sent: list[dict[str, Any]], items: list[Any]) -> list[Rejection]:
    return [_item_rejection(sent, item) for item in items if isinstance(item, dict)]


def _error_rejections(sent: list[dict[str, Any]], error: FairmeterError) -> list[Rejection]:
    items = error.problem.get("rejected")
    if isinstance(items, list) and items:
        return _item_rejections(sent, items)
    return [Rejection(event, error.code, error.detail, error.problem) for event in sent]


class _BufferCore:
    """The pending list and what to do with a flush's outcome; no I/O here."""

    def __init__(
        self, max_events: int, flush_interval: float, on_rejected: RejectionHandler | None
    ) -> None:
        if max_events < 1:
            raise ValueError("max_events must be >= 1")
        if flush_interval <= 0:
            raise ValueError("flush_interval must be > 0")
        self._max_events = max_events
        self._flush_interval = flush_interval
        self._on_rejected = on_rejected
        self._events: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        self._closed = False
        # After a transient failure only the timer retries, so add() never blocks on a dead server.
        self._failing = False
        self.rejected: list[Rejection] = []
        self.last_error: FairmeterError | None = None

    @property
    def pending(self) -> int:
        with self._lock:
            return len(self._events)

    def _append(self, fields: Mapping[str, Any]) -> tuple[str, bool]:
        """Queue one event; returns its id and whether a size flush is due."""
        body = _event_body(fields)
        with self._lock:
            if self._closed:
                raise RuntimeError("event buffer is closed")
            self._events.append(body)
            return body["id"], len(self._events) >= self._max_events and not self._failing

    def _snapshot(self) -> list[dict[str, Any]]:
        with self._lock:
            return list(self._events)

    def _settle(self, sent: list[dict[str, Any]], outcome: Any) -> tuple[bool, list[Rejection]]:
        """Drop what the server decided on, keep what may be resent; (drained?, rejections)."""
        if isinstance(outcome, _TRANSIENT):
            self.last_error, self._failing = outcome, True
            logger.warning("fairmeter: %d events kept for the next flush: %s", len(sent), outcome)
            return False, []
        if isinstance(outcome, FairmeterError):
            rejections = _error_rejections(sent, outcome)
            self.last_error = outcome
        else:
            rejections = _item_rejections(sent, outcome.get("rejected") or [])
            self.last_error = None
        with self._lock:
            # Only flushes remove, one at a time, and add() only appends: the head is `sent`.
            del self._events[: len(sent)]
        self._failing = False
        self.rejected.extend(rejections)
        return True, rejections

    def _report(self, rejections: list[Rejection]) -> None:
        if rejections and self._on_rejected is not None:
            self._on_rejected(rejections)

    def _mark_closed(self) -> bool:
        """True the first time only."""
        with self._lock:
            first, self._closed = not self._closed, True
            return first

    def _warn_if_left(self) -> None:
        if self.pending:
            logger.error("fairmeter: buffer closed with %d undelivered events", self.pending)


def _event_body(fields: Mapping[str, Any]) -> dict[str, Any]:
    """A frozen wire copy of the event, stamped with the time it was added."""
    fields = {"time": datetime.now(UTC), **fields}  # not the time of some later flush
    body = build_event(**fields).to_cloudevent()
    # Encoding now fails an unencodable event here, not in every later flush, and the
    # decoded copy cannot be changed by the caller: a resend must carry the same content,
    # or the server refuses the id as a conflict.
    snapshot: dict[str, Any] = _json.loads(_json.dumps(body))
    return snapshot


class EventBuffer(_BufferCore):
    """Buffers events for a `Client`; a daemon thread flushes every `flush_interval` s.

    Use it as a context manager (or call `close()`): events still buffered when
    the interpreter exits are lost.
    """

    def __init__(
        self,
        client: Client,
        *,
        max_events: int = 1000,
        flush_interval: float = 1.0,
        on_rejected: RejectionHandler | None = None,
    ) -> None:
        super().__init__(max_events, flush_interval, on_rejected)
        self._client = client
        self._flush_lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="fairmeter-buffer", daemon=True)
        self._thread.start()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def add(self, **event_fields: Any) -> str:
        """Queue an event (`send_event`'s arguments); returns its id."""
        event_id, due = self._append(event_fields)
        if due:
            self.flush()
        return event_id

    def flush(self) -> bool:
        """Send everything buffered; False if some events are kept for a retry."""
        with self._flush_lock:
            sent = self._snapshot()
            if not sent:
                return True
            try:
                outcome: Any = self._client.send_events(sent)
            except FairmeterError as error:
                outcome = error
            drained, rejections = self._settle(sent, outcome)
        # Outside the lock, so the callback may add() without deadlocking.
        self._report(rejections)
        return drained

    def _run(self) -> None:
        while not self._stop.wait(self._flush_interval):
            try:
                self.flush()
            except Exception:
                logger.exception("fairmeter: background flush failed")

    def close(self) -> None:
        """Stop the timer and flush what is left (one attempt, with the client's retries)."""
        if not self._mark_closed():
            return
        self._stop.set()
        if threading.current_thread() is not self._thread:
            self._thread.join()
        self.flush()
        self._warn_if_left()


class AsyncEventBuffer(_BufferCore):
    """Buffers events for an `AsyncClient`; an asyncio task flushes on a timer.

    The task starts with the first `add()` (or `async with`), inside the running loop.
    """

    def __init__(
        self,
        client: AsyncClient,
        *,
        max_events: int = 1000,
        flush_interval: float = 1.0,
        on_rejected: RejectionHandler | None = None,
    ) -> None:
        super().__init__(max_events, flush_interval, on_rejected)
        self._client = client
        self._flush_lock = asyncio.Lock()
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> Self:
        self._start()
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    def _start(self) -> None:
        if self._task is None and not self._closed:
            self._task = asyncio.get_running_loop().create_task(self._run())

    async def add(self, **event_fields: Any) -> str:
        """Queue an event (`send_event`'s arguments); returns its id."""
        self._start()
        event_id, due = self._append(event_fields)
        if due:
            await self.flush()
        return event_id

    async def flush(self) -> bool:
        """Send everything buffered; False if some events are kept for a retry."""
        async with self._flush_lock:
            sent = self._snapshot()
            if not sent:
                return True
            try:
                outcome: Any = await self._client.send_events(sent)
            except FairmeterError as error:
                outcome = error
            drained, rejections = self._settle(sent, outcome)
        self._report(rejections)
        return drained

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self._flush_interval)
            try:
                await self.flush()
            except Exception:
                logger.exception("fairmeter: background flush failed")

    async def close(self) -> None:
        """Stop the timer and flush what is left (one attempt, with the client's retries)."""
        if not self._mark_closed():
            return
        if self._task is not None:
            # A flush cut short here is harmless: its events are still buffered, same ids.
            self._task.cancel()
            await asyncio.wait([self._task])
        await self.flush()
        self._warn_if_left()

    aclose = close
