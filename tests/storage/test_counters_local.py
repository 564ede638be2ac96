"""LocalCounters' freshness rule: re-read from the database only when nothing is in flight
and nothing was counted while the database was read."""

from __future__ import annotations

from decimal import Decimal

from tests.storage.counters_support import KEY, P1, FakeRecord, admit

from fairmeter.storage.counters import Period
from fairmeter.storage.counters_local import LocalCounters


class Ticker:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def fresh_store() -> tuple[LocalCounters, Ticker]:
    ticker = Ticker()
    return LocalCounters(refresh_after_s=1.0, monotonic=ticker), ticker


def test_an_idle_counter_is_reread_after_refresh_after_s() -> None:
    store, ticker = fresh_store()
    record = FakeRecord({P1: Decimal(5)})
    assert store.used(KEY, P1, record.loader(P1)) == 5
    record.usage[P1] = Decimal(8)  # another process wrote usage
    ticker.now += 0.5
    assert store.used(KEY, P1, record.loader(P1)) == 5
    ticker.now += 0.6
    assert store.used(KEY, P1, record.loader(P1)) == 8


def test_no_reread_while_an_admission_is_in_flight() -> None:
    store, ticker = fresh_store()
    record = FakeRecord({P1: Decimal(5)})
    assert admit(store, 1, record=record).used == 6  # admitted, not yet written
    ticker.now += 5
    assert store.used(KEY, P1, record.loader(P1)) == 6
    assert record.reads == 1
    record.usage[P1] = Decimal(6)  # now written
    store.settled(KEY, P1, Decimal(1))
    record.usage[P1] = Decimal(10)  # and another process wrote 4
    assert store.used(KEY, P1, record.loader(P1)) == 10


def test_a_reread_is_dropped_when_something_was_counted_during_it() -> None:
    store, ticker = fresh_store()
    record = FakeRecord({P1: Decimal(5)})
    store.used(KEY, P1, record.loader(P1))
    ticker.now += 2

    def slow_read() -> Decimal:
        store.add([(KEY, P1.start_us, Decimal(1))])  # reported while we read
        return Decimal(100)

    assert store.used(KEY, P1, slow_read) == 6
    ticker.now += 0.1  # tried again shortly after
    assert store.used(KEY, P1, FakeRecord({P1: Decimal(7)}).loader(P1)) == 7


def test_usage_added_during_a_first_load_is_not_lost() -> None:
    store = LocalCounters()
    reads = []

    def load() -> Decimal:
        reads.append(1)
        if len(reads) == 1:  # committed after this read, reported before install
            store.add([(KEY, P1.start_us, Decimal(3))])
            return Decimal(5)
        return Decimal(8)

    assert store.used(KEY, P1, load) == 8
    assert len(reads) == 2


def test_without_refresh_after_s_a_counter_is_never_reread() -> None:
    store = LocalCounters()
    record = FakeRecord({P1: Decimal(5)})
    store.used(KEY, P1, record.loader(P1))
    record.usage[P1] = Decimal(9)
    assert store.used(KEY, P1, record.loader(P1)) == 5
    assert record.reads == 1
    assert store.used(KEY, Period(P1.end_us, P1.end_us + 10), lambda: Decimal(2)) == 2


def test_a_failed_reread_keeps_the_counter_answering() -> None:
    store, ticker = fresh_store()
    record = FakeRecord({P1: Decimal(5)})
    assert admit(store, 1, record=record).used == 6
    store.settled(KEY, P1, Decimal(1))
    ticker.now += 2

    def broken() -> Decimal:
        raise OSError("database gone")

    assert store.used(KEY, P1, broken) == 6
    ticker.now += 0.1
    record.usage[P1] = Decimal(9)
    assert store.used(KEY, P1, record.loader(P1)) == 9
