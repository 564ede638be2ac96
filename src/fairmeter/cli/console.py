"""Where CLI output goes, how errors are shown, and the runtime each command opens.

Results go to stdout so scripts can capture them; decoration, progress and errors go
to stderr. Errors are the API's problems (code, detail, field errors), never a traceback."""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from contextlib import contextmanager

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, OperationalError

from fairmeter.config import Settings
from fairmeter.domain.errors import FairmeterError
from fairmeter.services.runtime import Runtime
from fairmeter.wiring import build


def out() -> Console:
    # Built per call: Rich binds to the sys.stdout of the moment (CliRunner swaps it).
    return Console(soft_wrap=True, highlight=False)


def err() -> Console:
    return Console(stderr=True, soft_wrap=True, highlight=False)


def echo(text: str) -> None:
    """A plain line on stdout: no markup, no wrapping, safe to capture in $(...)."""
    typer.echo(text)


def note(text: str, style: str = "dim") -> None:
    err().print(Text(text, style=style))


def table(title: str, *headers: str) -> Table:
    """A table whose cells wrap rather than end in an ellipsis: keys and paths stay whole."""
    grid = Table(title=title)
    for header in headers:
        grid.add_column(header, overflow="fold")
    return grid


def show_problem(error: FairmeterError, options: Mapping[str, str] | None = None) -> None:
    """Print an error as the API would report it: code, detail, then each field at fault.

    `options` maps a field pointer such as "/value_property" to the option that sets it,
    so the message names what to change on the command line."""
    console = err()
    console.print(Text(f"error [{error.code}]: {error.detail}", style="bold red"))
    for field in error.errors:
        flag = _option_for(field.pointer, options or {})
        where = f"{field.pointer} ({flag})" if flag else field.pointer
        console.print(Text(f"  {where}: {field.detail} [{field.code}]", style="red"))


def fail(message: str) -> typer.Exit:
    """Report a usage problem in red and return the exit to raise."""
    err().print(Text(f"error: {message}", style="bold red"))
    return typer.Exit(1)


def _option_for(pointer: str, options: Mapping[str, str]) -> str | None:
    segments = pointer.split("/")
    for depth in range(len(segments), 1, -1):
        found = options.get("/".join(segments[:depth]))
        if found:
            return found
    return None


def mask_url(url: str) -> str:
    """The database URL with any password replaced by ***."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return re.sub(r"(://[^:/@]*:)[^@]*@", r"\1***@", url)


@contextmanager
def session(
    settings: Settings | None = None, options: Mapping[str, str] | None = None
) -> Iterator[Runtime]:
    """A migrated runtime for one command; domain and database errors end it cleanly."""
    settings = settings or Settings.from_env()
    rt: Runtime | None = None
    try:
        rt = build(settings)
        yield rt
    except FairmeterError as exc:
        show_problem(exc, options)
        raise typer.Exit(1) from None
    except ArgumentError as exc:
        raise fail(f"FAIRMETER_DATABASE_URL is not usable: {exc}") from None
    except OperationalError as exc:
        where = mask_url(settings.database_url)
        raise fail(f"the database {where} cannot be used: {exc.orig or exc}") from None
    finally:
        if rt is not None:
            rt.close()
