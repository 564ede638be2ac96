"""Overage under a spend cap, exactly: what usage past a limit costs, and the largest usage
whose overage stays within a cap (the ceiling a counter enforces under the overage policy).
"""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal
from functools import lru_cache

from fairmeter.domain.numbers import EXACT
from fairmeter.domain.pricing.charges import Charge
from fairmeter.domain.pricing.tiers import Volume

ZERO = Decimal(0)
GRID = 10**12  # quantities have at most 12 decimal places: usage lives on this grid
_MAX_GRID = 10**26 * GRID  # the largest storable quantity


def overage_amount(charge: Charge, limit: Decimal, usage: Decimal) -> Decimal:
    """What the usage past `limit` adds to the charge, exactly: the price of all billable
    usage less the price of the billable usage up to the limit (0 at or below it)."""
    if usage <= limit:
        return ZERO
    model, included = charge.model, charge.included
    billed = model.amount(max(EXACT.subtract(usage, included), ZERO))
    within = model.amount(max(EXACT.subtract(limit, included), ZERO))
    return EXACT.subtract(billed, within)


@lru_cache(maxsize=4096)
def usage_ceiling(charge: Charge, limit: Decimal, cap: Decimal) -> Decimal | None:
    """The largest usage (on the 12-decimal grid) such that no usage up to it costs more
    than `cap` in overage; None when no usage ever does.

    `overage_amount` is non-decreasing between the edges `_pieces` yields (every model but
    volume is non-decreasing everywhere; volume drops where a tier starts), so each piece
    is searched in turn, by bisection on grid points."""
    low = _to_grid(limit)
    for high in _pieces(charge, low):
        if _over(charge, limit, low + 1, cap):
            return _from_grid(low)
        if high is None:
            high = _first_over(charge, limit, low, cap)
            if high is None:
                return None
        elif not _over(charge, limit, high, cap):
            low = high
            continue
        return _from_grid(_last_within(charge, limit, low + 1, high, cap))
    raise AssertionError("the last piece is open")


def _pieces(charge: Charge, low: int) -> Iterator[int | None]:
    """Upper edges (grid points) of the usage ranges above `low` where the overage is
    non-decreasing; None for the open last range."""
    if isinstance(charge.model, Volume):
        included = _to_grid(charge.included)
        edges = [included] + [
            included + _to_grid(tier.up_to) for tier in charge.model.tiers if tier.up_to is not None
        ]
        yield from sorted(edge for edge in set(edges) if edge > low)
    yield None


def _over(charge: Charge, limit: Decimal, point: int, cap: Decimal) -> bool:
    return overage_amount(charge, limit, _from_grid(point)) > cap


def _first_over(charge: Charge, limit: Decimal, low: int, cap: Decimal) -> int | None:
    step = GRID
    while low + step <= _MAX_GRID:
        if _over(charge, limit, low + step, cap):
            return low + step
        step *= 2
    return _MAX_GRID if _over(charge, limit, _MAX_GRID, cap) else None


def _last_within(charge: Charge, limit: Decimal, good: int, bad: int, cap: Decimal) -> int:
    """The last grid point in [good, bad) within the cap, knowing `good` is and `bad` is not."""
    while bad - good > 1:
        middle = (good + bad) // 2
        if _over(charge, limit, middle, cap):
            bad = middle
        else:
            good = middle
    return good


def _to_grid(value: Decimal) -> int:
    return int(EXACT.multiply(value, GRID))


def _from_grid(point: int) -> Decimal:
    return EXACT.divide(Decimal(point), GRID).normalize(EXACT)
