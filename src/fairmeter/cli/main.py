"""The `fairmeter` command: every use case of the service, from a terminal.

Each command opens the database named by FAIRMETER_DATABASE_URL (default
./fairmeter.db), applies pending migrations, and calls the same services as the API."""

from __future__ import annotations

import typer

from fairmeter import __version__
from fairmeter.cli import billing, customers, demo, events, keys, meters, server, usage, worker

app = typer.Typer(
    name="fairmeter",
    help="Self-hosted usage metering for API businesses. Start with: fairmeter demo",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
)
app.add_typer(keys.app, name="keys")
app.add_typer(meters.app, name="meters")
app.add_typer(customers.app, name="customers")
app.add_typer(events.app, name="events")
app.add_typer(billing.app, name="invoices")
app.command(
    "serve",
    epilog="Examples:\n\n  fairmeter serve\n\n"
    "  FAIRMETER_DATABASE_URL=postgresql://fm@db/fairmeter fairmeter serve --host 0.0.0.0",
)(server.serve)
app.command(
    "migrate",
    epilog="Example:\n\n"
    "  FAIRMETER_DATABASE_URL=postgresql://fm:secret@db/fairmeter fairmeter migrate",
)(server.migrate)
app.command("usage", epilog=usage.EPILOG)(usage.usage)
app.command("demo", epilog=demo.EPILOG)(demo.demo)
app.command("bill", epilog=billing.BILL_EPILOG)(billing.bill)
app.command("worker", epilog=worker.EPILOG)(worker.worker)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"fairmeter {__version__}")
        raise typer.Exit()


@app.callback()
def main(
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print the version and exit."
    ),
) -> None:
    """Self-hosted usage metering for API businesses. Start with: fairmeter demo"""


if __name__ == "__main__":
    app()
