"""Events are CloudEvents 1.0 whose id is fixed once, before any send."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest

from fairmeter.sdk import Event, build_event
from fairmeter.sdk.events import to_cloudevent


def test_event_id_is_fixed_at_construction() -> None:
    event = Event(type="api.call", subject="acme")
    assert event.to_cloudevent()["id"] == event.to_cloudevent()["id"] == event.id


def test_each_event_gets_its_own_id() -> None:
    assert Event(type="t", subject="s").id != Event(type="t", subject="s").id


def test_cloudevent_has_the_core_attributes() -> None:
    event = build_event(
        type="api.call",
        subject="acme",
        id="e-1",
        time=datetime(2025, 1, 1, tzinfo=UTC),
        data={"tokens": Decimal("12.5")},
        region="eu",
    )
    assert event.to_cloudevent() == {
        "specversion": "1.0",
        "id": "e-1",
        "source": "fairmeter-sdk",
        "type": "api.call",
        "subject": "acme",
        "time": "2025-01-01T00:00:00+00:00",
        "region": "eu",
        "data": {"tokens": Decimal("12.5")},
    }


def test_time_is_omitted_when_not_given() -> None:
    assert "time" not in Event(type="t", subject="s").to_cloudevent()


def test_event_time_must_be_timezone_aware() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        Event(type="t", subject="s", time=datetime(2025, 1, 1))


@pytest.mark.parametrize("name", ["Region", "re-gion", "", "specversion"])
def test_extension_names_must_be_lowercase_letters_or_digits(name: str) -> None:
    with pytest.raises(ValueError, match=repr(name)):
        Event(type="t", subject="s", extensions={name: "x"})


def test_dict_event_gets_defaults_without_changing_the_callers_dict() -> None:
    given = {"type": "t", "subject": "s", "time": datetime(2025, 1, 1, tzinfo=UTC)}
    body = to_cloudevent(given)
    assert body["specversion"] == "1.0"
    assert body["source"] == "fairmeter-sdk"
    assert body["time"] == "2025-01-01T00:00:00+00:00"
    assert body["id"]
    assert "id" not in given


def test_dict_event_keeps_its_own_id() -> None:
    assert to_cloudevent({"type": "t", "subject": "s", "id": "mine"})["id"] == "mine"


def test_generated_ids_are_uuid7_and_grow_with_time() -> None:
    import time
    import uuid as uuid_module

    from fairmeter.sdk.events import new_event_id

    first = new_event_id()
    time.sleep(0.002)
    second = new_event_id()
    assert uuid_module.UUID(first).version == 7
    assert first[:13] < second[:13]  # the 48-bit millisecond prefix orders them
    assert len({new_event_id() for _ in range(1000)}) == 1000
