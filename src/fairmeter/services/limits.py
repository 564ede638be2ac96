"""A customer's limits: overrides of the plan's terms, suspension and restoring access.

Each change reaches this process's limits engine at once (its cached terms are dropped);
other processes see it within their terms refresh (about a second)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from fairmeter.domain.errors import Conflict, NotFound
from fairmeter.domain.limits import Override
from fairmeter.domain.windows import to_us
from fairmeter.services.hooks import Lifecycle, LifecycleNotice
from fairmeter.services.notifications import enqueue, from_notice
from fairmeter.storage.catalog import Customers, Meters
from fairmeter.storage.limits import Limits, Suspension

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection

    from fairmeter.services.runtime import Runtime


class NotSuspended(Conflict):
    code = "not_suspended"
    title = "The customer is not suspended"


def _require(conn: Connection, customer: str, meter: str | None = None) -> None:
    if Customers(conn).by_key(customer) is None:
        raise NotFound(f"no customer has the key {customer!r}")
    if meter is not None:
        found = Meters(conn).by_key(meter)
        if found is None or found.archived:
            raise NotFound(f"no meter has the key {meter!r}")


def _changed(rt: Runtime, customer: str) -> None:
    if rt.limits is not None:
        rt.limits.invalidate(customer)


def put_override(rt: Runtime, customer: str, meter: str, override: Override) -> Override:
    with rt.db.write() as conn:
        _require(conn, customer, meter)
        Limits(conn).put_override(customer, meter, override, to_us(rt.clock.now()))
    _changed(rt, customer)
    return override


def get_override(rt: Runtime, customer: str, meter: str) -> Override:
    with rt.db.read() as conn:
        _require(conn, customer, meter)
        found = Limits(conn).override(customer, meter)
    if found is None:
        raise NotFound(f"customer {customer!r} has no override for meter {meter!r}")
    return found


def list_overrides(rt: Runtime, customer: str) -> dict[str, Override]:
    with rt.db.read() as conn:
        _require(conn, customer)
        return Limits(conn).overrides(customer)


def delete_override(rt: Runtime, customer: str, meter: str) -> None:
    with rt.db.write() as conn:
        _require(conn, customer)
        if not Limits(conn).delete_override(customer, meter):
            raise NotFound(f"customer {customer!r} has no override for meter {meter!r}")
    _changed(rt, customer)


def suspension(rt: Runtime, customer: str) -> Suspension | None:
    with rt.db.read() as conn:
        _require(conn, customer)
        return Limits(conn).suspension(customer)


def suspend(rt: Runtime, customer: str, reason: str) -> Suspension:
    """Refuse every call of the customer ("suspended") until restored. Suspending a
    suspended customer changes nothing and answers the suspension in force."""
    now = rt.clock.now()
    with rt.db.write() as conn:
        _require(conn, customer)
        repo = Limits(conn)
        fresh = repo.suspend(customer, reason, to_us(now))
        found = repo.suspension(customer)
        assert found is not None
        if fresh:  # told in the suspension's own transaction (the outbox)
            key = f"access.suspended:{customer}:{found.suspended_us}"
            kind = Lifecycle.ACCESS_SUSPENDED
            notice = LifecycleNotice(kind, customer, now, {"reason": reason}, key)
            enqueue(conn, from_notice(notice), to_us(now))
    _changed(rt, customer)
    return found


def restore(rt: Runtime, customer: str) -> None:
    now = rt.clock.now()
    with rt.db.write() as conn:
        _require(conn, customer)
        repo = Limits(conn)
        held = repo.suspension(customer)
        if held is None or not repo.restore(customer):
            raise NotSuspended(f"customer {customer!r} is not suspended")
        key = f"access.restored:{customer}:{held.suspended_us}"
        details = {"reason": held.reason}
        notice = LifecycleNotice(Lifecycle.ACCESS_RESTORED, customer, now, details, key)
        enqueue(conn, from_notice(notice), to_us(now))
    _changed(rt, customer)
