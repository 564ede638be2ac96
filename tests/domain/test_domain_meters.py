"""Meter definitions are parsed strictly; each event contributes an exact value or none."""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal

import pytest

from fairmeter.domain.errors import InvalidInput
from fairmeter.domain.meters import Aggregation, EventNotMetered, JsonPath, Meter, parse_meter

DOCUMENTED = {
    "key": "tokens",
    "name": "LLM tokens",
    "event_type": "api.request",
    "aggregation": "sum",
    "value_property": "$.tokens",
    "group_by": {"model": "$.model"},
    "unit": "tokens",
}
VALUED = ["sum", "max", "unique_count", "latest"]


def _pointers(body: Mapping[str, object]) -> list[str]:
    with pytest.raises(InvalidInput) as caught:
        parse_meter(body)
    return [error.pointer for error in caught.value.errors]


def _meter(aggregation: str, path: str = "$.v", **groups: str) -> Meter:
    body: dict[str, object] = {"key": "m", "event_type": "t", "aggregation": aggregation}
    if aggregation != "count":
        body["value_property"] = path
    if groups:
        body["group_by"] = groups
    return parse_meter(body)


def test_the_documented_meter_body_is_accepted() -> None:
    meter = parse_meter(DOCUMENTED)
    assert meter.key == "tokens"
    assert meter.name == "LLM tokens"
    assert meter.event_type == "api.request"
    assert meter.aggregation is Aggregation.SUM
    assert meter.value_property == JsonPath("$.tokens")
    assert meter.group_by == (("model", JsonPath("$.model")),)
    assert meter.unit == "tokens"


def test_name_defaults_to_the_key() -> None:
    meter = parse_meter({"key": "calls", "event_type": "api.request", "aggregation": "count"})
    assert meter.name == "calls"
    assert meter.value_property is None
    assert meter.group_by == ()


def test_an_unknown_aggregation_is_refused_at_its_field() -> None:
    assert _pointers({**DOCUMENTED, "aggregation": "average"}) == ["/aggregation"]
    assert _pointers({**DOCUMENTED, "aggregation": 3}) == ["/aggregation"]


@pytest.mark.parametrize("aggregation", VALUED)
def test_a_valued_aggregation_needs_a_value_property(aggregation: str) -> None:
    body = {**DOCUMENTED, "aggregation": aggregation}
    del body["value_property"]
    assert _pointers(body) == ["/value_property"]


def test_a_count_meter_takes_no_value_property() -> None:
    assert _pointers({**DOCUMENTED, "aggregation": "count"}) == ["/value_property"]


@pytest.mark.parametrize("path", ["$..a", "$.a[0]", "$.*", "a.b", "$", "$.a b", "$.", 7])
def test_only_plain_member_paths_are_accepted(path: object) -> None:
    assert _pointers({**DOCUMENTED, "value_property": path}) == ["/value_property"]


@pytest.mark.parametrize(
    ("group_by", "pointer"),
    [
        (["$.model"], "/group_by"),
        ({f"g{i}": "$.a" for i in range(9)}, "/group_by"),
        ({"Model": "$.model"}, "/group_by/Model"),
        ({"model": "$..model"}, "/group_by/model"),
        ({"model": 1}, "/group_by/model"),
    ],
)
def test_a_bad_group_by_is_refused_at_its_field(group_by: object, pointer: str) -> None:
    assert _pointers({**DOCUMENTED, "group_by": group_by}) == [pointer]


def test_every_bad_field_is_reported_at_once() -> None:
    pointers = _pointers({"key": "Bad Key", "aggregation": "avg", "value_property": "x"})
    assert set(pointers) == {"/key", "/event_type", "/aggregation", "/value_property"}


def test_a_count_meter_measures_one_per_event() -> None:
    assert _meter("count").measure({}) == Decimal(1)


@pytest.mark.parametrize("aggregation", ["sum", "max", "latest"])
@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (5, Decimal(5)),
        (Decimal("0.000000000001"), Decimal("0.000000000001")),
        (-3, Decimal(-3)),
        (10**25, Decimal(10**25)),
    ],
)
def test_a_numeric_meter_measures_the_exact_number(
    aggregation: str, raw: object, expected: Decimal
) -> None:
    value = _meter(aggregation).measure({"v": raw})
    assert isinstance(value, Decimal)
    assert value == expected


@pytest.mark.parametrize("aggregation", ["sum", "max", "latest"])
@pytest.mark.parametrize(
    "data",
    [
        {},
        {"v": None},
        {"v": "12"},
        {"v": True},
        {"v": Decimal("NaN")},
        {"v": Decimal("Infinity")},
        {"v": Decimal("0.0000000000001")},
        {"v": 10**26},
        {"v": {"n": 1}},
        {"v": [1]},
    ],
)
def test_an_event_without_a_usable_number_is_not_metered(
    aggregation: str, data: dict[str, object]
) -> None:
    with pytest.raises(EventNotMetered):
        _meter(aggregation).measure(data)


def test_unique_count_keys_numbers_by_value_and_keeps_strings_apart() -> None:
    meter = _meter("unique_count")
    assert meter.measure({"v": 1}) == meter.measure({"v": Decimal("1.00")})
    assert meter.measure({"v": "1"}) != meter.measure({"v": 1})
    assert meter.measure({"v": True}) != meter.measure({"v": "true"})
    with pytest.raises(EventNotMetered):
        meter.measure({"v": {"a": 1}})
    with pytest.raises(EventNotMetered):
        meter.measure({})


def test_a_nested_path_reads_nested_members_only() -> None:
    meter = _meter("sum", "$.usage.tokens")
    assert meter.measure({"usage": {"tokens": 7}}) == Decimal(7)
    with pytest.raises(EventNotMetered):
        meter.measure({"usage": [{"tokens": 7}]})
    with pytest.raises(EventNotMetered):
        meter.measure({"usage": 7})


def test_a_missing_group_value_groups_as_none() -> None:
    meter = _meter("count", model="$.model", region="$.where.region")
    assert meter.group_of({"model": "large"}) == (("model", "large"), ("region", None))
    assert meter.group_of({"model": {"x": 1}, "where": {"region": "eu"}}) == (
        ("model", None),
        ("region", "eu"),
    )


def test_group_values_are_text_with_one_spelling_per_value() -> None:
    meter = _meter("count", tier="$.tier")
    assert meter.group_of({"tier": True}) == (("tier", "true"),)
    assert meter.group_of({"tier": 2}) == (("tier", "2"),)
    assert meter.group_of({"tier": Decimal("2.50")}) == (("tier", "2.5"),)
    assert meter.group_of({"tier": Decimal("100.0")}) == meter.group_of({"tier": 100})


def test_a_meter_guards_its_value_property_invariant() -> None:
    with pytest.raises(ValueError):
        Meter("m", "m", "t", Aggregation.SUM, None, (), "")
    with pytest.raises(ValueError):
        Meter("m", "m", "t", Aggregation.COUNT, JsonPath("$.v"), (), "")
