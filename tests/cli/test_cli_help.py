"""Every command explains itself, with an example to copy."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from click.testing import Result

Invoke = Callable[..., Result]

COMMANDS = [
    "serve", "migrate", "usage", "demo", "keys create", "keys list", "meters create",
    "meters list", "customers create", "customers list", "events import",
]  # fmt: skip


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_help_has_an_example(cli: Invoke, command: str) -> None:
    result = cli(*command.split(), "--help")
    assert result.exit_code == 0, result.output
    assert "Example" in result.stdout
    assert f"fairmeter {command}" in result.stdout.split("Example", 1)[1]


def test_bare_command_lists_the_commands(cli: Invoke) -> None:
    result = cli()
    for command in ("serve", "migrate", "demo", "keys", "meters", "customers", "events", "usage"):
        assert command in result.output
