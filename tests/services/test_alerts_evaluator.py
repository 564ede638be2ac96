"""The evaluator thread: usage noted in the commit thread, evaluated in its own, never lost
on close or on a failed pass."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from tests.services.alerts_world import AlertWorld

from fairmeter.config import Settings
from fairmeter.services import alert_evaluator
from fairmeter.services.clock import FixedClock
from fairmeter.services.runtime import Runtime
from fairmeter.wiring import build

START = datetime(2026, 11, 1, tzinfo=UTC)
DAY = datetime(2026, 11, 15, 9, 0, tzinfo=UTC)


@pytest.fixture
def world(database_url: str, clock: FixedClock) -> Iterator[AlertWorld]:
    rt = build(Settings(database_url=database_url), clock=clock)
    world = AlertWorld(rt).meter("calls", "sum")
    charge = {"meter": "calls", "model": "per_unit", "unit_price": "0"}
    world.plan("pro", charges=[{**charge, "limit": "100", "policy": "block"}])
    world.customer("acme")
    world.subscribe("acme", "pro", START)
    yield world
    rt.close()


def reopened(world: AlertWorld) -> AlertWorld:
    rt = build(Settings(database_url=str(world.rt.db.engine.url)), clock=world.clock)
    return AlertWorld(rt)


def test_the_listener_only_notes_and_the_thread_tells(world: AlertWorld) -> None:
    assert world.rt.alerts is not None
    world.use("acme", "calls", DAY, 60)
    assert [r["dedupe_key"].split(":")[-1] for r in world.told()] == ["50"]


def test_closing_the_runtime_evaluates_what_was_recorded_last(world: AlertWorld) -> None:
    world.use("acme", "calls", DAY, 100)
    world.rt.close()  # no drain: close must not drop what ingest noted
    again = reopened(world)
    try:
        assert len(again.told()) == 3
    finally:
        again.rt.close()


def test_a_failed_pass_is_tried_again(world: AlertWorld, monkeypatch: pytest.MonkeyPatch) -> None:
    real = alert_evaluator.evaluate
    calls: list[int] = []

    def flaky(rt: Runtime, touched: object, told: object, cache: object) -> list[str]:
        calls.append(1)
        if len(calls) == 1:
            raise ConnectionError("the database went away for a moment")
        return real(rt, touched, told, cache)  # type: ignore[arg-type]

    monkeypatch.setattr(alert_evaluator, "evaluate", flaky)
    world.use("acme", "calls", DAY, 60)
    assert len(world.told()) == 1 and len(calls) == 2


def test_usage_of_a_subject_without_subscription_is_ignored(world: AlertWorld) -> None:
    world.customer("walk_in")  # a customer, not subscribed
    world.use_many([("walk_in", "calls", DAY, 500), ("stranger", "calls", DAY, 500)])
    world.use("acme", "calls", DAY, 50)
    assert [r["customer_key"] for r in world.told()] == ["acme"]
