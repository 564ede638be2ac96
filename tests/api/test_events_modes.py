"""POST /v1/events takes CloudEvents in structured, batch and binary mode; each item is
accepted once, recognised as a duplicate, or rejected with the pointer at fault."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import httpx
import pytest
from sqlalchemy import text

from fairmeter.domain.windows import to_us
from fairmeter.storage.database import Database

OK = {"accepted": 1, "duplicates": 0, "rejected": []}


def _stored(db: Database) -> list[tuple[str, str, str, str]]:
    with db.read() as conn:
        rows = conn.execute(text("SELECT source, id, subject, data FROM events ORDER BY id"))
        return [(r[0], r[1], r[2], r[3]) for r in rows]


@pytest.mark.parametrize("content_type", ["application/cloudevents+json", "application/json"])
def test_a_single_event_is_accepted_as_an_object(
    post_events, new_event, db: Database, content_type: str
) -> None:
    response = post_events(new_event("e1", data={"tokens": 5}), content_type)
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    assert response.json() == OK
    assert [(s, i, subj, json.loads(d)) for s, i, subj, d in _stored(db)] == [
        ("tests", "e1", "acme", {"tokens": 5})
    ]


@pytest.mark.parametrize(
    "content_type",
    [
        "application/cloudevents-batch+json",
        "application/json",
        "application/cloudevents-batch+json; charset=utf-8",
        "Application/JSON",
    ],
)
def test_a_batch_is_accepted_as_an_array(
    post_events, new_event, db: Database, content_type: str
) -> None:
    response = post_events([new_event(f"e{i}") for i in range(3)], content_type)
    assert response.json() == {"accepted": 3, "duplicates": 0, "rejected": []}
    assert [r[1] for r in _stored(db)] == ["e0", "e1", "e2"]


def test_a_binary_mode_event_takes_attributes_from_headers_and_data_from_the_body(
    api: httpx.Client, db: Database
) -> None:
    headers = {
        "ce-specversion": "1.0",
        "ce-id": "bin-1",
        "ce-source": "gateway",
        "ce-type": "api.request",
        "ce-subject": "acme",
        "ce-time": "2026-11-15T11:30:00+01:00",
        "content-type": "application/json",
    }
    response = api.post("/v1/events", content=b'{"tokens": 7}', headers=headers)
    assert response.json() == OK
    assert [(s, i, subj, json.loads(d)) for s, i, subj, d in _stored(db)] == [
        ("gateway", "bin-1", "acme", {"tokens": 7})
    ]
    with db.read() as conn:
        time_us = conn.execute(text("SELECT time_us FROM events")).scalar_one()
    assert time_us == to_us(datetime(2026, 11, 15, 10, 30, tzinfo=UTC))


def test_a_binary_mode_event_without_a_body_has_empty_data(api: httpx.Client) -> None:
    headers = {
        "ce-specversion": "1.0",
        "ce-id": "bin-2",
        "ce-source": "gateway",
        "ce-type": "api.request",
        "ce-subject": "acme",
    }
    assert api.post("/v1/events", headers=headers).json() == OK


def test_a_binary_mode_event_is_validated_like_any_other(api: httpx.Client, problem) -> None:
    headers = {"ce-specversion": "1.0", "ce-id": "bin-3", "ce-source": "gateway"}
    response = api.post("/v1/events", content=b"{}", headers=headers)
    body = problem(response, 422, "invalid_events")
    pointers = [e["pointer"] for e in body["rejected"][0]["errors"]]
    assert pointers == ["/type", "/subject"]


def test_binary_mode_data_must_be_json(api: httpx.Client, problem) -> None:
    headers = {
        "ce-specversion": "1.0",
        "ce-id": "bin-4",
        "ce-source": "gateway",
        "ce-type": "api.request",
        "ce-subject": "acme",
        "content-type": "application/json",
    }
    problem(api.post("/v1/events", content=b"tokens=7", headers=headers), 400, "malformed_body")


def test_an_event_sent_in_binary_then_structured_mode_is_counted_once(
    api: httpx.Client, post_events, new_event
) -> None:
    headers = {
        "ce-specversion": "1.0",
        "ce-id": "order%2017",
        "ce-source": "tests",
        "ce-type": "api.request",
        "ce-subject": "acme",
        "ce-time": "2026-11-15T10:00:00Z",
        "content-type": "application/json",
    }
    assert api.post("/v1/events", content=b'{"tokens": 3}', headers=headers).json() == OK
    again = post_events(new_event("order 17", data={"tokens": 3}), "application/cloudevents+json")
    assert again.json() == {"accepted": 0, "duplicates": 1, "rejected": []}


BINARY = {
    "ce-specversion": "1.0",
    "ce-id": "bin-5",
    "ce-source": "gateway",
    "ce-type": "api.request",
    "ce-subject": "acme",
    "content-type": "application/json",
}


def test_binary_mode_header_values_are_percent_decoded_utf_8(
    api: httpx.Client, db: Database
) -> None:
    headers = {**BINARY, "ce-id": "caf%C3%A9%20%22au%20lait%22%25", "ce-source": "%2Fgate%77ay"}
    assert api.post("/v1/events", headers=headers).json() == OK
    assert [row[:2] for row in _stored(db)] == [("/gateway", 'café "au lait"%')]


def test_binary_mode_utf_8_sent_without_percent_encoding_is_read_as_utf_8(
    api: httpx.Client, db: Database
) -> None:
    headers = {k.encode(): v.encode() for k, v in BINARY.items()}
    headers[b"ce-subject"] = "café".encode()
    assert api.post("/v1/events", headers=headers).json() == OK
    assert [row[2] for row in _stored(db)] == ["café"]


def test_a_binary_mode_time_is_read_as_rfc_3339_after_percent_decoding(
    api: httpx.Client, db: Database
) -> None:
    headers = {**BINARY, "ce-time": "2026-11-15T11%3A30%3A00%2B01%3A00"}
    assert api.post("/v1/events", headers=headers).json() == OK
    with db.read() as conn:
        time_us = conn.execute(text("SELECT time_us FROM events")).scalar_one()
    assert time_us == to_us(datetime(2026, 11, 15, 10, 30, tzinfo=UTC))


@pytest.mark.parametrize("time", ["2026-11-15", "15 Nov 2026 10:00:00 GMT", "2026-11-15T10:00"])
def test_a_binary_mode_time_that_is_not_rfc_3339_is_rejected(
    api: httpx.Client, problem, time: str
) -> None:
    response = api.post("/v1/events", headers={**BINARY, "ce-time": time})
    rejected = problem(response, 422, "invalid_events")["rejected"]
    assert [(r["id"], [e["pointer"] for e in r["errors"]]) for r in rejected] == [
        ("bin-5", ["/time"])
    ]


def test_a_binary_mode_header_that_is_not_utf_8_is_rejected(api: httpx.Client, problem) -> None:
    # %C0%A0 is an overlong encoding of a space, which the HTTP binding says to reject.
    response = api.post("/v1/events", headers={**BINARY, "ce-subject": "a%C0%A0b"})
    rejected = problem(response, 422, "invalid_events")["rejected"]
    assert [(r["id"], [e["pointer"] for e in r["errors"]]) for r in rejected] == [
        ("bin-5", ["/subject"])
    ]


def test_a_resent_event_is_a_duplicate_not_a_second_event(
    post_events, new_event, db: Database
) -> None:
    event = new_event("e1", data={"tokens": 5})
    assert post_events(event, "application/cloudevents+json").json() == OK
    again = post_events(event, "application/cloudevents+json")
    assert again.status_code == 200
    assert again.json() == {"accepted": 0, "duplicates": 1, "rejected": []}
    assert len(_stored(db)) == 1


def test_a_resend_with_reordered_data_keys_is_still_a_duplicate(post_events) -> None:
    first = b'{"specversion":"1.0","id":"e1","source":"s","type":"t","subject":"acme",'
    post_events(first + b'"data":{"a":1,"b":{"c":2,"d":3}}}', "application/json")
    again = post_events(first + b'"data":{"b":{"d":3,"c":2},"a":1}}', "application/json")
    assert again.json() == {"accepted": 0, "duplicates": 1, "rejected": []}


def test_a_batch_of_only_duplicates_succeeds(post_events, new_event) -> None:
    batch = [new_event(f"e{i}") for i in range(3)]
    post_events(batch)
    again = post_events(batch)
    assert again.status_code == 200
    assert again.json() == {"accepted": 0, "duplicates": 3, "rejected": []}


def test_the_same_id_from_another_source_is_another_event(post_events, new_event) -> None:
    batch = [new_event("e1", source="gateway"), new_event("e1", source="worker")]
    assert post_events(batch).json()["accepted"] == 2


def test_a_repeat_inside_one_batch_is_a_duplicate(post_events, new_event) -> None:
    batch = [new_event("e1"), new_event("e2"), new_event("e1")]
    assert post_events(batch).json() == {"accepted": 2, "duplicates": 1, "rejected": []}


def test_a_batch_with_duplicates_and_bad_items_keeps_the_good_ones(
    post_events, new_event, db: Database
) -> None:
    post_events([new_event("old")])
    batch = [
        new_event("good-1"),
        new_event("old"),
        new_event("bad-time", time="2026-11-16T12:00:00Z"),
        new_event("bad-subject", subject=""),
        new_event("good-2"),
        new_event("good-1"),
    ]
    response = post_events(batch)
    assert response.status_code == 200
    body = response.json()
    assert (body["accepted"], body["duplicates"]) == (2, 2)
    assert [(r["index"], r["id"]) for r in body["rejected"]] == [
        (2, "bad-time"),
        (3, "bad-subject"),
    ]
    assert [r["errors"][0]["pointer"] for r in body["rejected"]] == ["/2/time", "/3/subject"]
    assert sorted(r[1] for r in _stored(db)) == ["good-1", "good-2", "old"]


def test_a_batch_with_nothing_acceptable_is_an_invalid_events_problem(
    post_events, new_event, problem, db: Database
) -> None:
    batch = [new_event("a", subject=""), new_event("b", time="2020-01-01T00:00:00Z")]
    body = problem(post_events(batch), 422, "invalid_events")
    assert (body["accepted"], body["duplicates"]) == (0, 0)
    assert [(r["index"], r["errors"][0]["pointer"]) for r in body["rejected"]] == [
        (0, "/0/subject"),
        (1, "/1/time"),
    ]
    assert _stored(db) == []


def test_a_changed_event_under_a_recorded_identity_is_a_conflict(
    post_events, new_event, db: Database
) -> None:
    post_events([new_event("e1", data={"tokens": 5})])
    response = post_events([new_event("e2"), new_event("e1", data={"tokens": 500})])
    body = response.json()
    assert (body["accepted"], body["duplicates"]) == (1, 0)
    assert [(r["index"], r["errors"][0]["code"]) for r in body["rejected"]] == [
        (1, "event_conflict")
    ]
    stored = {i: json.loads(d) for _, i, _, d in _stored(db)}
    assert stored["e1"] == {"tokens": 5}


def test_a_changed_repeat_inside_one_batch_is_a_conflict(post_events, new_event) -> None:
    batch = [new_event("e1", data={"n": 1}), new_event("e1", data={"n": 2})]
    body = post_events(batch).json()
    assert (body["accepted"], body["duplicates"]) == (1, 0)
    assert [(r["index"], r["errors"][0]["pointer"]) for r in body["rejected"]] == [(1, "/1")]


def test_an_empty_batch_records_nothing(post_events, db: Database) -> None:
    response = post_events([])
    assert response.json() == {"accepted": 0, "duplicates": 0, "rejected": []}
    assert _stored(db) == []
