"""Parse CloudEvents (structured, batch and binary mode) into domain events, item by item.

The hot path decodes the whole batch with one typed msgspec call; only when that fails
does it fall back to per-item decoding, so one bad event never costs the good ones."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import msgspec

from fairmeter.domain.errors import FieldError, MalformedBody
from fairmeter.domain.events import (
    IngestPolicy,
    Rejection,
    UsageEvent,
    attribute_errors,
    attributes_fine,
    time_error,
)
from fairmeter.domain.windows import to_us


class CloudEventIn(msgspec.Struct):
    specversion: Any = None
    id: Any = None
    source: Any = None
    type: Any = None
    subject: Any = None
    time: datetime | None = None
    data: Any = None
    datacontenttype: str | None = None


_BATCH = msgspec.json.Decoder(list[CloudEventIn], float_hook=Decimal)
_ONE = msgspec.json.Decoder(CloudEventIn, float_hook=Decimal)
_RAW_LIST = msgspec.json.Decoder(list[msgspec.Raw])
_CANONICAL = msgspec.json.Encoder(decimal_format="number", order="sorted")


class _NonFinite:
    def __init__(self, text: str):
        self.text = text


Parsed = tuple[list[tuple[int, UsageEvent]], list[Rejection]]


def parse_batch(body: bytes, now: datetime, policy: IngestPolicy) -> Parsed:
    try:
        items: list[CloudEventIn | FieldError] = list(_BATCH.decode(body))
    except msgspec.ValidationError:
        items = _decode_each(body)
    except msgspec.DecodeError:
        items = _decode_lenient(body)
    if len(items) > policy.max_batch_events:
        from fairmeter.domain.errors import PayloadTooLarge

        raise PayloadTooLarge(
            f"a batch holds at most {policy.max_batch_events} events; this one has {len(items)}"
        )
    return _admit_all(items, now, policy, batch=True)


def parse_single(body: bytes, now: datetime, policy: IngestPolicy) -> Parsed:
    try:
        item: CloudEventIn | FieldError = _ONE.decode(body)
    except msgspec.ValidationError as exc:
        item = _field_error(exc, "")
    except msgspec.DecodeError:
        parsed = _lenient_json(body)
        if not isinstance(parsed, dict):
            raise MalformedBody("a single event must be a JSON object") from None
        item = _convert(parsed, "")
    return _admit_all([item], now, policy, batch=False)


def parse_binary(
    headers: Mapping[str, str], body: bytes, now: datetime, policy: IngestPolicy
) -> Parsed:
    """Binary content mode: attributes in ce-* headers, the body is the data."""
    attributes: dict[str, object] = {
        k[3:]: v for k, v in headers.items() if k.lower().startswith("ce-")
    }
    try:
        attributes["data"] = _lenient_json(body) if body else None
    except MalformedBody:
        raise MalformedBody("the body of a binary-mode event must be JSON data") from None
    return _admit_all([_convert(attributes, "")], now, policy, batch=False)


def _decode_each(body: bytes) -> list[CloudEventIn | FieldError]:
    items: list[CloudEventIn | FieldError] = []
    for index, raw in enumerate(_RAW_LIST.decode(body)):
        try:
            items.append(_ONE.decode(raw))
        except msgspec.ValidationError as exc:
            items.append(_field_error(exc, f"/{index}"))
    return items


def _decode_lenient(body: bytes) -> list[CloudEventIn | FieldError]:
    parsed = _lenient_json(body)
    if not isinstance(parsed, list):
        raise MalformedBody("a batch must be a JSON array of events")
    return [_convert(item, f"/{i}") for i, item in enumerate(parsed)]


def _lenient_json(body: bytes) -> object:
    """Python's parser, which reads NaN and Infinity, so they can be refused per item."""
    try:
        return json.loads(body, parse_float=Decimal, parse_constant=_NonFinite)
    except (ValueError, RecursionError) as exc:
        raise MalformedBody(f"the body is not valid JSON: {exc}") from None


def _convert(item: object, prefix: str) -> CloudEventIn | FieldError:
    if not isinstance(item, dict):
        return FieldError(prefix or "/", "an event must be a JSON object", "invalid_type")
    bad = _non_finite(item.get("data"), prefix + "/data")
    if bad is not None:
        return bad
    try:
        return msgspec.convert(item, CloudEventIn, strict=False)
    except msgspec.ValidationError as exc:
        return _field_error(exc, prefix)


def _non_finite(node: object, pointer: str) -> FieldError | None:
    if isinstance(node, _NonFinite):
        return FieldError(pointer, f"{node.text} is not a number JSON allows", "non_finite")
    if isinstance(node, Decimal) and not node.is_finite():
        return FieldError(pointer, "NaN and Infinity are not allowed", "non_finite")
    children = (
        node.items()
        if isinstance(node, dict)
        else enumerate(node)
        if isinstance(node, list)
        else ()
    )
    for key, child in children:
        found = _non_finite(child, f"{pointer}/{key}")
        if found is not None:
            return found
    return None


def _field_error(exc: msgspec.ValidationError, prefix: str) -> FieldError:
    message = str(exc)
    detail, _, where = message.partition(" - at `$")
    path = where.rstrip("`").replace("[", ".").replace("]", "")
    pointer = prefix + "/".join([""] + [p for p in path.split(".") if p])
    if "datetime" in detail or "RFC3339" in detail:
        detail = "must be an RFC 3339 timestamp with a time zone offset"
    return FieldError(pointer or "/", detail, "invalid")


def _admit_all(
    items: list[CloudEventIn | FieldError], now: datetime, policy: IngestPolicy, batch: bool
) -> Parsed:
    accepted: list[tuple[int, UsageEvent]] = []
    rejected: list[Rejection] = []
    now_us = to_us(now)
    for index, item in enumerate(items):
        if isinstance(item, FieldError):
            rejected.append(Rejection(index, None, (item,)))
            continue
        prefix = f"/{index}" if batch else ""
        result = _admit(item, prefix, now, now_us, policy)
        if isinstance(result, UsageEvent):
            accepted.append((index, result))
        else:
            event_id = item.id if isinstance(item.id, str) else None
            rejected.append(Rejection(index, event_id, tuple(result)))
    return accepted, rejected


def _admit(
    item: CloudEventIn, prefix: str, now: datetime, now_us: int, policy: IngestPolicy
) -> UsageEvent | list[FieldError]:
    fine = attributes_fine(item.specversion, item.id, item.source, item.type, item.subject)
    errors = [] if fine else attribute_errors(prefix, _attributes(item))
    time_us = now_us
    if item.time is not None:
        if item.time.tzinfo is None:
            errors.append(FieldError(f"{prefix}/time", "must carry a time zone offset"))
        else:
            error = time_error(prefix, item.time, now, policy)
            if error is not None:
                errors.append(error)
            time_us = to_us(item.time.astimezone(UTC))
    data = {} if item.data is None else item.data
    if not isinstance(data, dict):
        errors.append(FieldError(f"{prefix}/data", "must be a JSON object", "invalid_type"))
    if errors:
        return errors
    data_json = _CANONICAL.encode(data)
    fingerprint = hashlib.blake2b(digest_size=16)
    sent_time = str(time_us) if item.time is not None else ""
    for part in (item.type, item.subject, sent_time):
        fingerprint.update(part.encode())
        fingerprint.update(b"\x00")
    fingerprint.update(data_json)
    return UsageEvent(
        item.source,
        item.id,
        item.type,
        item.subject,
        time_us,
        data,
        data_json,
        fingerprint.digest(),
    )


def _attributes(item: CloudEventIn) -> dict[str, object]:
    return {
        "specversion": item.specversion,
        "id": item.id,
        "source": item.source,
        "type": item.type,
        "subject": item.subject,
    }
