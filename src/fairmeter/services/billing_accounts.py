"""What billing reads about a subscription before it rates a period: its segments with
their plan versions, the customer's terms, and the usage of each segment's part.

The billing run, threshold invoices and the recomputation of an invoice share these, so an
invoice is always rated along one path."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal

from sqlalchemy.engine import Connection

from fairmeter.domain.invoicing import SegmentUsage
from fairmeter.domain.meters import Meter
from fairmeter.domain.plans import Plan
from fairmeter.domain.subscriptions import Segment, Subscription
from fairmeter.domain.subscriptions import materialize as materialized
from fairmeter.domain.windows import Span, from_us
from fairmeter.services.billing_usage import NONE, Measure, MeasureKey, measure_key
from fairmeter.storage.billing import Plans, Segments
from fairmeter.storage.catalog import Meters
from fairmeter.storage.invoices import CustomerTerms, customer_terms


@dataclass(frozen=True)
class Account:
    """A subscription as of an instant (due changes applied), with what rating needs."""

    subscription: Subscription
    segments: tuple[Segment, ...]
    plans: Mapping[tuple[str, int], Plan]
    customer: CustomerTerms

    @property
    def id(self) -> str:
        return self.subscription.id

    def plan_at(self, instant_us: int) -> Plan:
        """The plan of the segment in force at the instant (the last one before it)."""
        chosen = self.segments[0]
        for segment in self.segments:
            if segment.start_us <= instant_us:
                chosen = segment
        return self.plans[(chosen.plan_key, chosen.plan_version)]

    def net_terms_days(self, instant_us: int) -> int:
        own = self.customer.net_terms_days
        return own if own is not None else self.plan_at(instant_us).net_terms_days

    def threshold(self, instant_us: int) -> Decimal | None:
        own = self.customer.invoice_threshold
        return own if own is not None else self.plan_at(instant_us).invoice_threshold


@dataclass(frozen=True)
class Piece:
    """A segment's part of a period: its span (for proration) and its plan."""

    span: Span
    plan: Plan


def load_accounts(
    conn: Connection, subscriptions: Sequence[Subscription], as_of_us: int
) -> list[Account]:
    """Each subscription with its segments, materialized in memory as of `as_of_us`."""
    segments_repo, plans_repo = Segments(conn), Plans(conn)
    terms = customer_terms(conn, (s.customer_key for s in subscriptions))
    plans: dict[tuple[str, int], Plan] = {}
    accounts: list[Account] = []
    for stored in subscriptions:
        subscription, segments = materialized(stored, segments_repo.of(stored.id), as_of_us)
        customer = terms.get(subscription.customer_key)
        if not segments or customer is None:
            continue
        for segment in segments:
            key = (segment.plan_key, segment.plan_version)
            if key not in plans:
                plan = plans_repo.version(*key)
                if plan is None:
                    raise LookupError(f"plan {key[0]} version {key[1]} is missing")
                plans[key] = plan
        accounts.append(Account(subscription, tuple(segments), plans, customer))
    return accounts


def pieces_of(account: Account, period: Span) -> list[Piece]:
    pieces: list[Piece] = []
    for segment in account.segments:
        span = segment.within(period)
        if span is not None:
            pieces.append(Piece(span, account.plans[(segment.plan_key, segment.plan_version)]))
    return pieces


def usage_span(piece: Piece, until_us: int) -> Span | None:
    """The part of a piece whose usage counts when billing up to `until_us`."""
    end = min(piece.span.end_us, until_us)
    return Span(piece.span.start, from_us(end)) if piece.span.start_us < end else None


def wanted(account: Account, pieces: Iterable[Piece], until_us: int) -> list[tuple[str, str, Span]]:
    """The (customer, meter, span) usages rating these pieces up to `until_us` reads."""
    found: list[tuple[str, str, Span]] = []
    for piece in pieces:
        span = usage_span(piece, until_us)
        if span is not None:
            found.extend((account.customer.key, meter, span) for meter in piece.plan.meters)
    return found


def segment_usages(
    account: Account,
    pieces: Sequence[Piece],
    until_us: int,
    measures: Mapping[MeasureKey, Measure],
) -> list[SegmentUsage]:
    usages: list[SegmentUsage] = []
    for piece in pieces:
        span = usage_span(piece, until_us)
        got = {
            meter: measures.get(measure_key(account.customer.key, meter, span), NONE)
            if span is not None
            else NONE
            for meter in piece.plan.meters
        }
        usages.append(
            SegmentUsage(
                piece.span,
                piece.plan,
                {meter: m.quantity for meter, m in got.items()},
                {meter: m.events for meter, m in got.items()},
            )
        )
    return usages


def meters_by_key(conn: Connection) -> dict[str, Meter]:
    return {meter.key: meter for meter in Meters(conn).all(include_archived=True)}
