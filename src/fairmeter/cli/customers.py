"""`fairmeter customers`: the accounts usage is attributed to."""

from __future__ import annotations

import json

import typer

from fairmeter.api import render
from fairmeter.cli.console import echo, out, session, table
from fairmeter.domain.customers import Customer, parse_customer
from fairmeter.services import catalog
from fairmeter.storage.database import Database

app = typer.Typer(help="Create and list customers.", no_args_is_help=True)

OPTIONS = {
    "/key": "KEY",
    "/name": "--name",
    "/email": "--email",
    "/currency": "--currency",
    "/timezone": "--timezone",
}
PAGE = 1000


@app.command(
    "create",
    epilog="Example:\n\n  fairmeter customers create acme --name 'Acme Corp'"
    " --email billing@acme.example --currency EUR --timezone Europe/Madrid",
)
def create(
    key: str = typer.Argument(..., help="The customer's key: events name it as their subject."),
    name: str | None = typer.Option(None, "--name", help="Display name (default: the key)."),
    email: str | None = typer.Option(None, "--email", help="Where invoices and warnings go."),
    currency: str = typer.Option("USD", "--currency", help="ISO 4217 code."),
    timezone: str = typer.Option(
        "UTC", "--timezone", help="IANA zone; days and months are counted in it."
    ),
) -> None:
    """Create a customer."""
    body: dict[str, object] = {"key": key, "currency": currency, "timezone": timezone}
    if name is not None:
        body["name"] = name
    if email is not None:
        body["email"] = email
    with session(options=OPTIONS) as rt:
        created = catalog.create_customer(rt.db, rt.clock, parse_customer(body))
    echo(f"Created customer {created.key} ({created.currency}, {created.timezone}).")


@app.command("list", epilog="Example:\n\n  fairmeter customers list --json")
def list_(
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of a table."),
) -> None:
    """List every customer, by key."""
    with session() as rt:
        customers = _all(rt.db)
    if as_json:
        echo(json.dumps({"data": [render.customer(c) for c in customers]}, indent=2))
        return
    grid = table("Customers", "key", "name", "email", "currency", "timezone")
    for c in customers:
        grid.add_row(c.key, c.name, c.email or "-", c.currency, c.timezone)
    out().print(grid)


def _all(db: Database) -> list[Customer]:
    found: list[Customer] = []
    after: str | None = None
    while True:
        page = catalog.list_customers(db, after, PAGE)
        found.extend(page)
        if len(page) < PAGE:
            return found
        after = page[-1].key
