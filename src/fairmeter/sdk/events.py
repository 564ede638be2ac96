"""Usage events as CloudEvents 1.0, with the id fixed once so resends deduplicate."""

from __future__ import annotations

import os
import re
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from ._json import rfc3339

__all__ = ["DEFAULT_SOURCE", "Event", "build_event", "new_event_id", "to_cloudevent"]

DEFAULT_SOURCE = "fairmeter-sdk"
SPECVERSION = "1.0"

# CloudEvents attribute names: lower-case ASCII letters and digits only.
_ATTRIBUTE_NAME = re.compile(r"[a-z0-9]+")
_RESERVED = frozenset({"specversion", "id", "source", "type", "subject", "time", "data"})


def new_event_id() -> str:
    """A UUIDv7 (RFC 9562): 48 bits of Unix milliseconds, then 74 random bits.

    Unique like a uuid4, but ids of one client grow with time, so the server's identity
    index takes them near its right edge instead of on a random page: several times
    cheaper to store than random ids."""
    millis = time.time_ns() // 1_000_000
    random = int.from_bytes(os.urandom(10), "big")
    value = (millis & (1 << 48) - 1) << 80 | 0x7 << 76 | (random >> 62 & 0xFFF) << 64
    value |= 0b10 << 62 | random & (1 << 62) - 1
    return str(uuid.UUID(int=value))


def _check_extensions(extensions: Mapping[str, Any]) -> None:
    for name in extensions:
        if name in _RESERVED:
            raise ValueError(f"{name!r} is a core CloudEvents attribute, not an extension")
        if not _ATTRIBUTE_NAME.fullmatch(name):
            raise ValueError(f"extension name {name!r} must be lower-case ASCII letters or digits")


@dataclass(frozen=True, kw_only=True)
class Event:
    """One usage event. Build it once and resend the same object: the id never changes."""

    type: str
    subject: str
    data: Mapping[str, Any] | None = None
    id: str = field(default_factory=new_event_id)
    source: str = DEFAULT_SOURCE
    time: datetime | str | None = None
    extensions: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if isinstance(self.time, datetime):
            rfc3339(self.time)  # fail at construction, not at some later flush
        _check_extensions(self.extensions)

    def to_cloudevent(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "specversion": SPECVERSION,
            "id": self.id,
            "source": self.source,
            "type": self.type,
            "subject": self.subject,
        }
        if self.time is not None:
            body["time"] = rfc3339(self.time) if isinstance(self.time, datetime) else self.time
        body.update(self.extensions)
        body["data"] = dict(self.data) if self.data is not None else {}
        return body


def build_event(
    *,
    type: str,
    subject: str,
    data: Mapping[str, Any] | None = None,
    id: str | None = None,
    source: str = DEFAULT_SOURCE,
    time: datetime | str | None = None,
    **extensions: Any,
) -> Event:
    """An `Event` from `send_event`-style arguments; unknown names become extensions."""
    return Event(
        type=type,
        subject=subject,
        data=data,
        id=id if id is not None else new_event_id(),
        source=source,
        time=time,
        extensions=extensions,
    )


def to_cloudevent(event: Event | Mapping[str, Any]) -> dict[str, Any]:
    """A wire-ready copy of `event`; a mapping without an id gets a fresh one.

    The caller's mapping is not modified, so resending the same id-less dict in a
    later call would create a new event: give dicts an id, or use `Event`.
    """
    if isinstance(event, Event):
        return event.to_cloudevent()
    body = dict(event)
    body.setdefault("specversion", SPECVERSION)
    if body.get("id") is None:
        body["id"] = new_event_id()
    body.setdefault("source", DEFAULT_SOURCE)
    if isinstance(body.get("time"), datetime):
        body["time"] = rfc3339(body["time"])
    return body
