"""What the limits engine decided, counted: in memory for /metrics (by operation, reason,
policy and answer), and refused consumes per customer for the entitlements view, written
to the database in batches (a refusal must stay cheap: it records no usage)."""

from __future__ import annotations

import itertools
import logging
import threading

from fairmeter.domain.entitlements import Decision, Reason
from fairmeter.domain.pricing.charges import LimitPolicy
from fairmeter.storage.database import Database
from fairmeter.storage.limits import DenialKey, Limits

log = logging.getLogger("fairmeter.limits")

# (operation, reason, policy or "", allowed) -> decisions
MetricKey = tuple[str, str, str, bool]


class DecisionStats:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        # One `itertools.count` per key: `next()` on it is atomic under the GIL, so the hot
        # path counts without taking a lock (a lock only creates a key's first counter).
        self._decisions: dict[
            tuple[str, Reason, LimitPolicy | None, bool], itertools.count[int]
        ] = {}
        self._denials: dict[DenialKey, int] = {}
        self.unavailable = 0  # decisions taken without the shared counters (fail open/closed)
        self.unrecorded = 0  # batches of admitted usage that could not be written (admit())

    def count(self, operation: str, decision: Decision, period_start_us: int = 0) -> None:
        next(self.tally(operation, decision.reason, decision.policy, decision.allowed))
        if not decision.allowed and operation != "check":
            denial = (decision.customer, decision.meter, period_start_us, decision.reason.value)
            with self._lock:
                self._denials[denial] = self._denials.get(denial, 0) + 1

    def tally(
        self, operation: str, reason: Reason, policy: LimitPolicy | None, allowed: bool
    ) -> itertools.count[int]:
        """The counter of those decisions: `next()` on it counts one (a fast path keeps it)."""
        key = (operation, reason, policy, allowed)
        counter = self._decisions.get(key)
        if counter is None:
            with self._lock:
                counter = self._decisions.setdefault(key, itertools.count(1))
        return counter

    def decisions(self) -> dict[MetricKey, int]:
        with self._lock:
            found = list(self._decisions.items())
        return {
            (operation, reason.value, policy.value if policy else "", allowed): _value(counter)
            for (operation, reason, policy, allowed), counter in found
        }

    def flush(self, db: Database) -> None:
        """Write the refusals counted since the last flush (kept for the next on failure)."""
        with self._lock:
            pending, self._denials = self._denials, {}
        if not pending:
            return
        try:
            with db.write() as conn:
                Limits(conn).add_denials(pending)
        except Exception:
            log.exception("could not store %d denial counts; retrying later", len(pending))
            with self._lock:
                for key, number in pending.items():
                    self._denials[key] = self._denials.get(key, 0) + number


def _value(counter: itertools.count[int]) -> int:
    """How many times `next` was called on a counter started at 1 (its next value - 1)."""
    return int(repr(counter)[6:-1]) - 1
