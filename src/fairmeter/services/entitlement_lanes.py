"""The fast lane of `Enforcer.admit`: the call a middleware makes on every request.

Most admissions are the same question about the same customer and meter: within the
allowance, no bucket to ask, terms and counter warm. A `Lane` answers that one with what
the full path would answer (same counter lock and bookkeeping, same decision, same
metrics, same batch for the writer) and gives up -- None, "take the full path" -- on
anything else: terms re-read or changed, another period, a counter due to be re-read, a
quantity not seen valid before, or usage that would pass the limit (refusals, overage,
throttling and upgrades are decided by the full path, with their notices).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from decimal import Decimal
from typing import TYPE_CHECKING

from fairmeter.domain.entitlements import Decision, Reason, decide
from fairmeter.domain.errors import FieldError, InvalidInput
from fairmeter.services.entitlement_recording import MAX_EVENTS, PendingUsage, batch_key
from fairmeter.services.entitlement_stats import DecisionStats
from fairmeter.services.entitlement_terms import Armed
from fairmeter.storage.counters import CounterKey

if TYPE_CHECKING:
    from fairmeter.storage.counters_local import Lane as CounterLane

_WITHIN = Reason.WITHIN_ALLOWANCE


class Lane:
    __slots__ = (
        "_batch_key", "_bound", "_counter", "_entries", "_key", "_now_ns", "_pending", "_period",
        "_tally", "_until_ns", "_valid", "armed",
    )  # fmt: skip

    def __init__(
        self,
        armed: Armed,
        counter: CounterLane,
        stats: DecisionStats,
        pending: PendingUsage,
        valid: Decimal,
        *,
        entries: Mapping[CounterKey, Armed],
        now_ns: Callable[[], int],
    ) -> None:
        assert armed.period is not None
        terms = armed.terms
        self.armed, self._period, self._key = armed, armed.period, armed.key
        # Open while these terms are the cache's (not re-read, not invalidated) and fresh.
        self._entries, self._now_ns = entries, now_ns
        self._until_ns = min(armed.fresh_until_us, armed.period.end_us) * 1000
        self._counter = counter
        # Within the allowance only: past the limit, the reason and overage differ.
        self._bound = None if terms.limit is None else terms.limit.limit
        self._tally = stats.tally("admit", _WITHIN, terms.policy, True)
        self._pending = pending
        self._batch_key = batch_key(armed, armed.period)
        self._valid = valid  # the last quantity found valid (callers often reuse theirs)

    @property
    def limit(self) -> Decimal | None:
        return self._bound

    def take(self, quantity: Decimal) -> Decimal | None:
        """Admit and count `quantity`: the usage after it, or None (take the full path)."""
        if self._now_ns() >= self._until_ns or self._entries.get(self._key) is not self.armed:
            return None
        if quantity is not self._valid:
            if quantity_problem(self.armed.counts_events, quantity):
                return None  # the full path says what is wrong with it
            self._valid = quantity
        used = self._counter(quantity, self._bound)
        if used is None:
            return None
        next(self._tally)
        self._pending.add(self.armed, self._period, quantity, True, self._batch_key)
        return used

    def admit(self, quantity: Decimal) -> Decision | None:
        """`take`, answered as the full path's Decision (`decide`, not a copy of it)."""
        used = self.take(quantity)
        return None if used is None else decide(self.armed.terms, allowed=True, usage=used)


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
