"""The billing run: one period invoice per (subscription, period) that has ended.

For every subscription, every period that ended by `as_of` and has no issued invoice gets a
draft (inserted under a unique key, so repeated or concurrent runs make it once), whose
lines are recomputed at each run while it is a draft; once `period end + grace` has passed
the run issues it (gapless number, issue and due dates). The first draft after the last
issued invoice also carries the late-event adjustments of earlier periods.

Work goes in chunks of subscriptions: usage is read outside any write transaction; then,
with the chunk's subscriptions locked (PostgreSQL) or the write lock held (SQLite), the
invoices are re-read and written, so two runs never bill the same period twice."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime

from fairmeter.domain.errors import FieldError, InvalidInput
from fairmeter.domain.invoices import Invoice, InvoiceKind, InvoiceLine, InvoiceStatus, total_of
from fairmeter.domain.meters import Meter
from fairmeter.domain.subscriptions import Subscription
from fairmeter.domain.windows import Span, to_us
from fairmeter.services.billing_accounts import Account, load_accounts, meters_by_key, wanted
from fairmeter.services.billing_periods import (
    Due,
    compose_period,
    due_periods,
    may_be_due,
    old_periods,
)
from fairmeter.services.billing_usage import Measure, MeasureKey, measure_usage
from fairmeter.services.invoices import issue, new_invoice_id
from fairmeter.services.runtime import Runtime
from fairmeter.services.subscriptions import materialize_due
from fairmeter.services.thresholds import check_thresholds
from fairmeter.storage.billing import Subscriptions
from fairmeter.storage.invoices import Invoices

CHUNK = 500


@dataclass
class RunReport:
    as_of: datetime
    created: list[Invoice] = field(default_factory=list)
    updated: list[Invoice] = field(default_factory=list)
    finalized: list[Invoice] = field(default_factory=list)
    thresholds: list[Invoice] = field(default_factory=list)


def run_billing(
    rt: Runtime,
    as_of: datetime | None = None,
    chunk: int = CHUNK,
    progress: Callable[[int, int], None] | None = None,
) -> RunReport:
    """Bill every period that ended by `as_of` (default: now; never in the future).

    `progress(done, total)` is told the subscriptions handled after each chunk."""
    now = rt.clock.now()
    as_of = now if as_of is None else as_of
    if as_of > now:
        raise InvalidInput(
            "a billing run cannot look into the future",
            errors=(FieldError("/as_of", "must not be later than now"),),
        )
    materialize_due(rt.db, rt.clock)
    as_of_us = to_us(as_of)
    with rt.db.read() as conn:
        # In customer order: a chunk's usage is then one contiguous read of the rollups.
        subscriptions = sorted(
            Subscriptions(conn).active_between(0, as_of_us), key=lambda s: (s.customer_key, s.id)
        )
        meters = meters_by_key(conn)
    report = RunReport(as_of)
    for start in range(0, len(subscriptions), chunk):
        _bill_chunk(rt, subscriptions[start : start + chunk], meters, as_of_us, report)
        if progress is not None:
            progress(min(start + chunk, len(subscriptions)), len(subscriptions))
    report.thresholds = check_thresholds(rt, as_of)
    return report


@dataclass(frozen=True)
class _Work:
    account: Account
    due: list[Due]
    old: list[Due]


def _bill_chunk(
    rt: Runtime,
    subscriptions: Sequence[Subscription],
    meters: Mapping[str, Meter],
    as_of_us: int,
    report: RunReport,
) -> None:
    backdate = rt.policy.backdate_window
    with rt.db.read() as conn:
        repo = Invoices(conn)
        issued_ends = repo.last_issued_period_ends(s.id for s in subscriptions)
        works: list[_Work] = []
        candidates = [s for s in subscriptions if may_be_due(s, issued_ends.get(s.id), as_of_us)]
        for account in load_accounts(conn, candidates, as_of_us):
            due = due_periods(account, issued_ends.get(account.id), as_of_us)
            if due:
                works.append(_Work(account, due, []))
        since = _since(works, backdate.total_seconds())
        invoices = repo.of_subscriptions((w.account.id for w in works), since)
        works = [
            replace(w, old=old_periods(w.account, invoices.get(w.account.id, []), backdate))
            for w in works
        ]
        measures = measure_usage(conn, meters, _wanted(works))
    if not works:
        return  # no write transaction (on SQLite it would take the write lock for nothing)
    with rt.db.write() as conn:
        repo = Invoices(conn)
        repo.lock_subscriptions([w.account.id for w in works])
        fresh = repo.of_subscriptions((w.account.id for w in works), since)
        for work in works:
            _bill_account(
                rt, repo, work, fresh.get(work.account.id, []), measures, as_of_us, report
            )


def _since(works: Sequence[_Work], backdate_seconds: float) -> int:
    """Invoices of periods ending after this may account for a period still being billed."""
    if not works:
        return 0
    first = min(w.due[0].period.start_us for w in works)
    return first - int(backdate_seconds) * 1_000_000 - 1


def _wanted(works: Sequence[_Work]) -> list[tuple[str, str, Span]]:
    found: list[tuple[str, str, Span]] = []
    for work in works:
        for item in [*work.due, *work.old]:
            found.extend(wanted(work.account, item.pieces, item.period.end_us))
    return found


def _bill_account(
    rt: Runtime,
    repo: Invoices,
    work: _Work,
    invoices: Sequence[Invoice],
    measures: Mapping[MeasureKey, Measure],
    as_of_us: int,
    report: RunReport,
) -> None:
    issued = [line for invoice in invoices if not invoice.is_draft for line in invoice.lines]
    periods = {i.period_start_us: i for i in invoices if i.kind is InvoiceKind.PERIOD}
    now_us = to_us(rt.clock.now())
    for index, due in enumerate(work.due):
        current = periods.get(due.period.start_us)
        if current is not None and not current.is_draft:
            continue  # another run issued it since this one read
        old = work.old if index == 0 else []
        lines = compose_period(work.account, due, old, issued, measures, as_of_us)
        draft = _draft(rt, work.account, due, current, lines, now_us)
        if draft.finalize_after_us <= as_of_us:
            issued_now = issue(
                repo, draft, work.account, rt.billing, as_of_us, stored=bool(current)
            )
            if current is None:
                report.created.append(issued_now)
            report.finalized.append(issued_now)
            issued.extend(issued_now.lines)
        elif current is None:
            if repo.insert_new([draft]):
                report.created.append(draft)
        elif draft is not current and repo.save_draft(draft):
            report.updated.append(draft)


def _draft(
    rt: Runtime,
    account: Account,
    due: Due,
    current: Invoice | None,
    lines: list[InvoiceLine],
    now_us: int,
) -> Invoice:
    """The draft with these lines: `current` itself when nothing changed."""
    finalize_after = due.period.end_us + int(rt.billing.grace.total_seconds()) * 1_000_000
    if current is not None:
        if current.lines == tuple(lines) and current.period_end_us == due.period.end_us:
            return current
        changed = replace(
            current,
            lines=tuple(lines),
            total_minor=total_of(lines),
            period_end_us=due.period.end_us,
            covers_until_us=due.period.end_us,
            finalize_after_us=finalize_after,
            updated_us=now_us,
        )
        return changed
    plan = account.plan_at(due.period.end_us - 1)
    draft = Invoice(
        id=new_invoice_id(now_us),
        subscription_id=account.id,
        customer_key=account.customer.key,
        kind=InvoiceKind.PERIOD,
        period_start_us=due.period.start_us,
        period_end_us=due.period.end_us,
        sequence=0,
        covers_until_us=due.period.end_us,
        status=InvoiceStatus.DRAFT,
        currency=plan.currency,
        rounding=plan.rounding.value,
        lines=tuple(lines),
        total_minor=total_of(lines),
        finalize_after_us=finalize_after,
        created_us=now_us,
        updated_us=now_us,
    )
    return draft
