"""`fairmeter events import`: JSON Lines of CloudEvents, with progress, resumable."""

from __future__ import annotations

import sys
from collections.abc import Iterable
from pathlib import Path

import typer
from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn, TimeRemainingColumn
from rich.text import Text

from fairmeter.cli.console import echo, err, fail, note, session
from fairmeter.cli.importer import (
    CHECKPOINT_SUFFIX,
    Checkpoint,
    ImportReport,
    Position,
    import_lines,
)
from fairmeter.services.runtime import Runtime

app = typer.Typer(help="Send usage events.", no_args_is_help=True)
SHOWN_REJECTIONS = 10

_EPILOG = (
    "Examples:\n\n"
    "  fairmeter events import usage-2026-11.jsonl --source billing-export\n\n"
    "  gunzip -c old.jsonl.gz | fairmeter events import - --batch-size 5000\n\n"
    "Nothing is counted twice. Each event is stored once under its (source, id). A line "
    "without an id gets one derived from the line's content and its line number (not the "
    "file's path, so the same file imported from another place still dedupes; two identical "
    "lines stay two events). Keep --source the same across re-runs: it is part of the "
    f"identity. For a file, FILE{CHECKPOINT_SUFFIX} records the last committed batch so "
    "a re-run continues from there; --restart reads the whole file again (the lines already "
    "stored then count as duplicates). Lines without specversion get 1.0; lines without "
    "time are recorded at the time of import.\n\n"
    "Exit status is 1 when lines were read and none was accepted or a duplicate, as the "
    "API answers 422; rejected lines are listed with their line numbers."
)


@app.command("import", epilog=_EPILOG)
def import_(
    file: str = typer.Argument(..., metavar="FILE.jsonl|-", help="A file, or - for stdin."),
    batch_size: int = typer.Option(1000, "--batch-size", help="Events per transaction."),
    source: str = typer.Option("import", "--source", help="The source of lines that name none."),
    restart: bool = typer.Option(
        False, "--restart", help="Ignore the checkpoint and read the file from the top."
    ),
) -> None:
    """Import JSON Lines of CloudEvents (one event object per line).

    Events go through the same validation as POST /v1/events, in batches."""
    with session() as rt:
        if not 1 <= batch_size <= rt.policy.max_batch_events:
            raise fail(f"--batch-size must be between 1 and {rt.policy.max_batch_events}")
        if file == "-":
            report = _run(rt, sys.stdin.buffer, Position(), source, batch_size, None, None)
        else:
            report = _import_file(rt, Path(file), source, batch_size, restart)
    _summarize(file, report)
    if report.rejected and not report.accepted and not report.duplicates:
        raise typer.Exit(1)


def _import_file(
    rt: Runtime, path: Path, source: str, batch_size: int, restart: bool
) -> ImportReport:
    if not path.is_file():
        raise fail(f"{path} is not a file")
    checkpoint = Checkpoint(path)
    start = Position()
    if not restart:
        start, ignored = checkpoint.load()
        if ignored:
            note(f"Reading from the top: {ignored}.", "yellow")
        elif start.offset:
            note(
                f"Resuming after line {start.line} (byte {start.offset}) as recorded in "
                f"{checkpoint.path.name}; --restart reads from the top."
            )
    size = path.stat().st_size
    with path.open("rb") as stream:
        stream.seek(start.offset)
        return _run(rt, stream, start, source, batch_size, size, checkpoint)


def _run(
    rt: Runtime,
    lines: Iterable[bytes],
    start: Position,
    source: str,
    batch_size: int,
    size: int | None,
    checkpoint: Checkpoint | None,
) -> ImportReport:
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        TaskProgressColumn(),
        TextColumn("{task.fields[lines]} lines"),
        TimeRemainingColumn(),
    )
    console = err()
    # Only a terminal gets a live bar; logs and pipes get the summary alone.
    live = Progress(*columns, console=console, transient=True, disable=not console.is_terminal)
    with live as progress:
        total = None if size is None else max(size - start.offset, 1)
        task = progress.add_task("Importing", total=total, lines=0)

        def committed(position: Position) -> None:
            if checkpoint is not None:
                checkpoint.save(position)
            done = position.offset - start.offset
            progress.update(task, completed=done, lines=position.line - start.line)

        return import_lines(rt, lines, start, source, batch_size, committed)


def _summarize(file: str, report: ImportReport) -> None:
    read = report.end.line - report.start.line
    where = "stdin" if file == "-" else file
    first = report.start.line + 1
    echo(
        f"Imported {where}: {report.accepted} accepted, {report.duplicates} duplicates, "
        f"{report.rejected} rejected ({read} lines read from line {first})."
    )
    console = err()
    for rejection in report.examples[:SHOWN_REJECTIONS]:
        for error in rejection.errors:
            text = f"  line {rejection.line}: {error.pointer}: {error.detail} [{error.code}]"
            console.print(Text(text, style="red"))
    hidden = report.rejected - min(len(report.examples), SHOWN_REJECTIONS)
    if hidden > 0:
        console.print(Text(f"  ... and {hidden} more rejected lines", style="red"))
