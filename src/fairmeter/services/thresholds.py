"""Threshold invoices: bill usage as soon as what accrued and is unbilled reaches a limit.

A check prices the current period's usage so far (usage charges only: the base fee is
billed with the period) and subtracts what earlier threshold invoices of the period
billed, per charge (see `domain.invoicing`). When that reaches the customer's threshold
(or, without one, the plan's), a threshold invoice is issued at once for exactly that.

Checks stay off the ingest path: the billing run checks every subscription, as does
`POST /v1/billing/thresholds`, and a server sweeps every `threshold_check_seconds`."""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.engine import Connection

from fairmeter.domain.invoices import Invoice, InvoiceKind, InvoiceStatus, total_of
from fairmeter.domain.invoicing import (
    bill_remainder,
    covered_by,
    rate_cumulative,
    threshold_reached,
)
from fairmeter.domain.subscriptions import Subscription
from fairmeter.domain.windows import Span, from_us, to_us
from fairmeter.services.billing_accounts import (
    Account,
    Piece,
    load_accounts,
    meters_by_key,
    pieces_of,
    segment_usages,
    wanted,
)
from fairmeter.services.billing_usage import Measure, MeasureKey, measure_usage
from fairmeter.services.invoices import issue, new_invoice_id
from fairmeter.services.runtime import Runtime
from fairmeter.storage.billing import Plans, Subscriptions
from fairmeter.storage.invoices import Invoices, customer_terms

log = logging.getLogger("fairmeter.thresholds")


@dataclass(frozen=True)
class _Candidate:
    account: Account
    period: Span
    pieces: list[Piece]


def check_thresholds(
    rt: Runtime, at: datetime | None = None, customers: Iterable[str] | None = None
) -> list[Invoice]:
    """Issue the threshold invoices due at `at` (default now), for every customer or only
    the given ones; returns the invoices issued."""
    at_us = to_us(rt.clock.now() if at is None else at)
    only = None if customers is None else set(customers)
    with rt.db.read() as conn:
        subscriptions = _with_threshold(
            conn,
            [
                s
                for s in Subscriptions(conn).active_between(at_us, at_us + 1)
                if only is None or s.customer_key in only
            ],
        )
        candidates = [
            c for a in load_accounts(conn, subscriptions, at_us) if (c := _candidate(a, at_us))
        ]
        if not candidates:
            return []
        wants = [w for c in candidates for w in wanted(c.account, c.pieces, at_us)]
        measures = measure_usage(conn, meters_by_key(conn), wants)
    with rt.db.write() as conn:
        repo = Invoices(conn)
        repo.lock_subscriptions([c.account.id for c in candidates])
        since = min(c.period.start_us for c in candidates)
        fresh = repo.of_subscriptions((c.account.id for c in candidates), since)
        issued: list[Invoice] = []
        for candidate in candidates:
            invoices = fresh.get(candidate.account.id, [])
            found = _bill(rt, repo, candidate, invoices, measures, at_us)
            if found is not None:
                issued.append(found)
    return issued


def _with_threshold(conn: Connection, found: list[Subscription]) -> list[Subscription]:
    """The subscriptions whose customer or current plan sets a threshold (cheap to tell,
    before segments and usage are read)."""
    terms = customer_terms(conn, (s.customer_key for s in found))
    plans = Plans(conn)
    thresholds: dict[tuple[str, int], bool] = {}
    kept: list[Subscription] = []
    for subscription in found:
        key = (subscription.plan_key, subscription.plan_version)
        if key not in thresholds:
            plan = plans.version(*key)
            thresholds[key] = plan is not None and plan.invoice_threshold is not None
        customer = terms.get(subscription.customer_key)
        if thresholds[key] or (customer is not None and customer.invoice_threshold is not None):
            kept.append(subscription)
    return kept


def check_threshold(rt: Runtime, customer_key: str, at: datetime | None = None) -> Invoice | None:
    found = check_thresholds(rt, at, [customer_key])
    return found[0] if found else None


def _candidate(account: Account, at_us: int) -> _Candidate | None:
    if account.threshold(at_us) is None or not account.subscription.active:
        return None
    period = account.subscription.period_at(from_us(at_us))
    if not period.start_us < at_us < period.end_us:
        return None
    return _Candidate(account, period, pieces_of(account, period))


def _bill(
    rt: Runtime,
    repo: Invoices,
    candidate: _Candidate,
    invoices: Sequence[Invoice],
    measures: dict[MeasureKey, Measure],
    at_us: int,
) -> Invoice | None:
    account, period = candidate.account, candidate.period
    mine = [i for i in invoices if i.period_start_us == period.start_us]
    if any(i.kind is InvoiceKind.PERIOD for i in mine):
        return None  # the period is being invoiced already
    issued_lines = [line for i in mine if not i.is_draft for line in i.lines]
    usages = segment_usages(account, candidate.pieces, at_us, measures)
    calendar = account.subscription.calendar_period_at(period.start)
    cumulative = rate_cumulative(calendar, period, usages, base_fee=False)
    lines = bill_remainder(cumulative, covered_by(issued_lines, period.start_us))
    threshold = account.threshold(at_us)
    plan = account.plan_at(at_us)
    if threshold is None or not threshold_reached(total_of(lines), threshold, plan.currency):
        return None
    now_us = to_us(rt.clock.now())
    draft = Invoice(
        id=new_invoice_id(now_us),
        subscription_id=account.id,
        customer_key=account.customer.key,
        kind=InvoiceKind.THRESHOLD,
        period_start_us=period.start_us,
        period_end_us=period.end_us,
        sequence=1 + sum(i.kind is InvoiceKind.THRESHOLD for i in mine),
        covers_until_us=at_us,
        status=InvoiceStatus.DRAFT,
        currency=plan.currency,
        rounding=plan.rounding.value,
        lines=tuple(lines),
        total_minor=total_of(lines),
        finalize_after_us=at_us,
        created_us=now_us,
        updated_us=now_us,
    )
    return issue(repo, draft, account, rt.billing, at_us, stored=False)


class ThresholdSweeper:
    """Checks every threshold every `interval` seconds in a background thread."""

    def __init__(self, rt: Runtime, interval: float):
        self.rt = rt
        self.interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="fm-thresholds", daemon=True)

    def start(self) -> ThresholdSweeper:
        if self.interval > 0:
            self._thread.start()
        return self

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                issued = check_thresholds(self.rt)
            except Exception:  # a failed sweep must not end the server; the next one retries
                log.exception("threshold check failed")
                continue
            if issued:
                log.info("issued %d threshold invoice(s)", len(issued))

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=30)
