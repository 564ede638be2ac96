"""Run the CLI in-process, as a user would type it, against a database of its own."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
from click.testing import Result
from typer.testing import CliRunner

from fairmeter.cli.main import app
from fairmeter.config import Settings
from fairmeter.services.runtime import Runtime
from fairmeter.wiring import build

Invoke = Callable[..., Result]


def _invoke(*args: str, input: str | bytes | None = None) -> Result:
    result = CliRunner().invoke(app, list(args), input=input)
    # Every failure must be a deliberate exit with a message, never an escaped exception.
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise AssertionError(f"fairmeter {' '.join(args)} crashed") from result.exception
    return result


@pytest.fixture
def cli_url(sqlite_url: str, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("FAIRMETER_DATABASE_URL", sqlite_url)
    # Wide enough that Rich tables keep each cell on one line.
    monkeypatch.setenv("COLUMNS", "240")
    return sqlite_url


@pytest.fixture
def cli(cli_url: str) -> Invoke:
    """`fairmeter ...` on a fresh SQLite file."""
    return _invoke


@pytest.fixture
def cli_any(database_url: str, monkeypatch: pytest.MonkeyPatch) -> Invoke:
    """`fairmeter ...` once on SQLite and once on PostgreSQL."""
    monkeypatch.setenv("FAIRMETER_DATABASE_URL", database_url)
    monkeypatch.setenv("COLUMNS", "240")
    return _invoke


@pytest.fixture
def rt_of_env() -> Iterator[Callable[[], Runtime]]:
    """A runtime on the database the CLI uses, to check what it stored."""
    opened: list[Runtime] = []

    def open_() -> Runtime:
        rt = build(Settings.from_env())
        opened.append(rt)
        return rt

    yield open_
    for rt in opened:
        rt.close()
