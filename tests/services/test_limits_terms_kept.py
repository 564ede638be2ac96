"""Terms that fall due are kept when nothing they are built from changed (one read of the
terms version, bumped by database triggers), and read again when something did, or when
time alone changes them (a later start, a period's end)."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import text
from tests.services.limits_world import Limited

from fairmeter.domain.entitlements import Reason
from fairmeter.domain.windows import to_us
from fairmeter.services.entitlement_terms import TermsCache
from fairmeter.services.runtime import Runtime
from fairmeter.services.subscriptions import create_subscription
from fairmeter.storage.limits import Limits

SECOND = 1_000_000


def _counting(cache: TermsCache) -> list[tuple[str, str]]:
    loads: list[tuple[str, str]] = []
    load = cache._load

    def counted(key: tuple[str, str], now_us: int):  # type: ignore[no-untyped-def]
        loads.append(key)
        return load(key, now_us)

    cache._load = counted  # type: ignore[method-assign]
    return loads


def test_every_table_terms_are_built_from_bumps_the_version(runtime: Runtime) -> None:
    world = Limited(runtime).meter().customer().plan()

    def version() -> int:
        with runtime.db.read() as conn:
            return Limits(conn).terms_version()

    before = version()
    world.subscribe()  # subscriptions and their first segment
    assert version() > before
    before = version()
    with runtime.db.write() as conn:  # plain SQL, as another tool would
        conn.execute(text("UPDATE customers SET name = 'ACME' WHERE key = 'acme'"))
    assert version() == before + 1


def test_terms_are_kept_while_nothing_changed_and_read_again_once_something_did(
    runtime: Runtime,
) -> None:
    world = Limited(runtime).meter().customer().plan(limit="100")
    world.subscribe()
    cache = TermsCache(runtime.db, runtime.clock, refresh_us=SECOND)
    loads = _counting(cache)
    now = to_us(runtime.clock.now())

    first = cache.get("acme", "calls", now)
    assert first.terms.limit is not None and first.terms.limit.limit == 100
    for step in range(1, 6):  # five refresh intervals, nothing changed: one load in all
        kept = cache.get("acme", "calls", now + step * 2 * SECOND)
        assert kept is first and kept.open_until_ns > 0
        assert kept.fresh_until_us == now + step * 2 * SECOND + SECOND
    assert loads == [("acme", "calls")]

    with runtime.db.write() as conn:  # another process raises the plan's limit
        raised = "UPDATE plans SET definition = replace(definition, '\"100\"', '\"500\"')"
        conn.execute(text(raised))
    later = now + 10 * SECOND + SECOND // 2  # within the last keeping
    assert cache.get("acme", "calls", later) is first  # still fresh: kept until it falls due
    again = cache.get("acme", "calls", later + 2 * SECOND)
    assert again is not first and first.open_until_ns == 0  # the old terms' lanes close
    assert again.terms.limit is not None and again.terms.limit.limit == 500
    assert len(loads) == 2


def test_terms_change_with_time_alone_at_a_later_start(runtime: Runtime) -> None:
    world = Limited(runtime).meter().customer().plan()
    start = runtime.clock.now() + timedelta(seconds=30)
    create_subscription(runtime.db, runtime.clock, "acme", "starter", start_at=start)
    cache = TermsCache(runtime.db, runtime.clock, refresh_us=SECOND)
    loads = _counting(cache)
    now = to_us(runtime.clock.now())

    before = cache.get("acme", "calls", now)
    assert before.refused is Reason.NO_SUBSCRIPTION and before.changes_at_us == to_us(start)
    assert cache.get("acme", "calls", now + 10 * SECOND) is before  # kept, nothing changed
    world.clock.at = start + timedelta(seconds=1)  # (what the subscription view reads)
    started = cache.get("acme", "calls", to_us(start) + SECOND)
    assert started.refused is None and started.period is not None
    assert len(loads) == 2


def test_invalidated_terms_are_never_kept(runtime: Runtime) -> None:
    world = Limited(runtime).meter().customer().plan()
    world.subscribe()
    cache = TermsCache(runtime.db, runtime.clock, refresh_us=SECOND)
    loads = _counting(cache)
    now = to_us(runtime.clock.now())
    first = cache.get("acme", "calls", now)
    cache.invalidate("acme")
    assert first.open_until_ns == 0
    assert cache.get("acme", "calls", now + 2 * SECOND) is not first
    assert len(loads) == 2
