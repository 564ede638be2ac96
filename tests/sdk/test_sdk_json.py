"""Request bodies carry quantities as exact JSON numbers, never via float."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal
from uuid import UUID

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fairmeter.sdk import _json


def test_tiny_decimal_is_written_as_exact_number() -> None:
    assert _json.dumps({"v": Decimal("0.000000000001")}) == b'{"v":0.000000000001}'


def test_thirty_digit_integer_decimal_is_written_exactly() -> None:
    digits = "123456789012345678901234567890"
    assert _json.dumps([Decimal(digits), int(digits)]) == f"[{digits},{digits}]".encode()


def test_decimal_trailing_zeros_are_kept() -> None:
    assert _json.dumps(Decimal("1.500")) == b"1.500"


def test_decimal_with_huge_exponent_stays_compact_and_valid() -> None:
    encoded = _json.dumps(Decimal("1E+1000"))
    assert encoded == b"1E+1000"
    assert json.loads(encoded, parse_float=Decimal) == Decimal("1E+1000")


@given(st.decimals(allow_nan=False, allow_infinity=False))
def test_any_finite_decimal_round_trips_exactly(value: Decimal) -> None:
    decoded = json.loads(_json.dumps(value), parse_float=Decimal, parse_int=Decimal)
    assert decoded == value


@pytest.mark.parametrize("value", [Decimal("NaN"), Decimal("Infinity"), float("nan")])
def test_non_finite_numbers_are_refused(value: object) -> None:
    with pytest.raises(ValueError, match="not a valid JSON number"):
        _json.dumps(value)


@given(st.text())
def test_any_string_round_trips(value: str) -> None:
    assert json.loads(_json.dumps({value: value})) == {value: value}


def test_scalars_and_containers_match_stdlib_json() -> None:
    value = {"a": [1, True, False, None, 'x\n"y"'], "b": (2, 3), "c": {}, "d": 1.5}
    assert json.loads(_json.dumps(value)) == json.loads(json.dumps(value))


def test_dates_and_uuids_are_written_as_strings() -> None:
    moment = datetime(2025, 1, 2, 3, 4, 5, tzinfo=timezone(timedelta(hours=2)))
    uid = UUID("12345678-1234-5678-1234-567812345678")
    encoded = json.loads(_json.dumps([moment, date(2025, 1, 2), uid]))
    assert encoded == ["2025-01-02T03:04:05+02:00", "2025-01-02", str(uid)]


def test_naive_datetime_is_refused() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        _json.dumps(datetime(2025, 1, 1))


def test_unknown_type_is_refused() -> None:
    with pytest.raises(TypeError, match="set"):
        _json.dumps({"v": {1, 2}})


def test_non_string_keys_are_refused() -> None:
    with pytest.raises(TypeError, match="keys must be str"):
        _json.dumps({1: "x"})


def test_rfc3339_keeps_the_offset() -> None:
    assert _json.rfc3339(datetime(2025, 3, 1, tzinfo=UTC)) == "2025-03-01T00:00:00+00:00"


def test_responses_parse_fractions_as_decimal() -> None:
    assert _json.loads(b'{"v": 0.1, "n": 3}') == {"v": Decimal("0.1"), "n": 3}
