"""`fairmeter usage`: the API's usage query, as a table or as the API's JSON."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from click.testing import Result

Invoke = Callable[..., Result]
DAY = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0) - timedelta(days=3)


def _z(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


def _line(n: int, subject: str, at: datetime, tokens: int, model: str) -> str:
    data = {"tokens": tokens, "model": model}
    body = {"id": f"u{n}", "type": "api.request", "subject": subject, "time": _z(at), "data": data}
    return json.dumps(body)


@pytest.fixture
def usage_cli(cli: Invoke, tmp_path: Path) -> Invoke:
    meter = ("meters", "create", "tokens", "--event-type", "api.request", "--aggregation", "sum",
             "--value-property", "$.tokens", "--group-by", "model=$.model")  # fmt: skip
    assert cli(*meter).exit_code == 0
    assert cli("customers", "create", "acme").exit_code == 0
    assert cli("customers", "create", "tokyo", "--timezone", "Asia/Tokyo").exit_code == 0
    lines = [
        _line(1, "acme", DAY + timedelta(hours=10), 100, "small"),
        _line(2, "acme", DAY + timedelta(hours=11), 50, "large"),
        _line(3, "acme", DAY + timedelta(days=1, hours=10), 7, "small"),
        _line(4, "tokyo", DAY + timedelta(hours=16), 9, "small"),  # 01:00 next day in Tokyo
    ]
    path = tmp_path / "usage.jsonl"
    path.write_text("\n".join(lines) + "\n")
    assert cli("events", "import", str(path)).exit_code == 0
    return cli


def _json(cli: Invoke, *args: str) -> dict[str, Any]:
    result = cli("usage", "tokens", *args, "--json")
    assert result.exit_code == 0, result.output
    body: dict[str, Any] = json.loads(result.stdout)
    return body


def test_usage_per_day_matches_the_events_sent(usage_cli: Invoke) -> None:
    span = ("--from", _z(DAY), "--to", _z(DAY + timedelta(days=2)))
    body = _json(usage_cli, "--customer", "acme", "--window", "day", *span)
    assert body["window"] == "day" and body["timezone"] == "UTC"
    assert body["data"] == [
        {"from": _z(DAY), "to": _z(DAY + timedelta(days=1)), "customer": "acme", "group": {},
         "value": "150"},
        {"from": _z(DAY + timedelta(days=1)), "to": _z(DAY + timedelta(days=2)),
         "customer": "acme", "group": {}, "value": "7"},
    ]  # fmt: skip


def test_usage_groups_by_the_meters_groups(usage_cli: Invoke) -> None:
    span = ("--from", _z(DAY), "--to", _z(DAY + timedelta(days=2)))
    body = _json(usage_cli, "--customer", "acme", "--group-by", "model", *span)
    values = {row["group"]["model"]: row["value"] for row in body["data"]}
    assert values == {"large": "50", "small": "107"}


def test_usage_windows_follow_the_customers_time_zone(usage_cli: Invoke) -> None:
    tokyo_day = DAY + timedelta(hours=15)  # midnight in Tokyo (UTC+9)
    span = ("--from", _z(tokyo_day), "--to", _z(tokyo_day + timedelta(days=1)))
    local = _json(usage_cli, "--customer", "tokyo", "--window", "day", *span)
    utc = _json(usage_cli, "--customer", "tokyo", "--window", "day", "--timezone", "UTC", *span)
    assert local["timezone"] == "Asia/Tokyo"
    assert [row["value"] for row in local["data"]] == ["9"]
    assert [row["value"] for row in utc["data"]] == ["9", "0"]


def test_usage_table_shows_each_group_as_a_column(usage_cli: Invoke) -> None:
    span = ("--from", _z(DAY), "--to", _z(DAY + timedelta(days=2)))
    result = usage_cli(
        "usage", "tokens", "--customer", "acme", "--window", "day", "--group-by", "model", *span
    )
    assert result.exit_code == 0, result.output
    header = next(line for line in result.stdout.splitlines() if "customer" in line)
    assert "model" in header and "value" in header
    rows = [line for line in result.stdout.splitlines() if " acme " in line]
    assert len(rows) == 4  # two days x two models
    assert any("small" in r and " 100 " in r for r in rows)
    assert any(DAY.strftime("%Y-%m-%d 00:00") in r for r in rows)


@pytest.mark.parametrize(
    ("args", "field"),
    [
        (("--timezone", "Mars/Olympus"), "/timezone (--timezone)"),
        (("--from", "yesterday"), "/from (--from)"),
        (("--from", "2026-11-02T00:00:00Z", "--to", "2026-11-01T00:00:00Z"), "/from (--from)"),
        (("--group-by", "region"), "/group_by (--group-by)"),
    ],
)
def test_bad_usage_query_names_the_option(
    usage_cli: Invoke, args: tuple[str, ...], field: str
) -> None:
    result = usage_cli("usage", "tokens", *args)
    assert result.exit_code == 1
    assert field in result.stderr and "Traceback" not in result.output


def test_usage_of_an_unknown_meter_is_not_found(usage_cli: Invoke) -> None:
    result = usage_cli("usage", "nope")
    assert result.exit_code == 1
    assert "not_found" in result.stderr
