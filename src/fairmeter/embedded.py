"""The limits engine inside the provider's own process, for `MeteringMiddleware`.

`EmbeddedEngine` answers from the Enforcer's counters on the same database the fairmeter
server uses, without an HTTP round trip: `admit` decides and counts at once, and the usage
is written to the database in batches (see `Enforcer.admit` for the crash window). It lives
outside `fairmeter.sdk` because it imports the engine itself; the SDK never does.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any, Final, cast

from mypy_extensions import mypyc_attr

from fairmeter.config import Settings
from fairmeter.domain import entitlements
from fairmeter.domain.numbers import EXACT
from fairmeter.domain.windows import from_us
from fairmeter.sdk.decision import Decision
from fairmeter.services.entitlement_lanes import Lane
from fairmeter.services.runtime import Runtime
from fairmeter.wiring import build

__all__ = ["EmbeddedEngine", "to_sdk"]

# Decision's fields but usage and remaining, in order: see `_within_template`.
_Template = tuple[Any, ...]
# Final: compiled, a C static each, not a lookup in the module's dict per call.
_new_tuple: Final = tuple.__new__
_subtract: Final = EXACT.subtract


@mypyc_attr(allow_interpreted_subclasses=True)  # compiled or not, you may subclass it
class EmbeddedEngine:
    """An `Engine` over `runtime.limits`. Give a `runtime` you own, or a `database_url`
    (or full `settings`: Redis counters, fail-open/closed, ...) and the engine builds one
    and closes it in `close()`. Close it when the app stops, so batched usage is written.

    The customer and the meter must exist: an unknown one raises `NotFound`, and a bad
    quantity `InvalidInput` (a count meter takes whole numbers), as the server would."""

    def __init__(
        self,
        *,
        runtime: Runtime | None = None,
        database_url: str | None = None,
        settings: Settings | None = None,
    ) -> None:
        self._owns_runtime = runtime is None
        if runtime is None:
            if settings is None:
                if database_url is None:
                    raise ValueError("give a runtime, a database_url or settings")
                settings = Settings(database_url=database_url)
            runtime = build(settings)
        if runtime.limits is None:
            raise ValueError("this runtime enforces no limits (build it with fairmeter.wiring)")
        self.runtime = runtime
        self._limits = runtime.limits
        self._times = _Instants()
        self._lanes = self._limits.lanes

    async def consume(self, customer: str, meter: str, quantity: Decimal) -> Decision:
        return self.consume_now(customer, meter, quantity)

    def consume_now(self, customer: str, meter: str, quantity: Decimal) -> Decision:
        """`consume` without awaiting (the middleware calls this when an engine has it).

        Synchronous on purpose: a warm decision takes microseconds, less than a hop to a
        thread would. A cold one (first call of a customer in a period) reads the database.
        The common answer, admitted within the allowance, is built straight from the fast
        lane (see `fairmeter.services.entitlement_lanes`) as the SDK's value."""
        lane = self._lanes.get((customer, meter))
        if lane is not None:
            used = lane.counter.admit(quantity)  # compiled: a direct call
            if used is not None:
                memo = lane.memo
                t = self._within_template(lane) if memo is None else cast(_Template, memo)
                limit = t[5]
                left = None if limit is None else _subtract(limit, used)
                # Decision's fields in order (see `to_sdk`), as one tuple built in place: no
                # call to build them, no list to unpack into; indexed, not iterated.
                fields = (t[0], t[1], t[2], t[3], t[4], used, limit, left,
                          t[6], t[7], t[8], t[9], t[10], t[11], t[12])  # fmt: skip
                return _new_tuple(Decision, fields)
        return to_sdk(self._limits.admit(customer, meter, quantity), self._times)

    def _within_template(self, lane: Lane) -> _Template:
        """What every admission within the allowance in that lane shares: the decision's
        fields but `usage` and `remaining` (the limit where `usage` was), kept as the lane's
        memo."""
        terms = lane.armed.terms
        sample = to_sdk(entitlements.decide(terms, allowed=True, usage=Decimal(0)), self._times)
        template = (*sample[:5], sample.limit, *sample[8:])
        lane.memo = template
        return template

    def close(self) -> None:
        """Write the usage admitted so far; close the runtime too if the engine built it
        (a runtime you gave stays open, with its limits engine: you close it)."""
        if self._owns_runtime:
            self.runtime.close()  # closes the limits engine first, writing its batch
        else:
            self._limits.flush()

    async def aclose(self) -> None:
        self.close()


class _Instants:
    """µs -> datetime, remembering the last few: every call in a period shares its end."""

    def __init__(self) -> None:
        self._seen: dict[int, datetime] = {}

    def __call__(self, micros: int | None) -> datetime | None:
        if micros is None:
            return None
        instant = self._seen.get(micros)
        if instant is None:
            if len(self._seen) > 64:
                self._seen.clear()
            instant = self._seen[micros] = from_us(micros)
        return instant


def to_sdk(decision: entitlements.Decision, times: _Instants | None = None) -> Decision:
    """The engine's decision as the SDK's value (same fields, times as datetimes)."""
    instant = times or _Instants()
    # Positional, in Decision's field order: this runs once per request, and building the
    # tuple directly costs a quarter of passing fifteen keywords.
    return Decision._make(
        (
            decision.allowed,
            decision.reason.value,
            decision.customer,
            decision.meter,
            None if decision.policy is None else decision.policy.value,
            decision.usage,
            decision.limit,
            decision.remaining,
            decision.overage_amount,
            decision.currency,
            instant(decision.retry_after_us),
            instant(decision.resets_at_us),
            decision.plan,
            decision.upgraded_to,
            decision.duplicate,
        )
    )
