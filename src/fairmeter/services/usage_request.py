"""Turn the text of a usage request (API query string or CLI options) into a UsageQuery.

Both edges share it so that defaults and messages are the same everywhere."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from fairmeter.domain.errors import FieldError, InvalidInput
from fairmeter.domain.windows import Span, Window, parse_instant
from fairmeter.services import catalog
from fairmeter.services.runtime import Runtime
from fairmeter.services.usage import UsageQuery


def usage_query(
    rt: Runtime,
    meter: str,
    customer: str | None,
    from_: str | None,
    to: str | None,
    window: Window,
    timezone: str | None,
    group_by: str | None,
) -> UsageQuery:
    """Defaults: the customer's time zone (else UTC), from the month's start, to now."""
    zone = _zone(timezone, customer, rt)
    now = rt.clock.now()
    start = parse_instant(from_, "/from") if from_ else month_start(now, zone)
    end = parse_instant(to, "/to") if to else now
    if not start < end:
        raise InvalidInput(
            "'from' must be before 'to'", errors=(FieldError("/from", "must be before 'to'"),)
        )
    names = tuple(n.strip() for n in (group_by or "").split(",") if n.strip())
    return UsageQuery(meter, customer, Span(start, end), window, zone, names)


def _zone(name: str | None, customer: str | None, rt: Runtime) -> ZoneInfo:
    if name is None:
        if customer is None:
            return ZoneInfo("UTC")
        return catalog.get_customer(rt.db, customer).zone
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise InvalidInput(
            f"{name!r} is not a time zone",
            errors=(FieldError("/timezone", "must be an IANA time zone such as Europe/Madrid"),),
        ) from None


def month_start(now: datetime, zone: ZoneInfo) -> datetime:
    local = now.astimezone(zone)
    return datetime(local.year, local.month, 1, tzinfo=zone).astimezone(UTC)
