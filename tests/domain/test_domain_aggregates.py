"""Partials merge: any split of the events aggregates to what the whole list does."""

from __future__ import annotations

import itertools
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fairmeter.domain.aggregates import Partial, aggregate
from fairmeter.domain.meters import Aggregation

NUMERIC = [Aggregation.COUNT, Aggregation.SUM, Aggregation.MAX, Aggregation.LATEST]
# Few distinct times so that `latest` often has to break ties.
TIMES = st.integers(0, 5)
NUMBERS = st.builds(
    lambda n, places: Decimal(n).scaleb(-places),
    st.integers(-(10**9), 10**9),
    st.integers(0, 6),
)
Item = tuple[Decimal | str, int]


def _expected(items: list[Item], aggregation: Aggregation) -> Decimal | None:
    """Each aggregation computed directly from its definition."""
    if aggregation is Aggregation.COUNT:
        return Decimal(len(items))
    if aggregation is Aggregation.UNIQUE_COUNT:
        return Decimal(len({value for value, _ in items}))
    numbers = [(value, time) for value, time in items if isinstance(value, Decimal)]
    if aggregation is Aggregation.SUM:
        return sum((value for value, _ in numbers), Decimal(0))
    if not numbers:
        return None
    if aggregation is Aggregation.MAX:
        return max(value for value, _ in numbers)
    last = max(time for _, time in numbers)
    return max(value for value, time in numbers if time == last)


@st.composite
def split_items(draw: st.DrawFn) -> tuple[Aggregation, list[Item], list[list[Item]]]:
    aggregation = draw(st.sampled_from(list(Aggregation)))
    values = st.text("abcde", max_size=2) if aggregation is Aggregation.UNIQUE_COUNT else NUMBERS
    items: list[Item] = draw(st.lists(st.tuples(values, TIMES), max_size=30))
    shuffled = draw(st.permutations(items))
    cuts = sorted(draw(st.lists(st.integers(0, len(items)), max_size=6)))
    bounds = [0, *cuts, len(items)]
    parts = [list(shuffled[a:b]) for a, b in itertools.pairwise(bounds)]
    return aggregation, items, parts


@given(split_items())
def test_merging_the_partials_of_any_split_equals_aggregating_the_whole(
    case: tuple[Aggregation, list[Item], list[list[Item]]],
) -> None:
    aggregation, items, parts = case
    merged = Partial()
    for part in parts:
        merged.merge(aggregate(part))
    assert merged.value(aggregation) == aggregate(items).value(aggregation)
    assert merged.value(aggregation) == _expected(items, aggregation)


@given(split_items())
def test_merge_order_does_not_change_the_result(
    case: tuple[Aggregation, list[Item], list[list[Item]]],
) -> None:
    aggregation, _, parts = case
    forward, backward = Partial(), Partial()
    for part in parts:
        forward.merge(aggregate(part))
    for part in reversed(parts):
        backward.merge(aggregate(part))
    assert forward.value(aggregation) == backward.value(aggregation)


def test_latest_breaks_a_tie_on_time_by_the_larger_value() -> None:
    first = aggregate([(Decimal(3), 10)])
    second = aggregate([(Decimal(7), 10)])
    first.merge(second)
    assert first.value(Aggregation.LATEST) == Decimal(7)
    assert aggregate([(Decimal(7), 10), (Decimal(3), 10)]).value(Aggregation.LATEST) == 7


@pytest.mark.parametrize("aggregation", list(Aggregation))
def test_an_empty_partial_counts_zero_and_has_no_maximum_or_latest(
    aggregation: Aggregation,
) -> None:
    value = Partial().value(aggregation)
    if aggregation in (Aggregation.MAX, Aggregation.LATEST):
        assert value is None
    else:
        assert value == 0


def test_a_sum_of_storable_quantities_is_exact() -> None:
    big = Decimal("1234567890123456789012345.123456789012")
    assert aggregate([(big, 0)]).value(Aggregation.SUM) == big
