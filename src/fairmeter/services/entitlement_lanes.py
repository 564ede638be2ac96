"""The fast lane of `Enforcer.admit`: the call a middleware makes on every request.

Most admissions are the same question about the same customer and meter: within the
allowance, no bucket to ask, terms and counter warm. A `Lane` answers that one with what
the full path would answer (same counter lock and bookkeeping, same decision, same
metrics; the counter's lane tallies the usage for the writer) and gives up -- None, "take
the full path" -- on anything else: terms re-read or changed, another period, a counter
due to be re-read, a quantity not seen valid before, or usage that would pass the limit
(refusals, overage, throttling and upgrades are decided by the full path, with their
notices).
"""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from typing import TYPE_CHECKING

from fairmeter.domain.entitlements import Decision, Reason, decide
from fairmeter.domain.errors import FieldError, InvalidInput
from fairmeter.services.entitlement_recording import MAX_EVENTS
from fairmeter.services.entitlement_stats import DecisionStats
from fairmeter.services.entitlement_terms import Armed
from fairmeter.storage.counters_local import LaneGuard

if TYPE_CHECKING:
    from fairmeter.storage.counters_local import Lane as CounterLane

_WITHIN = Reason.WITHIN_ALLOWANCE


class Lane:
    """`lane.counter.admit(quantity)`: admit and count, the usage after it, or None (take
    the full path). `counter` is the counter's own lane (`storage.counters_local.Lane`),
    guarded by these terms: one call, one lock. `memo` is for a caller's use (what it
    derives from the terms once, like the answer's fixed fields)."""

    __slots__ = ("armed", "counter", "memo")

    def __init__(self, armed: Armed, counter: CounterLane) -> None:
        self.armed = armed
        self.counter = counter
        self.memo: object = None

    def admit(self, quantity: Decimal) -> Decision | None:
        """`counter.admit`, answered as the full path's Decision (`decide`, not a copy)."""
        used = self.counter.admit(quantity)
        return None if used is None else decide(self.armed.terms, allowed=True, usage=used)


def lane_guard(
    armed: Armed,
    unit: Decimal,
    stats: DecisionStats,
    *,
    now_ns: Callable[[], int],
    notify: Callable[[CounterLane], object],
) -> LaneGuard:
    """What the counter's lane checks for these terms: they are the cache's (not re-read,
    not invalidated) and fresh, within the period; a quantity a meter takes; usage within
    the allowance only (past the limit, the reason and overage differ). Its admissions are
    tagged (armed, period) for the writer and counted in the metrics as the full path
    counts them."""
    assert armed.period is not None
    terms = armed.terms
    counts_events = armed.counts_events
    return LaneGuard(
        now_ns=now_ns,
        gate=armed,  # open until fresh_until_us (within the period), or retired
        key=armed.key,
        unit=unit,
        accepts=lambda quantity: quantity_problem(counts_events, quantity) is None,
        bound=None if terms.limit is None else terms.limit.limit,
        tally=stats.tally("admit", _WITHIN, terms.policy, True),
        notify=notify,
        tag=(armed, armed.period),
    )


def require_quantity(armed: Armed, quantity: Decimal) -> None:
    problem = quantity_problem(armed.counts_events, quantity)
    if problem:
        detail = f"quantity {problem}"
        raise InvalidInput(detail, errors=(FieldError("/quantity", problem),))


def quantity_problem(counts_events: bool, quantity: Decimal) -> str | None:
    """What makes `quantity` unusable for the meter, or None."""
    if type(quantity) is not Decimal or not quantity.is_finite() or quantity <= 0:
        return "must be a positive decimal"
    if counts_events and not (quantity <= MAX_EVENTS and quantity % 1 == 0):
        return f"must be a whole number from 1 to {MAX_EVENTS} for a count meter"
    return None
