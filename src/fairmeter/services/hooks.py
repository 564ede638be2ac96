"""In-process notices between use cases: usage recorded, and lifecycle changes.

Ingest tells whoever listens (the limits engine keeps its counters fresh, alert rules look
for crossings) what it has just committed, after the commit and outside the write lock, so
a slow or failing listener never delays or fails an acknowledgement. A listener must be
fast and must not raise; an exception is logged and swallowed.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from enum import StrEnum
from typing import NamedTuple

from fairmeter.domain.meters import Meter

log = logging.getLogger("fairmeter.hooks")

Group = tuple[tuple[str, str | None], ...]


class Origin(StrEnum):
    """Where recorded usage came from: listeners that already counted it skip it."""

    EVENTS = "events"  # POST /v1/events, the CLI import, the SDK
    ENTITLEMENTS = "entitlements"  # consume(): the limits engine counted it when admitting


class Recorded(NamedTuple):
    """One committed event's contribution to one meter (a duplicate is never reported).
    `value` is the measured quantity (a Decimal; 1 for count) or, for unique_count, the
    distinct value as text. A tuple: ingest builds one per event and meter, and a frozen
    dataclass costs several times more to build."""

    subject: str
    meter: Meter
    time_us: int
    value: Decimal | str
    group: Group
    origin: Origin


class Lifecycle(StrEnum):
    """Changes of a customer's access that people want to hear about."""

    LIMIT_REACHED = "limit.reached"
    PLAN_UPGRADED = "plan.upgraded"
    ACCESS_THROTTLED = "access.throttled"
    ACCESS_SUSPENDED = "access.suspended"
    ACCESS_RESTORED = "access.restored"
    INVOICE_ISSUED = "invoice.issued"
    INVOICE_PAST_DUE = "invoice.past_due"


@dataclass(frozen=True)
class LifecycleNotice:
    kind: Lifecycle
    customer: str
    at: datetime
    # What happened, JSON-ready (strings for decimals): meter, usage, limit, plan, ...
    details: Mapping[str, object] = field(default_factory=dict)
    # Makes the notice idempotent for listeners that store it (e.g. "limit.reached" once
    # per customer, meter and period): same key, same notice.
    dedupe_key: str | None = None


UsageListener = Callable[[Sequence[Recorded]], None]
LifecycleListener = Callable[[LifecycleNotice], None]


class Hooks:
    def __init__(self) -> None:
        self._usage: list[UsageListener] = []
        self._lifecycle: list[LifecycleListener] = []

    def on_usage(self, listener: UsageListener) -> None:
        self._usage.append(listener)

    def on_lifecycle(self, listener: LifecycleListener) -> None:
        self._lifecycle.append(listener)

    @property
    def wants_usage(self) -> bool:
        """Ingest builds `Recorded` items only when somebody listens."""
        return bool(self._usage)

    def usage_recorded(self, items: Sequence[Recorded]) -> None:
        if not items:
            return
        for listener in self._usage:
            try:
                listener(items)
            except Exception:
                log.exception("a usage listener failed; the events are stored regardless")

    def lifecycle(self, notice: LifecycleNotice) -> None:
        for listener in self._lifecycle:
            try:
                listener(notice)
            except Exception:
                log.exception("a lifecycle listener failed for %s", notice.kind)
