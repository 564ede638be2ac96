"""The upgrade policy: at the limit, the subscription moves to the plan's next plan now.

Two calls refused at the same limit at once must upgrade once, not twice: the change
happens under a per-customer lock, and only if the subscription is still on the plan
version the refused decision saw (otherwise the other call's upgrade is used). Across
server processes the same check runs under the subscription's row lock (`change_plan`'s
`expect`), so two processes refused at once upgrade once.
"""

from __future__ import annotations

import logging
import threading
from typing import TYPE_CHECKING

from fairmeter.domain.errors import Conflict, FairmeterError
from fairmeter.domain.subscriptions import ChangeAt
from fairmeter.domain.subscriptions import Reason as SegmentReason
from fairmeter.services.entitlement_notices import Notices
from fairmeter.services.entitlement_terms import Armed, TermsCache
from fairmeter.services.notifications import enqueue, from_notice
from fairmeter.services.subscriptions import change_plan, customer_subscription

if TYPE_CHECKING:
    from fairmeter.services.runtime import Runtime

log = logging.getLogger("fairmeter.limits")


class Upgrader:
    def __init__(self, rt: Runtime, terms: TermsCache, notices: Notices) -> None:
        self.rt, self.terms, self.notices = rt, terms, notices
        self._locks: dict[str, threading.Lock] = {}
        self._guard = threading.Lock()

    def upgrade(self, armed: Armed, now_us: int) -> Armed | None:
        """The terms after moving the customer to the next plan (or after another call
        did); None when it cannot move (no next plan, or the change was refused)."""
        seen = armed.terms
        target = seen.upgrades_to
        if target is None:
            return None
        with self._lock_for(seen.customer):
            self.terms.invalidate(seen.customer)
            current = self.terms.get(seen.customer, seen.meter, now_us)
            if (current.terms.plan, current.terms.plan_version) != (seen.plan, seen.plan_version):
                return current
            try:
                view = customer_subscription(self.rt.db, self.rt.clock, seen.customer)
                notice = self.notices.upgraded(seen, target, now_us)
                change_plan(
                    self.rt.db,
                    self.rt.clock,
                    view.subscription.id,
                    target,
                    ChangeAt.NOW,
                    reason=SegmentReason.UPGRADE,
                    expect=(seen.plan or "", seen.plan_version),
                    also=lambda conn: enqueue(conn, from_notice(notice), now_us),
                )
            except Conflict:
                pass  # another process moved it first: use its change
            except FairmeterError as exc:
                log.warning("could not upgrade %s to %s: %s", seen.customer, target, exc)
                return None
            self.terms.invalidate(seen.customer)
            upgraded = self.terms.get(seen.customer, seen.meter, now_us)
        if upgraded.terms.plan == seen.plan and upgraded.terms.plan_version == seen.plan_version:
            return None
        return upgraded

    def _lock_for(self, customer: str) -> threading.Lock:
        with self._guard:
            return self._locks.setdefault(customer, threading.Lock())
