"""Reading JSON fields of prices and plans, every problem reported at its JSON Pointer."""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping
from decimal import Decimal
from enum import StrEnum
from typing import TypeVar

from fairmeter.domain.errors import Problems
from fairmeter.domain.money import NotAnAmount, parse_decimal

E = TypeVar("E", bound=StrEnum)


def escape(token: str) -> str:
    """A member name as a JSON Pointer token (RFC 6901)."""
    return token.replace("~", "~0").replace("/", "~1")


def as_object(raw: object, pointer: str, problems: Problems) -> Mapping[str, object] | None:
    if not isinstance(raw, Mapping):
        problems.add(pointer or "/", "must be an object")
        return None
    return raw


class FieldReader:
    """The fields of one JSON object at `prefix`, read into domain values."""

    def __init__(self, body: Mapping[str, object], prefix: str, problems: Problems) -> None:
        self.body = body
        self.prefix = prefix
        self.problems = problems

    def at(self, name: str) -> str:
        return f"{self.prefix}/{escape(name)}"

    def report(self, name: str, detail: str) -> None:
        self.problems.add(self.at(name), detail)

    def given(self, name: str) -> bool:
        return self.body.get(name) is not None

    def only(self, allowed: Collection[str], what: str) -> None:
        for name in self.body:
            if name not in allowed:
                self.report(str(name), f"is not a field of {what}")

    def decimal(
        self, name: str, *, required: bool = False, positive: bool = False
    ) -> Decimal | None:
        """A non-negative decimal (up to 12 places); None when absent, null or invalid."""
        raw = self.body.get(name)
        if raw is None:
            if required:
                self.report(name, "is required")
            return None
        try:
            value = parse_decimal(raw)
        except NotAnAmount as exc:
            self.report(name, str(exc))
            return None
        if positive and value == 0:
            self.report(name, "must be greater than 0")
            return None
        return value

    def text(
        self,
        name: str,
        *,
        required: bool = False,
        max_length: int = 256,
        pattern: re.Pattern[str] | None = None,
        rule: str = "",
    ) -> str | None:
        raw = self.body.get(name)
        if raw is None:
            if required:
                self.report(name, "is required")
            return None
        if not isinstance(raw, str) or not raw.strip() or len(raw) > max_length:
            self.report(name, f"must be a non-empty string of at most {max_length} characters")
            return None
        if pattern is not None and not pattern.match(raw):
            self.report(name, rule)
            return None
        return raw

    def choice(self, name: str, enum: type[E], default: E) -> E:
        """An optional enum member; `default` when absent (or invalid, once reported)."""
        if self.body.get(name) is None:
            return default
        return self.required_choice(name, enum) or default

    def required_choice(self, name: str, enum: type[E]) -> E | None:
        raw = self.body.get(name)
        if raw is None:
            self.report(name, "is required")
            return None
        try:
            if not isinstance(raw, str):
                raise ValueError(raw)
            return enum(raw)
        except ValueError:
            self.report(name, "must be one of " + ", ".join(member.value for member in enum))
            return None

    def integer(self, name: str, default: int, low: int, high: int) -> int:
        """A whole number in [low, high]; `default` when absent (or invalid, once reported)."""
        raw = self.body.get(name)
        if raw is None:
            return default
        if isinstance(raw, bool) or not isinstance(raw, int) or not low <= raw <= high:
            self.report(name, f"must be a whole number from {low} to {high}")
            return default
        return raw
