"""`fairmeter meters`: define what counts, and list the definitions."""

from __future__ import annotations

import json

import typer

from fairmeter.api import render
from fairmeter.cli.console import echo, out, session, table
from fairmeter.domain.errors import FieldError, InvalidInput
from fairmeter.domain.meters import Meter, parse_meter
from fairmeter.services import catalog

app = typer.Typer(help="Create and list meters.", no_args_is_help=True)

# Field pointers in the API's problems, and the option that sets each field here.
OPTIONS = {
    "/key": "KEY",
    "/event_type": "--event-type",
    "/aggregation": "--aggregation",
    "/value_property": "--value-property",
    "/group_by": "--group-by",
    "/unit": "--unit",
    "/name": "--name",
}


@app.command(
    "create",
    epilog="Examples:\n\n"
    "  fairmeter meters create api_calls --event-type api.request --aggregation count"
    " --group-by endpoint=$.endpoint\n\n"
    "  fairmeter meters create tokens --event-type api.request --aggregation sum"
    " --value-property '$.tokens' --group-by model=$.model --unit tokens",
)
def create(
    key: str = typer.Argument(..., help="Stable key: lowercase letters, digits and _."),
    event_type: str = typer.Option(..., "--event-type", help="Events of this type count."),
    aggregation: str = typer.Option(
        ..., "--aggregation", help="count, sum, max, unique_count or latest."
    ),
    value_property: str | None = typer.Option(
        None, "--value-property", help="Where the value is in the event's data, e.g. '$.tokens'."
    ),
    group_by: list[str] = typer.Option(
        [], "--group-by", help="name=$.path; repeat for several groups."
    ),
    unit: str | None = typer.Option(None, "--unit", help="What one unit is, e.g. tokens."),
    name: str | None = typer.Option(None, "--name", help="A display name (default: the key)."),
) -> None:
    """Create a meter; events of its type already stored are counted at once.

    Mistakes are reported like the API's problems: the code, then each field at fault."""
    body: dict[str, object] = {"key": key, "event_type": event_type, "aggregation": aggregation}
    optional = {"value_property": value_property, "unit": unit, "name": name}
    body.update({k: v for k, v in optional.items() if v is not None})
    with session(options=OPTIONS) as rt:
        meter = _parse(body, group_by)
        meter, counted = catalog.create_meter(rt.db, rt.clock, meter)
    echo(f"Created meter {meter.key}: {_describe(meter)}; counted {counted} stored events.")


@app.command("list", epilog="Example:\n\n  fairmeter meters list --archived")
def list_(
    archived: bool = typer.Option(False, "--archived", help="Include archived meters."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of a table."),
) -> None:
    """List meters: what each counts and how."""
    with session() as rt:
        meters = catalog.list_meters(rt.db, include_archived=archived)
    if as_json:
        echo(json.dumps({"data": [render.meter(m) for m in meters]}, indent=2))
        return
    grid = table("Meters", "key", "name", "event type", "aggregation", "value", "group by", "unit")
    for m in meters:
        groups = ", ".join(f"{n}={p.text}" for n, p in m.group_by)
        value = m.value_property.text if m.value_property else "-"
        key = m.key + (" (archived)" if m.archived else "")
        grid.add_row(
            key, m.name, m.event_type, m.aggregation.value, value, groups or "-", m.unit or "-"
        )
    out().print(grid)


def _parse(body: dict[str, object], pairs: list[str]) -> Meter:
    """The meter, or every mistake at once: those in --group-by and those the API finds."""
    groups: dict[str, str] = {}
    errors: list[FieldError] = []
    for pair in pairs:
        name, sep, path = pair.partition("=")
        if not sep or not name or name in groups:
            detail = f"{pair!r} must be name=$.path with a new name, e.g. model=$.model"
            errors.append(FieldError("/group_by", detail))
        else:
            groups[name] = path
    if groups:
        body["group_by"] = groups
    try:
        meter = parse_meter(body)
    except InvalidInput as exc:
        errors.extend(exc.errors)
    if errors:
        raise InvalidInput("The meter definition is not valid", errors=tuple(errors))
    return meter


def _describe(m: Meter) -> str:
    what = m.aggregation.value.replace("_", " ")
    if m.value_property:
        what += f" of {m.value_property.text}"
    what += f" on {m.event_type} events"
    if m.group_by:
        what += ", by " + ", ".join(n for n, _ in m.group_by)
    return what
