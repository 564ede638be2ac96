"""The upcoming invoice: the current period to date, and where it is heading.

`period_lines` rates any period of a subscription from its segments and stored usage (the
same path an invoice takes); the upcoming invoice is that path with usage up to now, plus
a projection: the usage of the segment in force is extrapolated linearly from the part of
it that has elapsed to its end (for meters that add up: count and sum; a max, latest or
unique count is a level, projected as it stands).
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import ROUND_HALF_EVEN, Context, Decimal
from zoneinfo import ZoneInfo

from fairmeter.domain.errors import NotFound
from fairmeter.domain.meters import Aggregation
from fairmeter.domain.periods import fraction_elapsed
from fairmeter.domain.plans import Plan, total_minor
from fairmeter.domain.pricing.models import ZERO
from fairmeter.domain.segments_rating import SegmentLine, rate_segments
from fairmeter.domain.subscriptions import Segment, Subscription
from fairmeter.domain.windows import Span, Window
from fairmeter.services.clock import Clock
from fairmeter.services.subscriptions import customer_subscription
from fairmeter.services.usage import UsageQuery, query_usage
from fairmeter.storage.billing import Plans
from fairmeter.storage.catalog import Meters
from fairmeter.storage.database import Database

PROJECTION_METHOD = "linear run-rate over the elapsed part of the period"
FLOWS = (Aggregation.COUNT, Aggregation.SUM)
_UTC = ZoneInfo("UTC")
_PROJECTION = Context(prec=60, rounding=ROUND_HALF_EVEN)
_PLACES = Decimal("1e-12")


@dataclass(frozen=True)
class Piece:
    """A segment's part of a period, its plan, and the usage of [span.start, until)."""

    span: Span
    plan: Plan
    usage: dict[str, Decimal]


@dataclass(frozen=True)
class Upcoming:
    """The current period to date: `lines` rate the usage so far; `elapsed` is the share of
    the period behind `as_of`; the projection rates the extrapolated usage."""

    subscription: Subscription
    period: Span
    as_of: datetime
    elapsed: Decimal
    currency: str
    lines: list[SegmentLine]
    total_minor: int
    projected_total_minor: int
    projection_method: str = PROJECTION_METHOD


def usage_between(
    db: Database, customer_key: str, meter_keys: Iterable[str], span: Span
) -> dict[str, Decimal]:
    """The customer's usage of each meter over [span.start, span.end), exactly (rollups
    plus raw events at unaligned edges); 0 for a meter without usage or that no longer
    exists."""
    found: dict[str, Decimal] = {}
    for meter in meter_keys:
        query = UsageQuery(meter, customer_key, span, Window.NONE, _UTC)
        try:
            rows = query_usage(db, query)
        except NotFound:
            rows = []
        found[meter] = next((row.value for row in rows if row.value is not None), ZERO)
    return found


def period_pieces(
    db: Database,
    subscription: Subscription,
    segments: Sequence[Segment],
    period: Span,
    until: datetime,
) -> list[Piece]:
    """The segments' parts of `period` with their plan version and their usage up to
    `until` (exclusive; the period's end for a whole period)."""
    with db.read() as conn:
        repo = Plans(conn)
        plans = {
            (s.plan_key, s.plan_version): repo.version(s.plan_key, s.plan_version) for s in segments
        }
    pieces: list[Piece] = []
    for segment in segments:
        span = segment.within(period)
        plan = plans[(segment.plan_key, segment.plan_version)]
        if span is None or plan is None:
            continue
        end = min(span.end, until)
        usage = (
            usage_between(db, subscription.customer_key, plan.meters, Span(span.start, end))
            if span.start < end
            else {}
        )
        pieces.append(Piece(span, plan, usage))
    return pieces


def period_lines(
    subscription: Subscription, period: Span, pieces: Sequence[Piece]
) -> list[SegmentLine]:
    """The lines of a period of `subscription` (`period` as `Subscription.period_at` gives
    it; fees are prorated against the whole calendar period)."""
    calendar = subscription.calendar_period_at(period.start)
    return rate_segments(calendar, [(p.span, p.plan) for p in pieces], [p.usage for p in pieces])


def upcoming_invoice(db: Database, clock: Clock, customer_key: str) -> Upcoming:
    """The customer's active subscription's current period to date (404 no_subscription
    without one)."""
    view = customer_subscription(db, clock, customer_key)
    subscription, now = view.subscription, view.as_of
    period = subscription.period_at(now)
    pieces = period_pieces(db, subscription, view.segments, period, now)
    lines = period_lines(subscription, period, pieces)
    projected = period_lines(subscription, period, _projected(db, pieces, now))
    return Upcoming(
        subscription=subscription,
        period=period,
        as_of=now,
        elapsed=fraction_elapsed(period, now),
        currency=pieces[-1].plan.currency if pieces else "",
        lines=lines,
        total_minor=total_minor(lines),
        projected_total_minor=total_minor(projected),
    )


def _projected(db: Database, pieces: Sequence[Piece], now: datetime) -> list[Piece]:
    """The pieces with the usage of the one in force at `now` run on to its end."""
    with db.read() as conn:
        flows = {meter.key for meter in Meters(conn).all(True) if meter.aggregation in FLOWS}
    return run_on(pieces, flows, now)


def run_on(pieces: Sequence[Piece], flows: Collection[str], now: datetime) -> list[Piece]:
    """The piece in force at `now` with its `flows` (meters that add up) carried on to its
    end at the rate of its elapsed part; other pieces and meters as they stand."""
    projected: list[Piece] = []
    for piece in pieces:
        usage = piece.usage
        if piece.span.start < now < piece.span.end:
            share = fraction_elapsed(piece.span, now)
            usage = {m: _run_on(q, share) if m in flows else q for m, q in usage.items()}
        projected.append(Piece(piece.span, piece.plan, usage))
    return projected


def _run_on(quantity: Decimal, share: Decimal) -> Decimal:
    """`quantity` used in `share` of a span, at the same rate over all of it (12 places)."""
    whole = _PROJECTION.divide(quantity, share)
    return whole.quantize(_PLACES, context=_PROJECTION).normalize(_PROJECTION)
