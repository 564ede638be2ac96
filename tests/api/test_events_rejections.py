"""Each bad event is rejected on its own, with a JSON Pointer to the field at fault,
while its good neighbours in the batch are stored. The clock stands at 2026-11-15T12:00Z."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest


def _rejection(post_events, good: dict[str, Any], bad: Any) -> dict[str, Any]:
    """Send [good, good, good, bad]; the good ones pass and the bad one's rejection returns."""
    batch = [{**good, "id": f"good-{i}"} for i in range(3)] + [bad]
    response = post_events(batch)
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["accepted"], body["duplicates"]) == (3, 0)
    assert [r["index"] for r in body["rejected"]] == [3]
    rejection: dict[str, Any] = body["rejected"][0]
    return rejection


def _pointers_and_codes(rejection: dict[str, Any]) -> list[tuple[str, str]]:
    return [(e["pointer"], e["code"]) for e in rejection["errors"]]


@pytest.mark.parametrize(
    ("time", "code"),
    [
        ("2026-11-15T12:05:01Z", "time_in_future"),
        ("2026-11-16T00:00:00+01:00", "time_in_future"),
        ("2026-10-11T11:59:59Z", "time_too_old"),
        ("2025-11-15T12:00:00Z", "time_too_old"),
    ],
)
def test_a_time_outside_the_accepted_range_is_rejected(
    post_events, new_event, time: str, code: str
) -> None:
    rejection = _rejection(post_events, new_event("x"), new_event("bad", time=time))
    assert rejection["id"] == "bad"
    assert _pointers_and_codes(rejection) == [("/3/time", code)]


@pytest.mark.parametrize(
    "time", ["2026-11-15T12:05:00Z", "2026-10-11T12:00:00Z", "2026-11-15T13:04:00+01:00"]
)
def test_a_time_on_the_edge_of_the_accepted_range_is_accepted(
    post_events, new_event, time: str
) -> None:
    assert post_events([new_event("edge", time=time)]).json()["accepted"] == 1


@pytest.mark.parametrize("time", ["2026-11-15T10:00:00", "2026-11-15", "yesterday", 1794744000])
def test_a_time_without_an_offset_is_rejected(post_events, new_event, time: object) -> None:
    rejection = _rejection(post_events, new_event("x"), new_event("bad", time=time))
    assert [e["pointer"] for e in rejection["errors"]] == ["/3/time"]


@pytest.mark.parametrize("field", ["id", "source", "type", "subject"])
@pytest.mark.parametrize("missing", [None, ""])
def test_a_missing_required_attribute_is_rejected_naming_it(
    post_events, new_event, field: str, missing: str | None
) -> None:
    bad = new_event("bad")
    if missing is None:
        del bad[field]
    else:
        bad[field] = missing
    rejection = _rejection(post_events, new_event("x"), bad)
    assert _pointers_and_codes(rejection) == [(f"/3/{field}", "required")]


def test_every_missing_attribute_is_named_at_once(post_events) -> None:
    response = post_events([{"specversion": "1.0"}])
    errors = response.json()["rejected"][0]["errors"]
    assert [e["pointer"] for e in errors] == ["/0/id", "/0/source", "/0/type", "/0/subject"]


@pytest.mark.parametrize("field", ["id", "source", "type", "subject"])
@pytest.mark.parametrize("value", [17, "x" * 257, {"a": 1}])
def test_an_attribute_that_is_not_a_short_string_is_rejected(
    post_events, new_event, field: str, value: object
) -> None:
    bad = {**new_event("bad"), field: value}
    rejection = _rejection(post_events, new_event("x"), bad)
    assert [e["pointer"] for e in rejection["errors"]] == [f"/3/{field}"]


@pytest.mark.parametrize("version", ["0.3", "1", 1.0, None])
def test_only_specversion_1_0_is_accepted(post_events, new_event, version: object) -> None:
    rejection = _rejection(
        post_events, new_event("x"), {**new_event("bad"), "specversion": version}
    )
    assert _pointers_and_codes(rejection) == [("/3/specversion", "unsupported_version")]


@pytest.mark.parametrize("data", [[1, 2], "tokens=5", 5, True])
def test_data_that_is_not_an_object_is_rejected(post_events, new_event, data: object) -> None:
    rejection = _rejection(post_events, new_event("x"), new_event("bad", data=data))
    assert _pointers_and_codes(rejection) == [("/3/data", "invalid_type")]


def test_an_item_that_is_not_an_object_is_rejected(post_events, new_event) -> None:
    rejection = _rejection(post_events, new_event("x"), "not an event")
    assert [e["pointer"] for e in rejection["errors"]] == ["/3"]


def test_nan_in_a_single_event_rejects_it(post_events, problem) -> None:
    raw = (
        b'{"specversion":"1.0","id":"e1","source":"s","type":"api.request",'
        b'"subject":"acme","data":{"x": NaN}}'
    )
    body = problem(post_events(raw, "application/cloudevents+json"), 422, "invalid_events")
    assert _pointers_and_codes(body["rejected"][0]) == [("/data/x", "non_finite")]


@pytest.mark.parametrize("constant", [b"Infinity", b"-Infinity", b"NaN"])
def test_a_non_finite_number_rejects_only_its_own_item(
    post_events, new_event, constant: bytes
) -> None:
    good = [new_event(f"good-{i}", data={"n": [1, 2]}) for i in range(3)]
    items = [_json(e) for e in good]
    items.insert(1, _json(new_event("bad")).replace(b"}", b',"data":{"n":[1,%s]}}' % constant))
    response = post_events(b"[" + b",".join(items) + b"]")
    body = response.json()
    assert (body["accepted"], body["duplicates"]) == (3, 0)
    assert [_pointers_and_codes(r) for r in body["rejected"]] == [[("/1/data/n/1", "non_finite")]]


def test_a_rejection_names_the_id_of_the_event_it_rejects(post_events, new_event) -> None:
    rejection = _rejection(post_events, new_event("x"), new_event("bad", time="2026-11-15"))
    assert rejection["id"] == "bad"


def test_a_rejection_for_a_non_finite_number_names_the_event_id(post_events, new_event) -> None:
    good = [_json(new_event(f"good-{i}")) for i in range(3)]
    bad = _json(new_event("bad")).replace(b"}", b',"data":{"n":NaN}}')
    body = post_events(b"[" + b",".join([*good, bad]) + b"]").json()
    assert [(r["index"], r["id"]) for r in body["rejected"]] == [(3, "bad")]


@pytest.mark.parametrize(
    "raw",
    [
        b'{"specversion":"1.0","id":"one","source":"s","type":"t","subject":"a","time":7}',
        b'{"specversion":"1.0","id":"one","source":"s","type":"t","subject":"a","data":{"x":NaN}}',
    ],
    ids=["bad-time", "nan"],
)
def test_a_rejected_single_event_is_named_by_its_id(post_events, problem, raw: bytes) -> None:
    body = problem(post_events(raw, "application/cloudevents+json"), 422, "invalid_events")
    assert [r["id"] for r in body["rejected"]] == ["one"]


@pytest.mark.parametrize("event_id", [None, 17, ["x"]], ids=["missing", "number", "array"])
def test_a_rejection_has_no_id_when_the_event_has_no_string_id(
    post_events, new_event, event_id: object
) -> None:
    bad = {**new_event("bad", time="2026-11-15"), "id": event_id}
    assert _rejection(post_events, new_event("x"), bad)["id"] is None


@pytest.fixture
def tokens_meter(new_meter) -> dict[str, Any]:
    meter: dict[str, Any] = new_meter("tokens", "sum", value_property="$.tokens")
    return meter


@pytest.mark.parametrize(
    "tokens",
    ["12", True, None, {"n": 1}, [1]],
    ids=["string", "boolean", "null", "object", "array"],
)
def test_a_sum_meter_rejects_a_value_that_is_not_a_number(
    post_events, new_event, tokens_meter, tokens: object
) -> None:
    bad = new_event("bad", data={"tokens": tokens})
    rejection = _rejection(post_events, new_event("x", data={"tokens": 1}), bad)
    assert _pointers_and_codes(rejection) == [("/3/data/tokens", "invalid_value")]


def test_a_sum_meter_rejects_an_event_without_its_value(
    post_events, new_event, tokens_meter
) -> None:
    rejection = _rejection(post_events, new_event("x", data={"tokens": 1}), new_event("bad"))
    assert _pointers_and_codes(rejection) == [("/3/data/tokens", "invalid_value")]


@pytest.mark.parametrize(
    "raw", [b"0.0000000000001", b"1e30", b"-1E+26", b"123456789012345678901234567"]
)
def test_a_value_that_cannot_be_stored_exactly_is_rejected(
    post_events, new_event, tokens_meter, raw: bytes
) -> None:
    bad = _json(new_event("bad")).replace(b"}", b',"data":{"tokens":%s}}' % raw)
    good = _json(new_event("good", data={"tokens": 1}))
    body = post_events(b"[" + good + b"," + bad + b"]").json()
    assert body["accepted"] == 1
    assert [_pointers_and_codes(r) for r in body["rejected"]] == [
        [("/1/data/tokens", "invalid_value")]
    ]


@pytest.mark.parametrize(
    "raw", [b"0.000000000001", b"1.5000000000000", b"1e25", b"99999999999999999999999999"]
)
def test_a_value_within_twelve_decimals_and_26_digits_is_accepted(
    post_events, new_event, tokens_meter, raw: bytes
) -> None:
    event = _json(new_event("ok")).replace(b"}", b',"data":{"tokens":%s}}' % raw)
    assert post_events(event, "application/json").json()["accepted"] == 1


def test_events_of_other_types_ignore_the_meter(post_events, new_event, tokens_meter) -> None:
    other = new_event("other", type="page.view", data={"tokens": "lots"})
    assert post_events([other]).json()["accepted"] == 1


def test_an_archived_meter_no_longer_judges_events(
    api: httpx.Client, post_events, new_event, tokens_meter
) -> None:
    api.post("/v1/meters/tokens/archive")
    assert post_events([new_event("e1", data={"tokens": "n/a"})]).json()["accepted"] == 1


def _json(event: dict[str, Any]) -> bytes:
    return json.dumps(event, separators=(",", ":")).encode()
