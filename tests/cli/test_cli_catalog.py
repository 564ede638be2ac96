"""keys, meters, customers and migrate, as typed on a terminal."""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest
from click.testing import Result

from fairmeter.cli.console import mask_url
from fairmeter.domain.errors import Forbidden
from fairmeter.domain.keys import Scope
from fairmeter.services.keys import permitted, scope_of
from fairmeter.services.runtime import Runtime

Invoke = Callable[..., Result]


def test_created_key_is_the_only_stdout_line_and_authenticates(
    cli: Invoke, rt_of_env: Callable[[], Runtime]
) -> None:
    result = cli("keys", "create", "--scope", "admin", "--name", "ops")
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert len(lines) == 1, "scripts capture the key with $(...): nothing else on stdout"
    assert "shown only once" in result.stderr
    assert scope_of(rt_of_env().db, lines[0]) is Scope.ADMIN


def test_ingest_key_from_cli_cannot_administer(
    cli: Invoke, rt_of_env: Callable[[], Runtime]
) -> None:
    key = cli("keys", "create", "--scope", "ingest").stdout.strip()
    db = rt_of_env().db
    assert permitted(scope_of(db, key), Scope.INGEST) is Scope.INGEST
    with pytest.raises(Forbidden):
        permitted(scope_of(db, key), Scope.ADMIN)


def test_key_list_shows_name_scope_and_prefix_but_never_the_key(cli: Invoke) -> None:
    key = cli("keys", "create", "--scope", "ingest", "--name", "gateway").stdout.strip()
    table = cli("keys", "list")
    listed = json.loads(cli("keys", "list", "--json").stdout)["data"]
    assert table.exit_code == 0, table.output
    assert key not in table.output
    assert key[:10] in table.stdout and "gateway" in table.stdout
    assert [(k["name"], k["scope"], k["prefix"]) for k in listed] == [
        ("gateway", "ingest", key[:10])
    ]
    assert key not in json.dumps(listed)


def test_meter_created_by_cli_is_listed(cli: Invoke) -> None:
    created = cli(
        "meters", "create", "tokens", "--event-type", "api.request", "--aggregation", "sum",
        "--value-property", "$.tokens", "--group-by", "model=$.model",
        "--group-by", "region=$.geo.region", "--unit", "tokens", "--name", "LLM tokens",
    )  # fmt: skip
    table = cli("meters", "list")
    listed = json.loads(cli("meters", "list", "--json").stdout)["data"]
    assert created.exit_code == 0, created.output
    assert "Created meter tokens" in created.stdout
    assert listed == [
        {
            "key": "tokens",
            "name": "LLM tokens",
            "event_type": "api.request",
            "aggregation": "sum",
            "value_property": "$.tokens",
            "group_by": {"model": "$.model", "region": "$.geo.region"},
            "unit": "tokens",
            "archived": False,
        }
    ]
    assert "region=$.geo.region" in table.stdout


def test_bad_meter_input_names_every_field_at_fault_and_exits_1(cli: Invoke) -> None:
    result = cli(
        "meters", "create", "Tokens", "--event-type", "api.request", "--aggregation", "avg",
        "--value-property", "tokens", "--group-by", "model",
    )  # fmt: skip
    assert result.exit_code == 1
    assert result.stdout == ""
    assert "invalid_input" in result.stderr
    for pointer, option in [
        ("/key", "KEY"),
        ("/aggregation", "--aggregation"),
        ("/value_property", "--value-property"),
        ("/group_by", "--group-by"),
    ]:
        assert f"{pointer} ({option})" in result.stderr
    assert "Traceback" not in result.output
    assert "must be one of count, sum, max, unique_count, latest" in result.stderr


def test_count_meter_with_a_value_property_is_refused_like_the_api(cli: Invoke) -> None:
    result = cli(
        "meters", "create", "calls", "--event-type", "api.request", "--aggregation", "count",
        "--value-property", "$.tokens",
    )  # fmt: skip
    assert result.exit_code == 1
    assert "/value_property (--value-property): a count meter takes no value_property" in (
        result.stderr
    )


def test_meter_key_taken_is_already_exists(cli: Invoke) -> None:
    args = ("meters", "create", "calls", "--event-type", "api.request", "--aggregation", "count")
    assert cli(*args).exit_code == 0
    again = cli(*args)
    assert again.exit_code == 1
    assert "already_exists" in again.stderr and "/key (KEY): is taken" in again.stderr


def test_customer_created_by_cli_is_listed(cli: Invoke) -> None:
    created = cli(
        "customers", "create", "acme", "--name", "Acme Corp", "--email", "billing@acme.example",
        "--currency", "EUR", "--timezone", "Europe/Madrid",
    )  # fmt: skip
    cli("customers", "create", "zeta")
    listed = json.loads(cli("customers", "list", "--json").stdout)["data"]
    table = cli("customers", "list")
    assert created.exit_code == 0, created.output
    assert [(c["key"], c["name"], c["currency"], c["timezone"]) for c in listed] == [
        ("acme", "Acme Corp", "EUR", "Europe/Madrid"),
        ("zeta", "zeta", "USD", "UTC"),
    ]
    assert "billing@acme.example" in table.stdout and "Europe/Madrid" in table.stdout


def test_bad_customer_input_names_each_option(cli: Invoke) -> None:
    result = cli(
        "customers", "create", "acme", "--email", "nope", "--currency", "XYZ",
        "--timezone", "Mars/Olympus",
    )  # fmt: skip
    assert result.exit_code == 1
    for option in ("--email", "--currency", "--timezone"):
        assert f"({option})" in result.stderr
    assert json.loads(cli("customers", "list", "--json").stdout)["data"] == []


def test_migrate_reports_up_to_date_and_hides_the_password(
    cli: Invoke, pg_base_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The test server trusts every login, so any password works; it must never be printed.
    url = pg_base_url.replace("postgres@", "postgres:s3cret@")
    monkeypatch.setenv("FAIRMETER_DATABASE_URL", url)
    result = cli("migrate")
    assert result.exit_code == 0, result.output
    assert "up to date" in result.stdout
    assert "s3cret" not in result.output and "***" in result.stdout


def test_masked_url_keeps_everything_but_the_password() -> None:
    assert mask_url("postgresql://fm:pa:ss@db:5432/x") == "postgresql://fm:***@db:5432/x"
    assert mask_url("sqlite:///./fairmeter.db") == "sqlite:///./fairmeter.db"


def test_unreachable_database_is_one_line_not_a_traceback(
    cli: Invoke, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FAIRMETER_DATABASE_URL", "postgresql://fm:s3cret@127.0.0.1:1/none")
    result = cli("meters", "list")
    assert result.exit_code == 1
    assert "cannot be used" in result.stderr and "s3cret" not in result.output
