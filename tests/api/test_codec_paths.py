"""The batch decoder's two paths: a batch of well-formed events is admitted without the
per-attribute checks; one item that does not fit sends the batch through the explaining
path. Both must admit the same events the same way (same time, data and fingerprint), or
a replay through the other path would be reported as a conflict."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import UTC, datetime, timedelta

from fairmeter.api import codec
from fairmeter.domain.events import IngestPolicy

NOW = datetime(2026, 3, 29, 12, 0, tzinfo=UTC)
POLICY = IngestPolicy()


def _events() -> list[dict[str, object]]:
    nested: dict[str, object] = {"leaf": 1}
    for _ in range(20):
        nested = {"n": nested}
    return [
        {"specversion": "1.0", "id": "a", "source": "s", "type": "t", "subject": "acme"},
        {
            "specversion": "1.0",
            "id": "b",
            "source": "s",
            "type": "t",
            "subject": "ünïcödé",
            "time": "2026-03-29T13:59:59.123456+02:00",
            "data": {"z": 1.50, "a": [1, 2, {"b": None}], "long": "x" * 80},
        },
        {
            "specversion": "1.0",
            "id": "c",
            "source": "s",
            "type": "t",
            "subject": "acme",
            "time": "2026-03-01T00:00:00Z",
            "data": None,
        },
        {
            "specversion": "1.0",
            "id": "d",
            "source": "s",
            "type": "t",
            "subject": "acme",
            "data": nested,
            "extension": "ignored",
        },
    ]


def _parse(events: list[object]) -> codec.Parsed:
    return codec.parse_batch(json.dumps(events).encode(), NOW, POLICY)


def test_well_formed_and_explained_batches_admit_identical_events() -> None:
    good = _events()
    fast, none_rejected = _parse(list(good))
    # A number where a string belongs: the batch no longer fits the well-formed shape.
    bad = {"specversion": "1.0", "id": 7, "source": "s", "type": "t", "subject": "acme"}
    explained, rejected = _parse([*good, bad])
    assert none_rejected == []
    assert [r.index for r in rejected] == [len(good)]
    assert rejected[0].errors[0].pointer == f"/{len(good)}/id"
    assert fast == explained
    by_id = {event.id: event for _, event in fast}
    assert by_id["a"].time_us == by_id["d"].time_us == int(NOW.timestamp()) * 1_000_000
    moment = datetime(2026, 3, 29, 11, 59, 59, 123456, tzinfo=UTC)
    assert by_id["b"].time_us == int(moment.timestamp()) * 1_000_000 + 123456
    assert by_id["c"].data == {}


def test_out_of_window_times_are_rejected_on_the_fast_path_too() -> None:
    late = (NOW - POLICY.backdate_window - timedelta(seconds=1)).isoformat()
    early = (NOW + timedelta(minutes=6)).isoformat()
    events = [
        {"specversion": "1.0", "id": "x", "source": "s", "type": "t", "subject": "acme"},
        {"specversion": "1.0", "id": "y", "source": "s", "type": "t", "subject": "a", "time": late},
        {
            "specversion": "1.0",
            "id": "z",
            "source": "s",
            "type": "t",
            "subject": "a",
            "time": early,
        },
    ]
    accepted, rejected = _parse(list(events))
    assert [event.id for _, event in accepted] == ["x"]
    assert [(r.index, r.errors[0].code) for r in rejected] == [
        (1, "time_too_old"),
        (2, "time_in_future"),
    ]


def test_a_time_without_an_offset_is_explained() -> None:
    event = {"specversion": "1.0", "id": "n", "source": "s", "type": "t", "subject": "a"}
    accepted, rejected = _parse([{**event, "time": "2026-03-29T12:00:00"}])
    assert accepted == []
    assert rejected[0].errors[0].pointer == "/0/time"


def test_a_server_process_settles_its_heap_once_built() -> None:
    script = (
        "import gc; from fairmeter.wiring import settle_heap, YOUNG_GENERATION_THRESHOLD;"
        "settle_heap(); print(gc.get_freeze_count() > 1000,"
        " gc.get_threshold()[0] == YOUNG_GENERATION_THRESHOLD)"
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["True", "True"]
