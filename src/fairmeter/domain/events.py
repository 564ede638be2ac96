"""Usage events: what an accepted event is, and the rules for admitting one."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import NamedTuple

from fairmeter.domain.errors import FieldError

MAX_ATTRIBUTE_LENGTH = 256
FUTURE_TOLERANCE = timedelta(minutes=5)


class UsageEvent(NamedTuple):
    """An event as stored: identity (source, id), attribution and canonical content.

    `digest` fingerprints the content as sent (type, subject, time if given, data) so a
    resend of the same identity can be told apart from a conflicting one.

    A tuple rather than a frozen dataclass: ingest builds one per event, and the
    dataclass's __init__ (one object.__setattr__ per field) costs three times as much.
    """

    source: str
    id: str
    type: str
    subject: str
    time_us: int
    data: Mapping[str, object]
    data_json: bytes
    digest: bytes


@dataclass(frozen=True, slots=True)
class IngestPolicy:
    backdate_window: timedelta = timedelta(days=35)
    max_batch_events: int = 10_000
    max_body_bytes: int = 1024 * 1024


@dataclass(frozen=True, slots=True)
class Rejection:
    index: int
    id: str | None
    errors: tuple[FieldError, ...]

    def as_dict(self) -> dict[str, object]:
        return {
            "index": self.index,
            "id": self.id,
            "errors": [e.as_dict() for e in self.errors],
        }


@dataclass(frozen=True, slots=True)
class IngestResult:
    accepted: int
    duplicates: int
    rejected: tuple[Rejection, ...]

    def as_dict(self) -> dict[str, object]:
        return {
            "accepted": self.accepted,
            "duplicates": self.duplicates,
            "rejected": [r.as_dict() for r in self.rejected],
        }


def attributes_fine(specversion: object, *values: object) -> bool:
    """The common case, checked without building anything (a loop, not a generator:
    this runs once per ingested event)."""
    if specversion != "1.0":
        return False
    for value in values:
        if type(value) is not str or not 0 < len(value) <= MAX_ATTRIBUTE_LENGTH:
            return False
    return True


def attribute_errors(prefix: str, attributes: Mapping[str, object]) -> list[FieldError]:
    """CloudEvents context attributes that must be present, non-empty, bounded strings."""
    errors: list[FieldError] = []
    for name in ("id", "source", "type", "subject"):
        value = attributes.get(name)
        if value is None or value == "":
            detail = "is required (the customer's key)" if name == "subject" else "is required"
            errors.append(FieldError(f"{prefix}/{name}", detail, "required"))
        elif not isinstance(value, str) or len(value) > MAX_ATTRIBUTE_LENGTH:
            errors.append(
                FieldError(
                    f"{prefix}/{name}",
                    f"must be a string of at most {MAX_ATTRIBUTE_LENGTH} characters",
                )
            )
    if attributes.get("specversion") != "1.0":
        errors.append(FieldError(f"{prefix}/specversion", 'must be "1.0"', "unsupported_version"))
    return errors


def time_error(
    prefix: str, time: datetime, now: datetime, policy: IngestPolicy
) -> FieldError | None:
    if time > now + FUTURE_TOLERANCE:
        return FieldError(
            f"{prefix}/time",
            f"is more than {int(FUTURE_TOLERANCE.total_seconds() // 60)} minutes in the future",
            "time_in_future",
        )
    if time < now - policy.backdate_window:
        return FieldError(
            f"{prefix}/time",
            f"is older than the backdating window of {policy.backdate_window.days} days",
            "time_too_old",
        )
    return None
