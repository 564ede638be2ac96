"""Subscriptions: which plan a customer is on over time, and the periods it is billed for.

A subscription's life is cut into segments, each the time one plan version was in force:
[start, end), the last one open (end None) while the subscription runs. Periods come from
the subscription's anchor in the customer's zone (`domain.periods`); the first period is
partial when the subscription starts inside one (a `billing_anchor` other than the start),
and the last one is cut where a subscription canceled "now" ended.

Rules, each a pure function below:
- `change_now`: the open segment ends at that instant and a segment on the new plan starts.
- `schedule_change`: the open segment is set to end at the current period's end and the
  new plan waits in `pending_plan_*`; `materialize` starts its segment once that instant
  has passed (lazily: whoever reads the subscription later, at any time after).
- `cancel_now` ends the subscription and its segments at that instant;
  `schedule_cancel` sets `cancel_at_us` to the period's end (it replaces a pending
  change), and `materialize` ends the subscription then.
A canceled subscription accepts no change; a customer has at most one active subscription.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime
from decimal import Decimal
from enum import StrEnum

from fairmeter.domain.errors import Conflict, FieldError, InvalidInput, NotFound
from fairmeter.domain.periods import Anchor, period_containing
from fairmeter.domain.windows import Span, from_us, to_us


class Status(StrEnum):
    ACTIVE = "active"
    CANCELED = "canceled"


class ChangeAt(StrEnum):
    NOW = "now"
    PERIOD_END = "period_end"


class Reason(StrEnum):
    """Why a segment started."""

    START = "start"
    CHANGE = "change"
    UPGRADE = "upgrade"
    SCHEDULED_CHANGE = "scheduled_change"


class CurrencyMismatch(Conflict):
    code = "currency_mismatch"
    title = "The plan's currency is not the customer's"


class AlreadySubscribed(Conflict):
    code = "already_subscribed"
    title = "The customer already has an active subscription"


class SubscriptionCanceled(Conflict):
    code = "subscription_canceled"
    title = "The subscription is canceled"


class CancelScheduled(Conflict):
    code = "cancel_scheduled"
    title = "The subscription ends at the end of this period"


class NoSubscription(NotFound):
    code = "no_subscription"
    title = "The customer has no active subscription"


@dataclass(frozen=True)
class Segment:
    """One plan version in force over [start_us, end_us); end_us None while open."""

    subscription_id: str
    plan_key: str
    plan_version: int
    start_us: int
    end_us: int | None
    reason: str
    id: int = 0

    def __post_init__(self) -> None:
        if self.end_us is not None and self.end_us <= self.start_us:
            raise ValueError("a segment ends after it starts")

    def within(self, span: Span) -> Span | None:
        """The part of this segment inside `span` (an open segment runs on), or None."""
        start = max(self.start_us, span.start_us)
        end = span.end_us if self.end_us is None else min(self.end_us, span.end_us)
        return Span(from_us(start), from_us(end)) if start < end else None


@dataclass(frozen=True)
class Subscription:
    """A row of `subscriptions`. `plan_key`/`plan_version` are the plan of the last segment;
    `anchor_local` is naive wall time in `zone` that periods repeat from."""

    id: str
    customer_key: str
    plan_key: str
    plan_version: int
    status: Status
    interval: str
    zone: str
    anchor_local: datetime
    start_us: int
    cancel_at_us: int | None = None
    ended_us: int | None = None
    pending_plan_key: str | None = None
    pending_plan_version: int | None = None
    max_overage_amount: Decimal | None = None
    created_us: int = 0
    updated_us: int = 0

    def __post_init__(self) -> None:
        object.__setattr__(self, "status", Status(self.status))
        Anchor(self.anchor_local, self.zone, self.interval)  # refuses a bad zone or interval
        if (self.pending_plan_key is None) != (self.pending_plan_version is None):
            raise ValueError("a pending change names a plan and its version")
        if self.status is Status.CANCELED and self.ended_us is None:
            raise ValueError("a canceled subscription has an end")

    @property
    def anchor(self) -> Anchor:
        return Anchor(self.anchor_local, self.zone, self.interval)

    @property
    def active(self) -> bool:
        return self.status is Status.ACTIVE

    def can_change(self) -> bool:
        return self.status is Status.ACTIVE

    def calendar_period_at(self, instant: datetime) -> Span:
        """The whole calendar period holding `instant` (clamped to the subscription's life):
        the base a partial period's fee is prorated against."""
        micros = max(to_us(instant), self.start_us)
        if self.ended_us is not None:
            micros = min(micros, max(self.ended_us - 1, self.start_us))
        return period_containing(self.anchor, from_us(micros))

    def period_at(self, instant: datetime) -> Span:
        """The billing period holding `instant`: the calendar period cut to the subscription's
        life ([start, ended)); before the start it is the first period, after the end the
        last one. A subscription canceled before it started has none (ValueError)."""
        if self.ended_us is not None and self.ended_us <= self.start_us:
            raise ValueError("a subscription canceled before it started has no period")
        calendar = self.calendar_period_at(instant)
        start = max(calendar.start_us, self.start_us)
        end = calendar.end_us if self.ended_us is None else min(calendar.end_us, self.ended_us)
        return Span(from_us(start), from_us(end))

    def next_period(self, period: Span) -> Span | None:
        """The period after `period`, or None when the subscription ends with it."""
        ends_at = self.ended_us if self.ended_us is not None else self.cancel_at_us
        if ends_at is not None and ends_at <= period.end_us:
            return None
        return self.period_at(period.end)


def _reopened(subscription: Subscription, segments: list[Segment]) -> list[Segment]:
    """A copy of the segments without a pending change: the last one open again."""
    if subscription.pending_plan_key is None or not segments:
        return list(segments)
    return [*segments[:-1], replace(segments[-1], end_us=None)]


def require_active(subscription: Subscription, pointer: str) -> None:
    """Refuse to touch a canceled subscription (409 subscription_canceled at `pointer`)."""
    if not subscription.can_change():
        raise SubscriptionCanceled(
            f"subscription {subscription.id} is canceled and cannot change",
            errors=(FieldError(pointer, "the subscription is canceled", "subscription_canceled"),),
        )


def _is_current(subscription: Subscription, plan: tuple[str, int]) -> bool:
    return plan == (subscription.plan_key, subscription.plan_version)


def _require_other(subscription: Subscription, plan: tuple[str, int]) -> None:
    if _is_current(subscription, plan):
        raise InvalidInput(
            "the subscription is already on this plan version",
            errors=(FieldError("/plan", "is the current plan", "same_plan"),),
        )


def change_now(
    subscription: Subscription,
    segments: list[Segment],
    plan: tuple[str, int],
    at_us: int,
    reason: str = Reason.CHANGE,
) -> tuple[Subscription, list[Segment]]:
    """The new plan from `at_us` on; a pending change is dropped. Before the subscription
    starts, the first segment simply takes the new plan."""
    require_active(subscription, "/plan")
    _require_other(subscription, plan)
    key, version = plan
    current = _reopened(subscription, segments)
    last = current[-1]
    if last.start_us >= at_us:
        current[-1] = replace(last, plan_key=key, plan_version=version)
    else:
        current[-1] = replace(last, end_us=at_us)
        current.append(Segment(subscription.id, key, version, at_us, None, str(reason)))
    changed = replace(
        subscription,
        plan_key=key,
        plan_version=version,
        pending_plan_key=None,
        pending_plan_version=None,
        updated_us=max(at_us, subscription.updated_us),
    )
    return changed, current


def schedule_change(
    subscription: Subscription, segments: list[Segment], plan: tuple[str, int], now_us: int
) -> tuple[Subscription, list[Segment]]:
    """The new plan from the end of the current period; asking for the current plan again
    withdraws a pending change."""
    require_active(subscription, "/plan")
    if subscription.cancel_at_us is not None:
        raise CancelScheduled(
            "the subscription ends at the end of this period; change it now instead",
            errors=(FieldError("/at", "the subscription ends then", "cancel_scheduled"),),
        )
    current = _reopened(subscription, segments)
    unchanged = replace(subscription, pending_plan_key=None, pending_plan_version=None)
    if subscription.pending_plan_key is not None and _is_current(subscription, plan):
        return replace(unchanged, updated_us=now_us), current
    _require_other(subscription, plan)
    boundary = subscription.period_at(from_us(now_us)).end_us
    current[-1] = replace(current[-1], end_us=boundary)
    pending = replace(
        unchanged, pending_plan_key=plan[0], pending_plan_version=plan[1], updated_us=now_us
    )
    return pending, current


def cancel_now(
    subscription: Subscription, segments: list[Segment], now_us: int
) -> tuple[Subscription, list[Segment]]:
    require_active(subscription, "/at")
    return _end(subscription, _reopened(subscription, segments), now_us)


def schedule_cancel(
    subscription: Subscription, segments: list[Segment], now_us: int
) -> tuple[Subscription, list[Segment]]:
    """End at the current period's end; a pending change is dropped (it would start then)."""
    require_active(subscription, "/at")
    boundary = subscription.period_at(from_us(now_us)).end_us
    canceling = replace(
        subscription,
        cancel_at_us=boundary,
        pending_plan_key=None,
        pending_plan_version=None,
        updated_us=now_us,
    )
    return canceling, _reopened(subscription, segments)


def _end(
    subscription: Subscription, segments: list[Segment], at_us: int
) -> tuple[Subscription, list[Segment]]:
    """Canceled at `at_us` (not before it started): segments after it go, the rest close."""
    ended_us = max(at_us, subscription.start_us)
    kept = [
        replace(s, end_us=ended_us) if s.end_us is None or s.end_us > ended_us else s
        for s in segments
        if s.start_us < ended_us
    ]
    ended = replace(
        subscription,
        status=Status.CANCELED,
        ended_us=ended_us,
        pending_plan_key=None,
        pending_plan_version=None,
        updated_us=max(at_us, subscription.updated_us),
    )
    return ended, kept


def materialize(
    subscription: Subscription, segments: list[Segment], now_us: int
) -> tuple[Subscription, list[Segment]]:
    """The subscription and its segments as of `now_us`: a pending change whose period has
    ended gets its segment (from the boundary), a scheduled cancel that is due ends the
    subscription at `cancel_at_us`. Idempotent; unchanged when nothing is due."""
    subscription, current = _apply_pending(subscription, list(segments), now_us)
    cancel_at = subscription.cancel_at_us
    if subscription.active and cancel_at is not None and cancel_at <= now_us:
        return _end(subscription, current, cancel_at)
    return subscription, current


def _apply_pending(
    subscription: Subscription, segments: list[Segment], now_us: int
) -> tuple[Subscription, list[Segment]]:
    key, version = subscription.pending_plan_key, subscription.pending_plan_version
    boundary = segments[-1].end_us if segments else None
    if not subscription.active or key is None or version is None:
        return subscription, segments
    if boundary is None or boundary > now_us:
        return subscription, segments
    started = Segment(subscription.id, key, version, boundary, None, Reason.SCHEDULED_CHANGE)
    applied = replace(
        subscription,
        plan_key=key,
        plan_version=version,
        pending_plan_key=None,
        pending_plan_version=None,
    )
    return applied, [*segments, started]
