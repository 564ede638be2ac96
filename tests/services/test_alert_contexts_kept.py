"""Alert evaluation keeps a customer's context (plan, period, limits, rules) while the terms
version it was read at holds: a busy customer's context is read once, not once a second;
a write anywhere it is built from (plain SQL too: triggers bump the version) or the
period's end reads it again."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import text
from tests.services.limits_world import Limited

from fairmeter.domain.windows import to_us
from fairmeter.services import alert_contexts, alerts
from fairmeter.services.alert_contexts import AlertContext, ContextCache
from fairmeter.services.runtime import Runtime
from fairmeter.storage.limits import Limits


class Ticker:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def _counting(monkeypatch: pytest.MonkeyPatch) -> list[list[str]]:
    loads: list[list[str]] = []
    load = alert_contexts.load_contexts

    def counted(db, touched, now_us):  # type: ignore[no-untyped-def]
        loads.append(sorted(touched))
        return load(db, touched, now_us)

    monkeypatch.setattr(alert_contexts, "load_contexts", counted)
    return loads


def _world(runtime: Runtime) -> Limited:
    world = Limited(runtime).meter().customer().plan(limit="100")
    world.subscribe()
    return world


def _one(cache: ContextCache, runtime: Runtime, now_us: int) -> AlertContext:
    (ctx,) = cache.contexts(runtime.db, ["acme"], now_us)
    return ctx


class Started:
    """acme subscribed, a cache with a ticking monotonic clock, its first context read."""

    def __init__(self, runtime: Runtime, monkeypatch: pytest.MonkeyPatch, ttl: float) -> None:
        _world(runtime)
        self.loads = _counting(monkeypatch)
        self.ticker = Ticker()
        self.cache = ContextCache(ttl=ttl, monotonic=self.ticker)
        self.now = to_us(runtime.clock.now())
        self.first = _one(self.cache, runtime, self.now)


def test_a_context_is_kept_while_nothing_it_is_built_from_changed(
    runtime: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    s = Started(runtime, monkeypatch, ttl=1.0)
    loads, ticker, cache, now, first = s.loads, s.ticker, s.cache, s.now, s.first
    assert first.limits == {"calls": 100}
    with runtime.db.read() as conn:
        assert first.version == Limits(conn).terms_version() > 0
    for step in range(1, 6):  # five times past the ttl, nothing changed: one read in all
        ticker.now += 2
        assert _one(cache, runtime, now + step) is first
    assert loads == [["acme"]]


def test_a_rule_or_budget_written_elsewhere_is_read_after_the_ttl(
    runtime: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    s = Started(runtime, monkeypatch, ttl=1.0)
    loads, ticker, cache, now, first = s.loads, s.ticker, s.cache, s.now, s.first
    assert [rule.thresholds for rule in first.rules] != [(7,)]

    # a rule created without telling this cache (another process, the CLI)
    body = {"customer": "acme", "kind": "usage_threshold", "meter": "calls", "thresholds": ["7"]}
    alerts.create_rule(runtime.db, runtime.clock, body)
    assert _one(cache, runtime, now) is first  # within the ttl: as read
    ticker.now += 1.5
    second = _one(cache, runtime, now)
    assert second is not first and [rule.thresholds for rule in second.rules] == [(7,)]
    assert len(loads) == 2

    with runtime.db.write() as conn:  # plain SQL, as another tool would
        conn.execute(text("UPDATE customers SET budget = '250' WHERE key = 'acme'"))
    ticker.now += 1.5
    third = _one(cache, runtime, now)
    assert third is not second and third.customer.budget == 250
    assert len(loads) == 3


def test_the_period_end_reads_the_context_again_without_any_write(
    runtime: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    s = Started(runtime, monkeypatch, ttl=1.0)
    loads, cache, now, first = s.loads, s.cache, s.now, s.first
    assert first.changes_at_us > now  # no plan change or cancel is scheduled

    world_clock = Limited(runtime).clock
    world_clock.advance(first.period.end - runtime.clock.now() + timedelta(seconds=1))
    second = _one(cache, runtime, to_us(runtime.clock.now()))
    assert second is not first and second.period.start == first.period.end
    assert len(loads) == 2


def test_forget_reads_every_context_again(
    runtime: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    s = Started(runtime, monkeypatch, ttl=60.0)
    loads, cache, now, first = s.loads, s.cache, s.now, s.first
    cache.forget()
    assert _one(cache, runtime, now) is not first
    assert len(loads) == 2
