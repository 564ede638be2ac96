"""JSON in and out without ever passing a quantity through a binary float.

The stdlib encoder can only write a Decimal as a string (or via float), and the
server meters numbers, so request bodies are written by this small encoder and
responses are read with `parse_float=Decimal`.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import date, datetime
from decimal import Decimal
from enum import Enum
from typing import Any
from uuid import UUID

__all__ = ["dumps", "loads", "rfc3339"]

# Past this many places, fixed-point notation gets huge; exponent form is still valid JSON.
_MAX_FIXED_EXPONENT = 100

# ASCII output keeps lone surrogates and odd code points from breaking the UTF-8 body.
_encode_str = json.encoder.encode_basestring_ascii


def rfc3339(value: datetime) -> str:
    """RFC 3339 text for an aware datetime; a naive one has no meaning on the wire."""
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"datetime must be timezone-aware, got naive {value!r}")
    return value.isoformat()


def _decimal(value: Decimal) -> str:
    if not value.is_finite():
        raise ValueError(f"{value} is not a valid JSON number")
    exponent = value.as_tuple().exponent
    assert isinstance(exponent, int)  # finite decimals always have an int exponent
    if abs(exponent) > _MAX_FIXED_EXPONENT:
        return str(value)
    return format(value, "f")


def _scalar(value: object) -> str | None:
    """The JSON text of a scalar, or None when `value` is a container."""
    if value is None:
        return "null"
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, str):
        return _encode_str(value)
    if isinstance(value, Enum):
        return _scalar(value.value)
    if isinstance(value, int):
        return int.__repr__(value)
    if isinstance(value, Decimal):
        return _decimal(value)
    if isinstance(value, float):
        # Accepted for non-quantity properties; written exactly as Python would.
        if value != value or value in (float("inf"), float("-inf")):
            raise ValueError(f"{value} is not a valid JSON number")
        return float.__repr__(value)
    if isinstance(value, datetime):
        return _encode_str(rfc3339(value))
    if isinstance(value, date):
        return _encode_str(value.isoformat())
    if isinstance(value, UUID):
        return _encode_str(str(value))
    return None


def _write(value: object, out: list[str]) -> None:
    text = _scalar(value)
    if text is not None:
        out.append(text)
    elif isinstance(value, Mapping):
        _write_object(value, out)
    elif isinstance(value, list | tuple):
        out.append("[")
        for position, item in enumerate(value):
            if position:
                out.append(",")
            _write(item, out)
        out.append("]")
    else:
        raise TypeError(f"cannot encode {type(value).__name__} as JSON")


def _write_object(value: Mapping[Any, Any], out: list[str]) -> None:
    out.append("{")
    for position, (key, item) in enumerate(value.items()):
        if not isinstance(key, str):
            raise TypeError(f"JSON object keys must be str, got {type(key).__name__}")
        if position:
            out.append(",")
        out.append(_encode_str(key))
        out.append(":")
        _write(item, out)
    out.append("}")


def dumps(value: object) -> bytes:
    """Compact UTF-8 JSON; Decimal becomes a JSON number with the same digits."""
    out: list[str] = []
    _write(value, out)
    return "".join(out).encode()


def loads(content: bytes) -> Any:
    """Parse JSON keeping every non-integer number as an exact Decimal."""
    return json.loads(content, parse_float=Decimal)
