"""What a period's first bucket holds before the period starts: kept, so that reading a
period's usage reads no raw event (see `storage.alert_usage.UsageBatch`).

A period that starts at 14:37 starts inside the 14:30 bucket. Its usage so far is the
rollups from 14:30 on, less the events from 14:30 to 14:37, which belong to the period
before. Those are in the past: they change only when a late event is recorded for that
subject and type before the period's start. This process hears of every event it records
(the usage listener) and forgets the heads a late one falls in; events recorded by
another process are heard of by none here, so a head is also forgotten after `ttl_s`.
A head read while a late event was being recorded is not kept (`generation`).

The counters' re-reads (every second) and each alert pass ask for the same few heads; a
late event is rare, so they are read once a `ttl_s` instead of on every read.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence

from fairmeter.domain.aggregates import Partial
from fairmeter.services.hooks import Recorded
from fairmeter.storage.alert_usage import HeadKey

__all__ = ["HeadCache"]


class HeadCache:
    def __init__(
        self,
        *,
        ttl_s: float = 60.0,
        limit: int = 100_000,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.ttl_s, self.limit, self._monotonic = ttl_s, limit, monotonic
        self._lock = threading.Lock()
        self._heads: dict[HeadKey, tuple[float, Partial]] = {}
        self._by_source: dict[tuple[str, str], set[HeadKey]] = {}  # (type, subject) -> keys
        self._generation = 0
        # The latest span start of a kept head: an event recorded at or after it is in no
        # head (nearly every event), so the listener looks no further.
        self._latest_start = -1

    def generation(self) -> int:
        return self._generation

    def get(self, key: HeadKey) -> Partial | None:
        entry = self._heads.get(key)
        if entry is None or entry[0] <= self._monotonic():
            return None
        kept = entry[1]
        return Partial(count=kept.count, total=kept.total)

    def put(self, key: HeadKey, partial: Partial, generation: int) -> None:
        with self._lock:
            if generation != self._generation:
                return  # a late event was recorded while it was read: it may be missing
            if len(self._heads) >= self.limit:
                self._heads.clear()
                self._by_source.clear()
            kept = Partial(count=partial.count, total=partial.total)
            self._heads[key] = (self._monotonic() + self.ttl_s, kept)
            self._by_source.setdefault((key[0], key[1]), set()).add(key)
            self._latest_start = max(self._latest_start, key[4])

    def listener(self, items: Sequence[Recorded]) -> None:
        """For `rt.hooks.on_usage`: forget the heads a late event falls in."""
        latest = self._latest_start
        late = [r for r in items if r.time_us < latest]
        if not late:
            return
        with self._lock:
            self._generation += 1
            for r in late:
                keys = self._by_source.get((r.meter.event_type, r.subject))
                for key in [k for k in keys or () if k[3] <= r.time_us < k[4]]:
                    self._heads.pop(key, None)
                    keys.discard(key)  # type: ignore[union-attr]  # not None: it held key
