"""`fairmeter keys`: create API keys (shown once) and list them (never their secrets)."""

from __future__ import annotations

import json

import typer

from fairmeter.cli.console import echo, note, out, session, table
from fairmeter.domain.keys import Scope
from fairmeter.domain.windows import from_us
from fairmeter.services.keys import create_key, list_keys

app = typer.Typer(help="Create and list API keys.", no_args_is_help=True)


@app.command(
    "create",
    epilog="Example:\n\n"
    "  export FAIRMETER_KEY=$(fairmeter keys create --scope ingest --name gateway)",
)
def create(
    scope: Scope = typer.Option(
        ..., "--scope", help="admin: everything; ingest: may only send events."
    ),
    name: str = typer.Option("", "--name", help="A label to recognise the key by later."),
) -> None:
    """Create an API key and print it once, alone on stdout, so scripts can capture it.

    Only a hash is stored: the key cannot be shown again."""
    with session() as rt:
        key = create_key(rt.db, rt.clock, scope, name)
    note(f"Created {scope.value} key {name or scope.value + ' key'!r}; it is shown only once.")
    echo(key)


@app.command("list", epilog="Example:\n\n  fairmeter keys list")
def list_(
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of a table."),
) -> None:
    """List API keys: name, scope, the first characters, and when each was created."""
    with session() as rt:
        rows = list_keys(rt.db)
    listed = [
        {
            "name": r["name"],
            "scope": str(r["scope"]),
            "prefix": r["prefix"],
            "created": _instant(r["created_us"]),
            "revoked": _instant(r["revoked_us"]),
        }
        for r in rows
    ]
    if as_json:
        echo(json.dumps({"data": listed}, indent=2))
        return
    grid = table("API keys", "name", "scope", "prefix", "created", "revoked")
    for row in listed:
        grid.add_row(
            *(str(row[c] or "-") for c in ("name", "scope", "prefix", "created", "revoked"))
        )
    out().print(grid)


def _instant(micros: object) -> str | None:
    if not isinstance(micros, int):
        return None
    return from_us(micros).isoformat(timespec="seconds").replace("+00:00", "Z")
