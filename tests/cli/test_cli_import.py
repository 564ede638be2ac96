"""`fairmeter events import`: exact counts, line numbers, and nothing ever counted twice."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from click.testing import Result

from fairmeter.cli.importer import CHECKPOINT_SUFFIX, Checkpoint, Position

Invoke = Callable[..., Result]


def _event(**fields: object) -> str:
    body: dict[str, object] = {"type": "api.request", "subject": "acme", "data": {"tokens": 1}}
    body.update(fields)
    return json.dumps(body)


def _ago(minutes: int) -> str:
    return (datetime.now(UTC) - timedelta(minutes=minutes)).isoformat()


def _write(path: Path, lines: list[str]) -> Path:
    path.write_text("".join(line + "\n" for line in lines))
    return path


def _offset_after(path: Path, lines: int) -> int:
    return sum(len(line) for line in path.read_bytes().splitlines(keepends=True)[:lines])


@pytest.fixture
def setup(cli_any: Invoke) -> Invoke:
    """A count meter on api.request and the customer acme."""
    meter = ("meters", "create", "calls", "--event-type", "api.request", "--aggregation", "count")
    assert cli_any(*meter).exit_code == 0
    assert cli_any("customers", "create", "acme").exit_code == 0
    return cli_any


def _stored(cli: Invoke) -> int:
    since = (datetime.now(UTC) - timedelta(days=2)).isoformat()
    result = cli("usage", "calls", "--customer", "acme", "--from", since, "--json")
    assert result.exit_code == 0, result.output
    return int(json.loads(result.stdout)["data"][0]["value"])


def _summary(accepted: int, duplicates: int, rejected: int) -> str:
    return f"{accepted} accepted, {duplicates} duplicates, {rejected} rejected"


@pytest.mark.parametrize("batch_size", ["2", "1000"])
def test_import_counts_each_line_once_and_names_rejected_lines(
    setup: Invoke, tmp_path: Path, batch_size: str
) -> None:
    first = _event(id="e1", source="gw", specversion="1.0", time=_ago(5))
    path = _write(
        tmp_path / "events.jsonl",
        [
            first,
            _event(id="e2", time=_ago(4)),
            "",
            "{not json",
            first,  # the same event again: a duplicate
            _event(id="e3", time=(datetime.now(UTC) + timedelta(days=1)).isoformat()),
            _event(),  # no id, source or specversion: defaults fill them in
            _event(id="e1", source="gw", time=_ago(5), data={"tokens": 2}),  # id reused
        ],
    )
    result = setup("events", "import", str(path), "--batch-size", batch_size)
    assert result.exit_code == 0, result.output
    assert _summary(3, 1, 3) in result.stdout
    assert "8 lines read from line 1" in result.stdout
    assert "line 4: /: not valid JSON" in result.stderr
    assert "line 6: /time: is more than 5 minutes in the future [time_in_future]" in result.stderr
    assert "line 8: /: an event with source 'gw' and id 'e1' was already recorded" in (
        result.stderr
    )
    assert _stored(setup) == 3


def test_reimport_counts_nothing_twice(setup: Invoke, tmp_path: Path) -> None:
    path = _write(tmp_path / "e.jsonl", [_event(time=_ago(n)) for n in range(1, 6)])
    assert _summary(5, 0, 0) in setup("events", "import", str(path)).stdout
    again = setup("events", "import", str(path))
    restarted = setup("events", "import", str(path), "--restart")
    assert _summary(0, 0, 0) in again.stdout and "0 lines read from line 6" in again.stdout
    assert _summary(0, 5, 0) in restarted.stdout
    assert _stored(setup) == 5


def test_same_content_from_another_path_still_dedupes(setup: Invoke, tmp_path: Path) -> None:
    path = _write(tmp_path / "e.jsonl", [_event(time=_ago(n)) for n in range(1, 4)])
    elsewhere = tmp_path / "copy" / "renamed.jsonl"
    elsewhere.parent.mkdir()
    shutil.copy(path, elsewhere)
    setup("events", "import", str(path))
    assert _summary(0, 3, 0) in setup("events", "import", str(elsewhere)).stdout
    assert _stored(setup) == 3


def test_identical_lines_without_id_are_separate_events(setup: Invoke, tmp_path: Path) -> None:
    line = _event(time=_ago(3))
    path = _write(tmp_path / "e.jsonl", [line, line, line])
    assert _summary(3, 0, 0) in setup("events", "import", str(path)).stdout


def test_interrupted_import_resumes_after_the_last_committed_batch(
    setup: Invoke, tmp_path: Path
) -> None:
    lines = [_event(time=_ago(n)) for n in range(1, 7)]
    full = _write(tmp_path / "full.jsonl", lines)
    # The first two batches of two made it before the "crash": import them the same way
    # (derived ids depend on content and line number only), then leave the checkpoint.
    (tmp_path / "done").mkdir()
    done = _write(tmp_path / "done" / "full.jsonl", lines[:4])
    setup("events", "import", str(done), "--batch-size", "2")
    Checkpoint(full).save(Position(_offset_after(full, 4), 4))

    result = setup("events", "import", str(full), "--batch-size", "2")
    assert "Resuming after line 4" in result.stderr
    assert _summary(2, 0, 0) in result.stdout and "2 lines read from line 5" in result.stdout
    assert _stored(setup) == 6


def test_checkpoint_behind_the_stored_batches_counts_them_as_duplicates(
    setup: Invoke, tmp_path: Path
) -> None:
    path = _write(tmp_path / "e.jsonl", [_event(time=_ago(n)) for n in range(1, 7)])
    setup("events", "import", str(path))
    # Killed after a commit but before the checkpoint was written: two batches behind.
    Checkpoint(path).save(Position(_offset_after(path, 2), 2))
    result = setup("events", "import", str(path))
    assert _summary(0, 4, 0) in result.stdout
    assert _stored(setup) == 6


def test_checkpoint_of_a_changed_file_is_ignored(setup: Invoke, tmp_path: Path) -> None:
    path = _write(tmp_path / "e.jsonl", [_event(id=f"a{n}", time=_ago(n)) for n in range(3)])
    setup("events", "import", str(path))
    _write(path, [_event(id=f"b{n}", time=_ago(n)) for n in range(4)])
    result = setup("events", "import", str(path))
    assert "changed since" in result.stderr
    assert _summary(4, 0, 0) in result.stdout
    assert (tmp_path / f"e.jsonl{CHECKPOINT_SUFFIX}").exists()


def test_stdin_import_relies_on_dedupe_alone(setup: Invoke) -> None:
    body = "\n".join(_event(time=_ago(n)) for n in range(1, 5)) + "\n"
    first = setup("events", "import", "-", input=body)
    second = setup("events", "import", "-", input=body)
    assert _summary(4, 0, 0) in first.stdout and "Imported stdin" in first.stdout
    assert _summary(0, 4, 0) in second.stdout
    assert _stored(setup) == 4


def test_import_of_nothing_but_bad_lines_exits_1(cli: Invoke, tmp_path: Path) -> None:
    path = _write(tmp_path / "bad.jsonl", ["[1, 2]", _event(subject=None)])
    result = cli("events", "import", str(path))
    assert result.exit_code == 1
    assert _summary(0, 0, 2) in result.stdout
    assert "line 1: /: must be a JSON object" in result.stderr
    assert "line 2: /subject: is required" in result.stderr


def test_missing_file_and_oversized_batch_are_usage_errors(cli: Invoke, tmp_path: Path) -> None:
    missing = cli("events", "import", str(tmp_path / "nope.jsonl"))
    path = _write(tmp_path / "e.jsonl", [_event()])
    too_big = cli("events", "import", str(path), "--batch-size", "10001")
    assert missing.exit_code == 1 and "is not a file" in missing.stderr
    assert too_big.exit_code == 1 and "--batch-size must be between 1 and 10000" in too_big.stderr
