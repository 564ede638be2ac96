"""`fairmeter usage`: a meter's usage per window, customer and group."""

from __future__ import annotations

import json
from datetime import datetime
from zoneinfo import ZoneInfo

import typer
from rich.table import Table

from fairmeter.api import render
from fairmeter.cli.console import echo, out, session, table
from fairmeter.domain.numbers import format_quantity
from fairmeter.domain.windows import Window
from fairmeter.services.usage import UsageRow, query_usage
from fairmeter.services.usage_request import usage_query

OPTIONS = {
    "/from": "--from",
    "/to": "--to",
    "/timezone": "--timezone",
    "/group_by": "--group-by",
    "/window": "--window",
}

EPILOG = (
    "Examples:\n\n"
    "  fairmeter usage api_calls --customer acme --window day\n\n"
    "  fairmeter usage tokens --from 2026-11-01T00:00:00Z --to 2026-11-08T00:00:00Z"
    " --group-by model --json\n\n"
    "Without --from, usage starts at the beginning of the current month in the time zone "
    "(the customer's by default, else UTC); without --to, it ends now."
)


def usage(
    meter: str = typer.Argument(..., help="The meter's key."),
    customer: str | None = typer.Option(None, "--customer", help="Only this customer."),
    from_: str | None = typer.Option(
        None, "--from", help="RFC 3339 start, e.g. 2026-11-01T00:00:00Z."
    ),
    to: str | None = typer.Option(None, "--to", help="RFC 3339 end (exclusive)."),
    window: Window = typer.Option(Window.NONE, "--window", help="One row per window."),
    timezone: str | None = typer.Option(None, "--timezone", help="IANA zone the windows follow."),
    group_by: str | None = typer.Option(
        None, "--group-by", help="Comma-separated groups of the meter, e.g. model."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print the API's JSON instead."),
) -> None:
    """Show a meter's usage: one row per window, customer and group."""
    with session(options=OPTIONS) as rt:
        query = usage_query(rt, meter, customer, from_, to, window, timezone, group_by)
        zone, names = query.zone, query.group_by
        rows = query_usage(rt.db, query)
    if as_json:
        body = {
            "data": render.usage_rows(rows),
            "meter": meter,
            "window": window.value,
            "timezone": zone.key,
        }
        echo(json.dumps(body, indent=2))
        return
    out().print(_table(meter, window, zone, names, rows))


def _table(
    meter: str, window: Window, zone: ZoneInfo, names: tuple[str, ...], rows: list[UsageRow]
) -> Table:
    """One column per group; times on the zone's clock, which is how windows are cut."""
    per = "window" if window is Window.NONE else window.value
    title = f"{meter} per {per} (times in {zone.key})"
    grid = table(title, "from", "to", "customer", *names, "value")
    grid.columns[-1].justify = "right"
    for row in rows:
        groups = [row.group.get(name) or "-" for name in names]
        value = "-" if row.value is None else format_quantity(row.value)
        start, end = _local(row.span.start, zone), _local(row.span.end, zone)
        grid.add_row(start, end, row.customer, *groups, value)
    return grid


def _local(moment: datetime, zone: ZoneInfo) -> str:
    local = moment.astimezone(zone)
    return local.strftime("%Y-%m-%d %H:%M:%S" if local.second else "%Y-%m-%d %H:%M")
