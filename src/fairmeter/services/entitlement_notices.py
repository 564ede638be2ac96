"""Lifecycle notices of the limits engine, each sent once per customer, meter and period
by this process (the dedupe key makes a listener that stores them idempotent across
processes): limit.reached, access.throttled, plan.upgraded."""

from __future__ import annotations

import threading

from fairmeter.domain.entitlements import Decision, Reason, Terms
from fairmeter.domain.numbers import format_optional
from fairmeter.domain.windows import format_instant, from_us
from fairmeter.services.hooks import Hooks, Lifecycle, LifecycleNotice


class Notices:
    def __init__(self, hooks: Hooks) -> None:
        self.hooks = hooks
        self._sent: set[str] = set()
        self._lock = threading.Lock()

    def admitted(self, decision: Decision, terms: Terms, now_us: int) -> None:
        if decision.reason is Reason.THROTTLED:
            self._once(Lifecycle.ACCESS_THROTTLED, decision, terms, now_us)

    def refused(
        self, decision: Decision, terms: Terms, refused_by: str | None, now_us: int
    ) -> None:
        if refused_by == "ceiling":
            self._once(Lifecycle.LIMIT_REACHED, decision, terms, now_us)
        elif refused_by == "throttle":
            self._once(Lifecycle.ACCESS_THROTTLED, decision, terms, now_us)

    def upgraded(self, before: Terms, to_plan: str, now_us: int) -> LifecycleNotice:
        """The notice of an upgrade (stored by the caller in the change's transaction)."""
        key = f"plan.upgraded:{before.customer}:{before.plan}:{to_plan}:{now_us}"
        details: dict[str, object] = {
            "meter": before.meter,
            "plan": before.plan,
            "next_plan": to_plan,
            "limit": None if before.limit is None else format_optional(before.limit.limit),
            "period_start": format_instant(before.period_start_us),
            "period_end": format_instant(before.period_end_us),
        }
        return LifecycleNotice(
            Lifecycle.PLAN_UPGRADED, before.customer, from_us(now_us), details, key
        )

    def _once(self, kind: Lifecycle, decision: Decision, terms: Terms, now_us: int) -> None:
        key = f"{kind.value}:{terms.customer}:{terms.meter}:{terms.period_start_us}"
        if key in self._sent:
            return
        with self._lock:
            if key in self._sent:
                return
            self._sent.add(key)
        details: dict[str, object] = {
            "meter": terms.meter,
            "usage": format_optional(decision.usage),
            "limit": format_optional(decision.limit),
            "policy": None if decision.policy is None else decision.policy.value,
            "reason": decision.reason.value,
            "plan": terms.plan,
            "next_plan": terms.next_plan,
            "period_start": format_instant(terms.period_start_us),
            "period_end": format_instant(terms.period_end_us),
        }
        self.hooks.lifecycle(LifecycleNotice(kind, terms.customer, from_us(now_us), details, key))
