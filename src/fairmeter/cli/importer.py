"""Import JSON Lines of CloudEvents through the same parsing and ingest as POST /v1/events.

Nothing is counted twice, however often an import is re-run or interrupted: every event
is stored under its (source, id), and a line without an id gets one derived from its
content and line number. A checkpoint file next to the input records how far the last
committed batch reached, so a re-run skips what is already stored instead of re-reading it.
"""

from __future__ import annotations

import hashlib
import json
import os
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path

import msgspec

from fairmeter.api import codec
from fairmeter.domain.errors import FieldError
from fairmeter.domain.windows import to_us
from fairmeter.services.ingest import record_events
from fairmeter.services.runtime import Runtime

CHECKPOINT_SUFFIX = ".fairmeter-progress"
# Fixed forever: derived ids must stay the same across versions, or re-imports would count.
ID_NAMESPACE = uuid.UUID("0f5e3c9a-6b7d-5e21-9c4f-3a8d2b1e7f60")
HEAD_BYTES = 64 * 1024
KEEP_REJECTIONS = 20

_DECODER = msgspec.json.Decoder(float_hook=Decimal)
_ENCODER = msgspec.json.Encoder(decimal_format="number")


@dataclass(frozen=True)
class Position:
    """A point between lines: the byte offset and how many lines lie before it."""

    offset: int = 0
    line: int = 0


@dataclass(frozen=True)
class LineRejection:
    line: int
    id: str | None
    errors: tuple[FieldError, ...]


@dataclass
class ImportReport:
    start: Position
    end: Position
    accepted: int = 0
    duplicates: int = 0
    rejected: int = 0
    examples: list[LineRejection] = field(default_factory=list)

    def reject(self, rejection: LineRejection) -> None:
        self.rejected += 1
        # Batches report after the lines read since; keep the earliest lines, in order.
        self.examples.append(rejection)
        self.examples.sort(key=lambda r: r.line)
        del self.examples[KEEP_REJECTIONS:]


def derive_id(line: int, content: bytes) -> str:
    """The id of a line that has none: the same line at the same place gives the same id.

    The content (not the file's path) is hashed, so the same file re-imported from
    elsewhere still dedupes; the line number keeps two identical lines two events."""
    digest = hashlib.sha256(content).hexdigest()
    return str(uuid.uuid5(ID_NAMESPACE, f"{line}:{digest}"))


def prepare(line: int, content: bytes, source: str) -> dict[str, object] | LineRejection:
    """One line as a CloudEvent with the defaults filled in, or why it cannot be one."""
    try:
        event = _DECODER.decode(content)
    except msgspec.DecodeError as exc:
        return LineRejection(line, None, (FieldError("/", f"not valid JSON: {exc}", "malformed"),))
    if not isinstance(event, dict):
        detail = "must be a JSON object (one CloudEvent per line)"
        return LineRejection(line, None, (FieldError("/", detail, "invalid_type"),))
    if event.get("id") is None:
        event["id"] = derive_id(line, content)
    if event.get("source") is None:
        event["source"] = source
    event.setdefault("specversion", "1.0")
    return event


Committed = Callable[[Position], None]


def import_lines(
    rt: Runtime,
    lines: Iterable[bytes],
    start: Position,
    source: str,
    batch_size: int,
    committed: Committed = lambda _: None,
) -> ImportReport:
    """Read lines from `start` on, send them in batches; call `committed` after each batch."""
    report = ImportReport(start=start, end=start)
    position = start
    pending: list[tuple[int, dict[str, object]]] = []
    for raw in lines:
        position = Position(position.offset + len(raw), position.line + 1)
        content = raw.strip()
        if not content:
            continue
        prepared = prepare(position.line, content, source)
        if isinstance(prepared, LineRejection):
            report.reject(prepared)
        else:
            pending.append((position.line, prepared))
        if len(pending) >= batch_size:
            _send(rt, pending, report)
            pending = []
            report.end = position
            committed(position)
    if pending:
        _send(rt, pending, report)
    report.end = position
    committed(position)
    return report


def _send(rt: Runtime, pending: list[tuple[int, dict[str, object]]], report: ImportReport) -> None:
    now = rt.clock.now()
    body = _ENCODER.encode([event for _, event in pending])
    items, rejected = codec.parse_batch(body, now, rt.policy)
    result = record_events(rt.db, items, rejected, received_us=to_us(now))
    report.accepted += result.accepted
    report.duplicates += result.duplicates
    for r in result.rejected:
        prefix = f"/{r.index}"
        errors = tuple(FieldError(_within(e.pointer, prefix), e.detail, e.code) for e in r.errors)
        report.reject(LineRejection(pending[r.index][0], r.id, errors))


def _within(pointer: str, prefix: str) -> str:
    """'/3/time' in a batch is '/time' on its own line."""
    if pointer == prefix:
        return "/"
    return pointer[len(prefix) :] if pointer.startswith(prefix + "/") else pointer


class Checkpoint:
    """`FILE.fairmeter-progress`: where the last committed batch of FILE ended.

    It also keeps a fingerprint of the file's first bytes, so a checkpoint left by a
    different file of the same name is ignored rather than trusted to skip lines."""

    def __init__(self, file: Path):
        self.file = file
        self.path = file.with_name(file.name + CHECKPOINT_SUFFIX)

    def load(self) -> tuple[Position, str | None]:
        """Where to resume, and why the checkpoint was ignored if it was."""
        try:
            data = json.loads(self.path.read_text())
            position = Position(int(data["offset"]), int(data["line"]))
            head = str(data["head"])
        except FileNotFoundError:
            return Position(), None
        except (OSError, ValueError, KeyError, TypeError):
            return Position(), f"{self.path.name} is unreadable"
        if not self._fits(position, head):
            return Position(), f"{self.file.name} changed since {self.path.name} was written"
        return position, None

    def save(self, position: Position) -> None:
        data = {"offset": position.offset, "line": position.line, "head": self._head(position)}
        temporary = self.path.with_name(self.path.name + ".tmp")
        temporary.write_text(json.dumps(data) + "\n")
        os.replace(temporary, self.path)

    def _fits(self, position: Position, head: str) -> bool:
        if position.offset < 0 or position.line < 0:
            return False
        with self.file.open("rb") as stream:
            size = stream.seek(0, os.SEEK_END)
            if position.offset > size:
                return False
            if 0 < position.offset < size:
                stream.seek(position.offset - 1)
                if stream.read(1) != b"\n":
                    return False
        return head == self._head(position)

    def _head(self, position: Position) -> str:
        with self.file.open("rb") as stream:
            prefix = stream.read(min(position.offset, HEAD_BYTES))
        return hashlib.sha256(prefix).hexdigest()
