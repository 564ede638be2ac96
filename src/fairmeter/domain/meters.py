"""Meters: which events count, how they aggregate, and how they are grouped."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from enum import StrEnum
from functools import cached_property
from typing import Any

from fairmeter.domain.errors import Problems
from fairmeter.domain.numbers import EXACT, NotAnExactQuantity, to_quantity

KEY_PATTERN = re.compile(r"^[a-z][a-z0-9_]{0,62}$")
_SEGMENT = r"[A-Za-z_][A-Za-z0-9_-]*"
PATH_PATTERN = re.compile(rf"^\$(\.{_SEGMENT}){{1,8}}$")
MAX_GROUPS = 8


class Aggregation(StrEnum):
    COUNT = "count"
    SUM = "sum"
    MAX = "max"
    UNIQUE_COUNT = "unique_count"
    LATEST = "latest"

    @property
    def needs_value(self) -> bool:
        return self is not Aggregation.COUNT


@dataclass(frozen=True)
class JsonPath:
    """The safe subset `$.a.b`: object members only, no wildcards, filters or indexes."""

    text: str

    def __post_init__(self) -> None:
        if not PATH_PATTERN.match(self.text):
            raise ValueError(f"{self.text!r} is not a supported path; use the form $.a.b")

    @cached_property
    def segments(self) -> tuple[str, ...]:
        return tuple(self.text[2:].split("."))

    def find(self, data: Mapping[str, object]) -> object | None:
        node: Any = data
        try:
            for segment in self.segments:
                node = node[segment]
        except (KeyError, TypeError, IndexError):
            # A missing member, or a string/number/list where an object was expected.
            return None
        found: object = node
        return found


class EventNotMetered(ValueError):
    """The event matches the meter's type but lacks a usable value."""


@dataclass(frozen=True)
class Meter:
    key: str
    name: str
    event_type: str
    aggregation: Aggregation
    value_property: JsonPath | None
    group_by: tuple[tuple[str, JsonPath], ...]
    unit: str
    id: int = 0
    archived_us: int | None = None
    # Events stored after archiving (sequence above this) are not counted.
    archived_seq: int | None = None

    @property
    def archived(self) -> bool:
        return self.archived_us is not None

    def __post_init__(self) -> None:
        if self.aggregation.needs_value and self.value_property is None:
            raise ValueError(f"a {self.aggregation.value} meter needs a value_property")
        if not self.aggregation.needs_value and self.value_property is not None:
            raise ValueError("a count meter takes no value_property")

    def measure(self, data: Mapping[str, object]) -> Decimal | str:
        """The event's contribution: 1 for count, a number, or a distinct key."""
        if self.value_property is None:
            return Decimal(1)
        raw = self.value_property.find(data)
        if raw is None:
            raise EventNotMetered(f"{self.value_property.text} is missing")
        if self.aggregation is Aggregation.UNIQUE_COUNT:
            return distinct_key(raw)
        try:
            return to_quantity(raw if not isinstance(raw, str) else _reject_text(raw))
        except NotAnExactQuantity as exc:
            raise EventNotMetered(f"{self.value_property.text} {exc}") from None

    def group_of(self, data: Mapping[str, object]) -> tuple[tuple[str, str | None], ...]:
        if not self.group_by:
            return ()
        return tuple([(name, _group_value(path.find(data))) for name, path in self.group_by])


def _reject_text(raw: str) -> object:
    raise NotAnExactQuantity(f"is the string {raw[:40]!r}, not a number")


def distinct_key(raw: object) -> str:
    if isinstance(raw, bool):
        return "true" if raw else "false"
    if isinstance(raw, (int, Decimal)):
        return "n:" + format(Decimal(raw).normalize(EXACT), "f")
    if isinstance(raw, str):
        return "s:" + raw
    raise EventNotMetered("a unique_count value must be a string, number or boolean")


def _group_value(raw: object) -> str | None:
    if raw is None or isinstance(raw, (dict, list)):
        return None
    if isinstance(raw, bool):
        return "true" if raw else "false"
    if isinstance(raw, Decimal):
        return format(raw.normalize(EXACT), "f")
    return str(raw)


def parse_meter(body: Mapping[str, object]) -> Meter:
    """Build a meter from an API body, reporting every bad field with its pointer."""
    problems = Problems()
    key = _text(body, "key", problems, required=True)
    if key and not KEY_PATTERN.match(key):
        problems.add("/key", "must be lowercase letters, digits and _ (start with a letter)")
    event_type = _text(body, "event_type", problems, required=True)
    aggregation = _aggregation(body.get("aggregation"), problems)
    value_property = _path(body.get("value_property"), "/value_property", problems)
    if aggregation is not None:
        given = body.get("value_property") is not None
        if aggregation.needs_value and not given:
            problems.add("/value_property", f"is required for a {aggregation.value} meter")
        elif not aggregation.needs_value and given:
            problems.add("/value_property", "a count meter takes no value_property")
    group_by = _group_by(body.get("group_by"), problems)
    name = _text(body, "name", problems) or key
    unit = _text(body, "unit", problems) or ""
    problems.raise_if_any("The meter definition is not valid")
    assert key is not None and event_type is not None and aggregation is not None
    return Meter(key, name or key, event_type, aggregation, value_property, group_by, unit)


def _text(
    body: Mapping[str, object], name: str, problems: Problems, required: bool = False
) -> str | None:
    raw = body.get(name)
    if raw is None:
        if required:
            problems.add(f"/{name}", "is required")
        return None
    if not isinstance(raw, str) or not raw.strip() or len(raw) > 256:
        problems.add(f"/{name}", "must be a non-empty string of at most 256 characters")
        return None
    return raw


def _aggregation(raw: object, problems: Problems) -> Aggregation | None:
    try:
        if not isinstance(raw, str):
            raise ValueError(raw)
        return Aggregation(raw)
    except ValueError:
        allowed = ", ".join(a.value for a in Aggregation)
        problems.add("/aggregation", f"must be one of {allowed}")
        return None


def _path(raw: object, pointer: str, problems: Problems) -> JsonPath | None:
    if raw is None:
        return None
    try:
        if not isinstance(raw, str):
            raise ValueError("must be a string path like $.tokens")
        return JsonPath(raw)
    except ValueError as exc:
        problems.add(pointer, str(exc))
        return None


def _group_by(raw: object, problems: Problems) -> tuple[tuple[str, JsonPath], ...]:
    if raw is None:
        return ()
    if not isinstance(raw, Mapping) or len(raw) > MAX_GROUPS:
        problems.add("/group_by", f"must be an object of at most {MAX_GROUPS} name: path pairs")
        return ()
    groups: list[tuple[str, JsonPath]] = []
    for name, path_text in raw.items():
        if not isinstance(name, str) or not KEY_PATTERN.match(name):
            problems.add(f"/group_by/{name}", "group names are lowercase letters, digits and _")
            continue
        path = _path(path_text, f"/group_by/{name}", problems)
        if path is not None:
            groups.append((name, path))
    return tuple(sorted(groups))
