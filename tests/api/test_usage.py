"""GET /v1/meters/{key}/usage: windows tile the range in a time zone; values are decimal
strings computed by each meter's aggregation. The clock stands at 2026-11-15T12:00Z.

The expectations below are worked out by hand from EVENTS."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

# (id, subject, time, tokens, model, user)
EVENTS = [
    ("e1", "acme", "2026-11-15T09:10:00Z", 10, "a", "u1"),
    ("e2", "acme", "2026-11-15T09:50:00Z", 2.5, "b", "u2"),
    ("e3", "acme", "2026-11-15T10:05:00Z", 7, "a", "u1"),
    ("e4", "acme", "2026-11-14T23:30:00Z", 100, "a", "u3"),  # Nov 15 in Madrid
    ("e5", "acme", "2026-11-01T00:30:00Z", 1, "b", "u2"),
    ("e6", "acme", "2026-10-31T23:30:00Z", 4, "b", "u4"),  # Nov 1 in Madrid
    ("e7", "beta", "2026-11-15T09:20:00Z", 5, "a", "u9"),
    ("e8", "ghost", "2026-11-15T09:30:00Z", 1000, "a", "u1"),  # no such customer
]


@pytest.fixture
def usage(api: httpx.Client, new_meter, new_customer, new_event, post_events) -> Any:
    """Meters of every aggregation over EVENTS; returns a function that queries usage."""
    new_customer("acme", timezone="Europe/Madrid")
    new_customer("beta")
    new_meter("calls")
    for aggregation in ("sum", "max", "latest"):
        new_meter(aggregation, aggregation, value_property="$.tokens", group_by={"model": "$.m"})
    new_meter("users", "unique_count", value_property="$.user")
    batch = [
        new_event(i, subject=s, time=t, data={"tokens": n, "m": m, "user": u})
        for i, s, t, n, m, u in EVENTS
    ]
    assert post_events(batch).json()["accepted"] == len(EVENTS)

    def query(meter: str, **params: str) -> httpx.Response:
        return api.get(f"/v1/meters/{meter}/usage", params=params)

    return query


def _values(response: httpx.Response) -> list[tuple[str, str, str | None]]:
    assert response.status_code == 200, response.text
    return [(r["customer"], r["from"], r["value"]) for r in response.json()["data"]]


HOURS = {"from": "2026-11-15T09:00:00Z", "to": "2026-11-15T11:00:00Z", "window": "hour"}
H9, H10 = "2026-11-15T09:00:00Z", "2026-11-15T10:00:00Z"


@pytest.mark.parametrize(
    ("meter", "acme_9", "acme_10", "beta_9", "beta_10"),
    [
        ("calls", "2", "1", "1", "0"),
        ("sum", "12.5", "7", "5", "0"),
        ("max", "10", "7", "5", None),
        ("latest", "2.5", "7", "5", None),
        ("users", "2", "1", "1", "0"),
    ],
)
def test_each_aggregation_per_hour_and_customer(
    usage, meter: str, acme_9: str, acme_10: str, beta_9: str, beta_10: str | None
) -> None:
    assert _values(usage(meter, **HOURS)) == [
        ("acme", H9, acme_9),
        ("acme", H10, acme_10),
        ("beta", H9, beta_9),
        ("beta", H10, beta_10),
    ]


def test_windows_are_half_open_and_tile_the_range(usage) -> None:
    rows = usage("calls", customer="acme", **HOURS).json()["data"]
    assert [(r["from"], r["to"]) for r in rows] == [
        (H9, H10),
        (H10, "2026-11-15T11:00:00Z"),
    ]


@pytest.mark.parametrize(
    ("start", "end", "expected"),
    [
        ("2026-11-15T09:05:00Z", "2026-11-15T09:55:00Z", "12.5"),
        ("2026-11-15T09:10:00Z", "2026-11-15T09:50:00Z", "10"),
        ("2026-11-15T09:10:00.000001Z", "2026-11-15T09:50:00.000001Z", "2.5"),
        ("2026-11-15T09:11:00Z", "2026-11-15T09:49:00Z", "0"),
        ("2026-11-15T09:00:00Z", "2026-11-15T10:05:00.000001Z", "19.5"),
    ],
)
def test_a_range_off_the_rollup_grid_counts_each_event_inside_it(
    usage, start: str, end: str, expected: str
) -> None:
    response = usage("sum", customer="acme", timezone="UTC", **{"from": start, "to": end})
    assert [v for _, _, v in _values(response)] == [expected]


def test_days_in_utc(usage) -> None:
    days = {"from": "2026-11-14T00:00:00Z", "to": "2026-11-16T00:00:00Z", "window": "day"}
    response = usage("sum", customer="acme", timezone="UTC", **days)
    assert _values(response) == [
        ("acme", "2026-11-14T00:00:00Z", "100"),
        ("acme", "2026-11-15T00:00:00Z", "19.5"),
    ]


def test_days_in_madrid_start_at_23_utc_in_winter(usage) -> None:
    days = {"from": "2026-11-13T23:00:00Z", "to": "2026-11-15T23:00:00Z", "window": "day"}
    response = usage("sum", customer="acme", timezone="Europe/Madrid", **days)
    assert response.json()["timezone"] == "Europe/Madrid"
    assert _values(response) == [
        ("acme", "2026-11-13T23:00:00Z", "0"),
        ("acme", "2026-11-14T23:00:00Z", "119.5"),
    ]


def test_the_customers_time_zone_applies_when_none_is_asked(usage) -> None:
    days = {"from": "2026-11-13T23:00:00Z", "to": "2026-11-15T23:00:00Z", "window": "day"}
    response = usage("calls", customer="acme", **days)
    assert response.json()["timezone"] == "Europe/Madrid"
    assert [v for _, _, v in _values(response)] == ["0", "4"]


def test_months_follow_the_zone_across_the_summer_time_change(usage) -> None:
    utc = usage(
        "calls",
        timezone="UTC",
        customer="acme",
        window="month",
        **{"from": "2026-10-01T00:00:00Z", "to": "2026-12-01T00:00:00Z"},
    )
    assert _values(utc) == [
        ("acme", "2026-10-01T00:00:00Z", "1"),
        ("acme", "2026-11-01T00:00:00Z", "5"),
    ]
    madrid = usage(
        "calls",
        timezone="Europe/Madrid",
        customer="acme",
        window="month",
        **{"from": "2026-09-30T22:00:00Z", "to": "2026-11-30T23:00:00Z"},
    )
    assert _values(madrid) == [
        ("acme", "2026-09-30T22:00:00Z", "0"),  # Oct 1 00:00 CEST
        ("acme", "2026-10-31T23:00:00Z", "6"),  # Nov 1 00:00 CET
    ]


def test_the_range_defaults_to_this_month_until_now(usage) -> None:
    response = usage("sum", customer="acme", timezone="UTC")
    body = response.json()
    assert (body["meter"], body["window"], body["timezone"]) == ("sum", "none", "UTC")
    assert [(r["from"], r["to"], r["value"]) for r in body["data"]] == [
        ("2026-11-01T00:00:00Z", "2026-11-15T12:00:00Z", "120.5")
    ]


def test_the_default_month_starts_at_midnight_in_the_zone(usage) -> None:
    response = usage("sum", customer="acme")
    assert [(r["from"], r["to"], r["value"]) for r in response.json()["data"]] == [
        ("2026-10-31T23:00:00Z", "2026-11-15T12:00:00Z", "124.5")
    ]


def test_a_range_that_ends_in_the_future_is_allowed(usage) -> None:
    response = usage("calls", customer="beta", **{"to": "2027-01-01T00:00:00Z"})
    assert [v for _, _, v in _values(response)] == ["1"]


def test_group_by_splits_each_window_per_group(usage) -> None:
    rows = usage("sum", customer="acme", group_by="model", **HOURS).json()["data"]
    assert [(r["group"], r["from"], r["value"]) for r in rows] == [
        ({"model": "a"}, H9, "10"),
        ({"model": "a"}, H10, "7"),
        ({"model": "b"}, H9, "2.5"),
        ({"model": "b"}, H10, "0"),
    ]


def test_without_group_by_the_groups_are_merged(usage) -> None:
    rows = usage("max", customer="acme", **HOURS).json()["data"]
    assert [(r["group"], r["value"]) for r in rows] == [({}, "10"), ({}, "7")]


def test_an_event_without_the_group_value_has_a_null_group(usage, new_event, post_events) -> None:
    event = new_event("nogroup", time="2026-11-15T09:40:00Z", data={"tokens": 3, "user": "u1"})
    assert post_events([event]).json()["accepted"] == 1
    rows = usage(
        "sum", customer="acme", group_by="model", window="none", **{"from": H9, "to": H10}
    ).json()["data"]
    assert [(r["group"], r["value"]) for r in rows] == [
        ({"model": None}, "3"),
        ({"model": "a"}, "10"),
        ({"model": "b"}, "2.5"),
    ]


def test_values_are_decimal_strings_never_floats(usage, new_event, post_events) -> None:
    tiny = [
        new_event(f"tiny{i}", time="2026-11-15T09:45:00Z", data={"tokens": n, "user": "u1"})
        for i, n in enumerate((0.1, 0.2))
    ]
    assert post_events(tiny).json()["accepted"] == 2
    rows = usage("sum", **HOURS).json()["data"]
    assert all(isinstance(r["value"], str) for r in rows)
    assert rows[0]["value"] == "12.8"  # 12.5 + 0.1 + 0.2, exactly


def test_a_resent_event_is_counted_once(usage, new_event, post_events) -> None:
    event = new_event("e1", time=EVENTS[0][2], data={"tokens": 10, "m": "a", "user": "u1"})
    assert post_events([event]).json()["duplicates"] == 1
    assert _values(usage("calls", customer="acme", **HOURS))[0][2] == "2"


def test_usage_lists_only_known_customers(usage) -> None:
    customers = {r["customer"] for r in usage("calls", **HOURS).json()["data"]}
    assert customers == {"acme", "beta"}


def test_a_customer_without_events_gets_zero(usage, new_customer) -> None:
    new_customer("idle")
    assert _values(usage("calls", customer="idle", window="none", **{"from": H9})) == [
        ("idle", H9, "0")
    ]
    assert _values(usage("max", customer="idle", window="none", **{"from": H9})) == [
        ("idle", H9, None)
    ]


def test_an_unknown_customer_is_not_found(usage, problem) -> None:
    problem(usage("calls", customer="ghost"), 404, "not_found")


def test_an_unknown_group_is_rejected(usage, problem) -> None:
    body = problem(usage("sum", group_by="model,colour"), 422, "invalid_input")
    assert [e["pointer"] for e in body["errors"]] == ["/group_by"]


@pytest.mark.parametrize(
    ("params", "pointer"),
    [
        ({"from": "2026-11-15T10:00:00Z", "to": "2026-11-15T10:00:00Z"}, "/from"),
        ({"from": "2026-11-15T11:00:00Z", "to": "2026-11-15T10:00:00Z"}, "/from"),
        ({"from": "2026-11-20T00:00:00Z"}, "/from"),
        ({"from": "yesterday"}, "/from"),
        ({"from": "2026-11-15T10:00:00"}, "/from"),
        ({"to": "2026-11-15"}, "/to"),
        ({"timezone": "Mars/Olympus_Mons"}, "/timezone"),
        ({"window": "fortnight"}, "/window"),
    ],
)
def test_a_bad_range_is_rejected_naming_the_parameter(
    usage, problem, params: dict[str, str], pointer: str
) -> None:
    body = problem(usage("calls", customer="acme", **params), 422, "invalid_input")
    assert [e["pointer"] for e in body["errors"]] == [pointer]


@pytest.mark.parametrize(
    ("start", "end", "window"),
    [
        ("2020-01-01", "2026-01-01", "hour"),
        # Millions of windows: refused from the range's length, before any is built.
        ("1970-01-02", "2999-01-01", "hour"),
        ("1970-01-02", "2999-01-01", "day"),
        ("1970-01-02", "2999-01-01", "month"),
    ],
)
def test_too_many_windows_are_refused(usage, problem, start: str, end: str, window: str) -> None:
    span = {"from": f"{start}T00:00:00Z", "to": f"{end}T00:00:00Z", "window": window}
    body = problem(usage("calls", **span), 422, "invalid_input")
    assert [e["pointer"] for e in body["errors"]] == ["/window"]


def test_hours_in_a_half_hour_zone_start_at_half_past_utc(usage) -> None:
    hours = {"from": "2026-11-15T08:30:00Z", "to": "2026-11-15T10:30:00Z", "window": "hour"}
    response = usage("calls", customer="acme", timezone="Asia/Kolkata", **hours)
    assert [(f, v) for _, f, v in _values(response)] == [
        ("2026-11-15T08:30:00Z", "1"),
        ("2026-11-15T09:30:00Z", "2"),
    ]


def test_the_autumn_clock_change_day_lasts_25_hours(usage, new_event, post_events) -> None:
    repeated_hour = [
        new_event(f"dst{i}", time=t, data={"tokens": 1, "user": "u1"})
        for i, t in enumerate(("2026-10-25T00:30:00Z", "2026-10-25T01:30:00Z"))
    ]
    assert post_events(repeated_hour).json()["accepted"] == 2
    day = {"from": "2026-10-24T22:00:00Z", "to": "2026-10-25T23:00:00Z", "window": "day"}
    rows = usage("calls", customer="acme", timezone="Europe/Madrid", **day).json()["data"]
    assert [(r["from"], r["to"], r["value"]) for r in rows] == [
        ("2026-10-24T22:00:00Z", "2026-10-25T23:00:00Z", "2")
    ]
    hours = {"from": "2026-10-25T00:00:00Z", "to": "2026-10-25T02:00:00Z", "window": "hour"}
    rows = usage("calls", customer="acme", timezone="Europe/Madrid", **hours).json()["data"]
    assert [(r["from"], r["value"]) for r in rows] == [
        ("2026-10-25T00:00:00Z", "1"),  # 02:00-03:00 CEST
        ("2026-10-25T01:00:00Z", "1"),  # 02:00-03:00 CET, the same wall-clock hour again
    ]
