"""Counters in Redis, shared by every server process and host that points at it.

One atomic Lua script per decision (`storage/redis_scripts.py`): a warm `admit` is ONE
round trip (EVALSHA). A counter missing for the period (first use, a new period, Redis lost
it) costs a second: the script answers "missing", the caller reads the usage from the
database and calls the script again with it, which installs it unless another process got
there first (then that value is used) or an `add` arrived while the database was read
(then the read may have missed it: read again). Usage is an exact decimal string in Redis.

`add` (usage ingested by this process) must not slow the ingest committer that reports
it, so it is queued and sent by a background thread in pipelined batches; `flush()` waits
for what was queued. Any Redis error or timeout on the decision path raises
`CountersUnavailable` (the engine applies FAIRMETER_REDIS_FAILURE).

`recent` (what a check reads first) answers from what this process last saw of the
counter when that is under `mirror_s` old (0.2 s by default), so a check right after a
decision costs no round trip; usage added here since drops the mirrored value, and usage
added by other processes shows within `mirror_s`. `used` always asks Redis.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Sequence
from decimal import Decimal
from typing import Any
from urllib.parse import quote

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from fairmeter.domain.numbers import EXACT
from fairmeter.storage import redis_scripts
from fairmeter.storage.counters import (
    Admission,
    Bucket,
    CounterKey,
    CountersUnavailable,
    Loader,
    Period,
    Refusal,
)

log = logging.getLogger("fairmeter.limits.redis")

_DAY_MS = 86_400_000
_GRID = Decimal("1e-12")
_LOAD_ATTEMPTS = 3
_BATCH = 500


class RedisCounters:
    def __init__(
        self, url: str, prefix: str = "fm:", timeout_s: float = 0.5, mirror_s: float = 0.2
    ) -> None:
        self.prefix = prefix
        # What the last admit or read of a counter saw, and when: `used` answers from it
        # for `mirror_s` (a check needs no round trip right after this process decided).
        self._mirror: dict[CounterKey, tuple[Period, Decimal, int]] = {}
        self._mirror_ns = int(mirror_s * 1e9)
        self._names: dict[CounterKey, tuple[str, str]] = {}
        self._redis = redis.Redis.from_url(
            url,
            socket_timeout=timeout_s,
            socket_connect_timeout=timeout_s,
            decode_responses=True,
            # one quick retry rides over a dropped pooled connection; no long waits
            retry=Retry(NoBackoff(), 1),
        )
        self._admit = self._redis.register_script(redis_scripts.ADMIT)
        self._add = self._redis.register_script(redis_scripts.ADD)
        self._release = self._redis.register_script(redis_scripts.RELEASE)
        self._queue: queue.SimpleQueue[tuple[CounterKey, int, Decimal] | threading.Event] = (
            queue.SimpleQueue()
        )
        self._sender: threading.Thread | None = None
        self._start = threading.Lock()

    def keys_for(self, key: CounterKey) -> tuple[str, str]:
        """The counter hash and its load marker. Customer and meter keys are
        percent-encoded, so no key can collide with another or escape the prefix.
        Remembered: every decision needs them, and encoding costs more than a lookup."""
        found = self._names.get(key)
        if found is None:
            if len(self._names) >= 100_000:
                self._names.clear()
            name = f"{quote(key[0], safe='')}/{quote(key[1], safe='')}"
            found = self._names[key] = (f"{self.prefix}c:{name}", f"{self.prefix}l:{name}")
        return found

    def admit(
        self,
        key: CounterKey,
        period: Period,
        quantity: Decimal,
        *,
        ceiling: Decimal | None,
        soft_limit: Decimal | None,
        throttle: Bucket | None,
        rate: Bucket | None,
        now_us: int,
        load: Loader,
    ) -> Admission:
        args = [
            str(period.start_us), str(period.end_us), _text(quantity), _opt(ceiling),
            _opt(soft_limit), *_bucket(rate), *_bucket(throttle), str(now_us),
        ]  # fmt: skip
        reply = self._decide(key, period, args, load)
        status, used, refused_by, retry = reply
        value = self._remember(key, period, Decimal(used))
        if status == "admitted":
            return Admission(True, value)
        refusal: Refusal = refused_by
        return Admission(False, value, refusal, int(retry) if retry else None)

    def recent(self, key: CounterKey, period: Period) -> Decimal | None:
        """The usage as this process saw it under `mirror_s` ago (no round trip), or None.
        Good enough for a check, which records nothing; `used` asks Redis."""
        seen = self._mirror.get(key)
        if seen is None or seen[0] != period or time.monotonic_ns() - seen[2] >= self._mirror_ns:
            return None
        return seen[1]

    def used(self, key: CounterKey, period: Period, load: Loader) -> Decimal:
        counter, _ = self.keys_for(key)
        used, ps, pe = self._call(self._redis.hmget, counter, ["used", "ps", "pe"])
        if used is not None and (ps, pe) == (str(period.start_us), str(period.end_us)):
            return self._remember(key, period, Decimal(used))
        args = [str(period.start_us), str(period.end_us), "0", "", "", "", "", "", "", "", "",
                "0"]  # fmt: skip
        return self._remember(key, period, Decimal(self._decide(key, period, args, load)[1]))

    def _remember(self, key: CounterKey, period: Period, used: Decimal) -> Decimal:
        self._mirror[key] = (period, used, time.monotonic_ns())
        return used

    def add(self, items: Sequence[tuple[CounterKey, int, Decimal]]) -> None:
        if not items:
            return
        self._ensure_sender()
        for item in items:
            self._mirror.pop(item[0], None)
            self._queue.put(item)

    def release(self, key: CounterKey, period: Period, quantity: Decimal) -> None:
        counter, _ = self.keys_for(key)
        args = [str(period.start_us), str(period.end_us), _text(quantity)]
        self._mirror.pop(key, None)
        self._call(self._release, keys=[counter], args=args)

    def settled(
        self, key: CounterKey, period: Period, quantity: Decimal, admissions: int = 1
    ) -> None:
        """Nothing to do: Redis counters are never re-read from the database while they
        exist, so an admission counts once whether or not it is written yet."""

    def flush(self, timeout_s: float = 5.0) -> bool:
        """Wait until the usage queued by `add` so far has been sent (False on timeout)."""
        if self._sender is None:
            return True
        done = threading.Event()
        self._queue.put(done)
        return done.wait(timeout_s)

    def close(self) -> None:
        self.flush()
        self._redis.close()

    # -- internals ----------------------------------------------------------------------

    def _decide(self, key: CounterKey, period: Period, args: list[str], load: Loader) -> Any:
        keys = list(self.keys_for(key))
        # housekeeping only: a day after the period ends (never in the past by this host's
        # clock, which tests and late calls may put before the period)
        expires = str(max(period.end_us // 1000, int(time.time() * 1000)) + _DAY_MS)
        reply = self._call(self._admit, keys=keys, args=[*args, "", "", expires])
        for attempt in range(_LOAD_ATTEMPTS):
            if reply[0] != "missing":
                return reply
            seen = reply[1] if attempt < _LOAD_ATTEMPTS - 1 else "*"
            loaded = _text(load())
            reply = self._call(self._admit, keys=keys, args=[*args, loaded, seen, expires])
        return reply

    def _call(self, fn: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except redis.RedisError as exc:
            raise CountersUnavailable(f"Redis: {exc}") from exc

    def _ensure_sender(self) -> None:
        if self._sender is not None:
            return
        with self._start:
            if self._sender is None:
                thread = threading.Thread(target=self._send_forever, daemon=True,
                                          name="fairmeter-redis-add")  # fmt: skip
                thread.start()
                self._sender = thread

    def _send_forever(self) -> None:
        while True:
            batch: list[tuple[CounterKey, int, Decimal]] = []
            waiting: list[threading.Event] = []
            item = self._queue.get()
            while True:
                if isinstance(item, threading.Event):
                    waiting.append(item)
                else:
                    batch.append(item)
                if len(batch) >= _BATCH or self._queue.empty():
                    break
                item = self._queue.get()
            try:
                self._send(batch)
            except Exception:  # never let the sender die: later usage would be dropped
                log.exception("sending %d usage items to Redis failed", len(batch))
            for done in waiting:
                done.set()

    def _send(self, batch: list[tuple[CounterKey, int, Decimal]]) -> None:
        if not batch:
            return
        for attempt in range(3):
            try:
                pipe = self._redis.pipeline(transaction=False)
                for key, time_us, quantity in batch:
                    args = [str(time_us), _text(quantity)]
                    self._add(keys=list(self.keys_for(key)), args=args, client=pipe)
                pipe.execute()
                for key, _, _ in batch:  # a read made while this was queued is stale
                    self._mirror.pop(key, None)
                return
            except redis.RedisError as exc:
                log.warning("sending %d usage items to Redis failed (%s)", len(batch), exc)
                threading.Event().wait(0.05 * (attempt + 1))
        # The counters that missed this usage are low until their period ends or Redis
        # loses them; the database has it. Logged loudly: it is the one silent undercount.
        log.error("dropped %d usage items for Redis counters after retries", len(batch))


def _text(value: Decimal) -> str:
    """An exact plain decimal string with at most 12 decimals (what the scripts read)."""
    exponent = value.as_tuple().exponent
    if isinstance(exponent, int) and exponent < -12:
        value = value.quantize(_GRID, context=EXACT)  # raises rather than round
    return format(value, "f")


def _opt(value: Decimal | None) -> str:
    return "" if value is None else _text(value)


def _bucket(bucket: Bucket | None) -> tuple[str, str, str]:
    if bucket is None:
        return "", "", ""
    return bucket.name, repr(float(bucket.rate)), repr(float(bucket.capacity))
