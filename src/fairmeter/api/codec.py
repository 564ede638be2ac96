"""Parse CloudEvents (structured, batch and binary mode) into domain events, item by item.

The hot path decodes the whole batch with one typed msgspec call; only when that fails
does it fall back to per-item decoding, so one bad event never costs the good ones."""

from __future__ import annotations

import functools
import hashlib
import json
from collections.abc import Callable, Mapping
from datetime import datetime
from decimal import Decimal
from typing import Annotated, Any, Literal, NamedTuple, ParamSpec
from urllib.parse import unquote_to_bytes

import msgspec

from fairmeter.domain.errors import FieldError, MalformedBody
from fairmeter.domain.events import (
    FUTURE_TOLERANCE,
    MAX_ATTRIBUTE_LENGTH,
    IngestPolicy,
    Rejection,
    UsageEvent,
    attribute_errors,
    attributes_fine,
    time_error,
)
from fairmeter.domain.windows import to_us

# Data nested deeper than this is refused: stored events are read back (usage edges, meter
# back-fill) by parsers whose recursion is bounded, and no meter needs such a path.
MAX_DATA_DEPTH = 32
# UsageEvent(...) goes through the NamedTuple's generated __new__; tuple.__new__ is cheaper.
_new_tuple = tuple.__new__
# The fingerprint of an event's content; copying a fresh hash beats constructing one.
_FINGERPRINT = hashlib.blake2b(digest_size=16)


class CloudEventIn(msgspec.Struct):
    specversion: Any = None
    id: Any = None
    source: Any = None
    type: Any = None
    subject: Any = None
    time: datetime | None = None
    data: Any = None
    datacontenttype: str | None = None


_Attribute = Annotated[str, msgspec.Meta(min_length=1, max_length=MAX_ATTRIBUTE_LENGTH)]


class _WellFormed(msgspec.Struct):
    """What nearly every client sends: attributes and time offset checked while decoding,
    so admitting it takes only the time window. One item that does not fit sends the whole
    batch through `CloudEventIn`, which explains each error."""

    specversion: Literal["1.0"]
    id: _Attribute
    source: _Attribute
    type: _Attribute
    subject: _Attribute
    time: Annotated[datetime, msgspec.Meta(tz=True)] | None = None
    data: dict[str, Any] | None = None
    datacontenttype: str | None = None


class _IdOnly(msgspec.Struct):
    id: Any = None


class _Refused(NamedTuple):
    """An item that could not even be decoded, with its id when it has a readable one."""

    event_id: str | None
    error: FieldError


_WELL_FORMED = msgspec.json.Decoder(list[_WellFormed], float_hook=Decimal)
_BATCH = msgspec.json.Decoder(list[CloudEventIn], float_hook=Decimal)
_ONE = msgspec.json.Decoder(CloudEventIn, float_hook=Decimal)
_ID = msgspec.json.Decoder(_IdOnly)
_RAW_LIST = msgspec.json.Decoder(list[msgspec.Raw])
_CANONICAL = msgspec.json.Encoder(decimal_format="number", order="sorted")
_TOO_DEEP = "the body is nested too deeply to be read; keep event data to a few hundred levels"


class _NonFinite:
    def __init__(self, text: str):
        self.text = text


Parsed = tuple[list[tuple[int, UsageEvent]], list[Rejection]]
Item = CloudEventIn | _WellFormed | _Refused
_P = ParamSpec("_P")


def _shallow(parse: Callable[_P, Parsed]) -> Callable[_P, Parsed]:
    """Deep nesting exhausts the recursion limit in msgspec, json or our own walks, at
    whichever step meets it first: one guard per request turns that into a client error."""

    @functools.wraps(parse)
    def guarded(*args: _P.args, **kwargs: _P.kwargs) -> Parsed:
        try:
            return parse(*args, **kwargs)
        except RecursionError:
            raise MalformedBody(_TOO_DEEP) from None

    return guarded


@_shallow
def parse_batch(body: bytes, now: datetime, policy: IngestPolicy) -> Parsed:
    items: list[Item]
    try:
        items = list(_WELL_FORMED.decode(body))
    except msgspec.ValidationError:
        items = _decode_explained(body)
    except msgspec.DecodeError:
        items = _decode_lenient(body)
    if len(items) > policy.max_batch_events:
        from fairmeter.domain.errors import PayloadTooLarge

        raise PayloadTooLarge(
            f"a batch holds at most {policy.max_batch_events} events; this one has {len(items)}"
        )
    return _admit_all(items, now, policy, batch=True)


@_shallow
def parse_single(body: bytes, now: datetime, policy: IngestPolicy) -> Parsed:
    try:
        item: Item = _ONE.decode(body)
    except msgspec.ValidationError as exc:
        item = _Refused(_id_in(body), _field_error(exc, ""))
    except msgspec.DecodeError:
        parsed = _lenient_json(body)
        if not isinstance(parsed, dict):
            raise MalformedBody("a single event must be a JSON object") from None
        item = _convert(parsed, "")
    return _admit_all([item], now, policy, batch=False)


@_shallow
def parse_binary(
    headers: Mapping[str, str], body: bytes, now: datetime, policy: IngestPolicy
) -> Parsed:
    """Binary content mode: attributes in ce-* headers, the body is the data."""
    attributes: dict[str, object] = {}
    undecodable: list[str] = []
    for name, value in headers.items():
        if name.lower().startswith("ce-"):
            try:
                attributes[name[3:].lower()] = _header_value(value)
            except UnicodeError:
                undecodable.append(name[3:].lower())
    try:
        attributes["data"] = _lenient_json(body) if body else None
    except MalformedBody:
        raise MalformedBody("the body of a binary-mode event must be JSON data") from None
    if undecodable:
        return _admit_all([_undecodable(attributes, undecodable)], now, policy, batch=False)
    return _admit_all([_convert(attributes, "")], now, policy, batch=False)


def _header_value(value: str) -> str:
    """HTTP binding 3.1.3.2: values are percent-encoded UTF-8, and an invalid UTF-8 sequence
    must be rejected, not replaced. Starlette decoded the header bytes as latin-1: undo that
    first, so UTF-8 sent unencoded is read right too."""
    return unquote_to_bytes(value.encode("latin-1")).decode("utf-8")


def _undecodable(attributes: Mapping[str, object], names: list[str]) -> _Refused:
    error = FieldError(f"/{names[0]}", "must be percent-encoded UTF-8", "invalid_encoding")
    return _Refused(_string_id(attributes), error)


def _decode_explained(body: bytes) -> list[Item]:
    try:
        return list(_BATCH.decode(body))
    except msgspec.ValidationError:
        return _decode_each(body)
    except msgspec.DecodeError:
        return _decode_lenient(body)


def _decode_each(body: bytes) -> list[Item]:
    items: list[Item] = []
    for index, raw in enumerate(_RAW_LIST.decode(body)):
        try:
            items.append(_ONE.decode(raw))
        except msgspec.ValidationError as exc:
            items.append(_Refused(_id_in(raw), _field_error(exc, f"/{index}")))
    return items


def _id_in(raw: bytes | msgspec.Raw) -> str | None:
    """The id of an item that failed typed decoding, read on its own (failure path only)."""
    try:
        event_id = _ID.decode(raw).id
    except msgspec.ValidationError:
        return None
    return event_id if isinstance(event_id, str) else None


def _string_id(item: Mapping[str, object]) -> str | None:
    event_id = item.get("id")
    return event_id if isinstance(event_id, str) else None


def _decode_lenient(body: bytes) -> list[Item]:
    parsed = _lenient_json(body)
    if not isinstance(parsed, list):
        raise MalformedBody("a batch must be a JSON array of events")
    return [_convert(item, f"/{i}") for i, item in enumerate(parsed)]


def _lenient_json(body: bytes) -> object:
    """Python's parser, which reads NaN and Infinity, so they can be refused per item."""
    try:
        return json.loads(body, parse_float=Decimal, parse_constant=_NonFinite)
    except ValueError as exc:
        raise MalformedBody(f"the body is not valid JSON: {exc}") from None


def _convert(item: object, prefix: str) -> Item:
    if not isinstance(item, dict):
        error = FieldError(prefix or "/", "an event must be a JSON object", "invalid_type")
        return _Refused(None, error)
    bad = _non_finite(item.get("data"), prefix + "/data")
    if bad is not None:
        return _Refused(_string_id(item), bad)
    try:
        return msgspec.convert(item, CloudEventIn, strict=False)
    except msgspec.ValidationError as exc:
        return _Refused(_string_id(item), _field_error(exc, prefix))


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


def _admit_all(items: list[Item], now: datetime, policy: IngestPolicy, batch: bool) -> Parsed:
    """Each item admitted or rejected with its reasons. The common case (every attribute a
    short string, a time within the window, object data) is decided inline, with the
    window's bounds computed once; anything else takes `_admit`, which names each error."""
    accepted: list[tuple[int, UsageEvent]] = []
    rejected: list[Rejection] = []
    now_us = to_us(now)
    latest, earliest = now + FUTURE_TOLERANCE, now - policy.backdate_window
    encode = _CANONICAL.encode
    for index, item in enumerate(items):
        if isinstance(item, _Refused):
            rejected.append(Rejection(index, item.event_id, (item.error,)))
            continue
        moment, data = item.time, item.data
        if type(item) is _WellFormed:
            fine = moment is None or earliest <= moment <= latest
            data = {} if data is None else data
        else:
            fine = (
                type(data) is dict
                and (moment is None or (moment.tzinfo is not None and earliest <= moment <= latest))
                and attributes_fine(item.specversion, item.id, item.source, item.type, item.subject)
            )
        if fine:
            data_json = encode(data)
            # Nesting deeper than MAX_DATA_DEPTH takes more brackets than a short body holds.
            if len(data_json) <= 2 * MAX_DATA_DEPTH or not _too_deep(data, data_json):
                time_us = now_us if moment is None else to_us(moment)
                accepted.append((index, _event(item, time_us, moment is not None, data, data_json)))
                continue
        result = _admit(item, f"/{index}" if batch else "", now, now_us, policy)
        if isinstance(result, UsageEvent):
            accepted.append((index, result))
        else:
            event_id = item.id if isinstance(item.id, str) else None
            rejected.append(Rejection(index, event_id, tuple(result)))
    return accepted, rejected


def _admit(
    item: CloudEventIn | _WellFormed, prefix: str, now: datetime, now_us: int, policy: IngestPolicy
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
            time_us = to_us(item.time)  # aware arithmetic: no conversion needed
    data = {} if item.data is None else item.data
    if not isinstance(data, dict):
        errors.append(FieldError(f"{prefix}/data", "must be a JSON object", "invalid_type"))
    if errors:
        return errors
    data_json = _CANONICAL.encode(data)
    if _too_deep(data, data_json):
        detail = f"is nested more than {MAX_DATA_DEPTH} levels deep"
        return [FieldError(f"{prefix}/data", detail, "too_deep")]
    return _event(item, time_us, item.time is not None, data, data_json)


def _event(
    item: CloudEventIn | _WellFormed,
    time_us: int,
    timed: bool,
    data: Any,  # the decoded JSON object, already checked to be one
    data_json: bytes,
) -> UsageEvent:
    """The stored event, with the fingerprint of its content as sent: type, subject, the
    time if one was given, data. Both admission paths build it here, so a resend through
    either one matches."""
    fingerprint = _FINGERPRINT.copy()
    sent = str(time_us) if timed else ""
    fingerprint.update(f"{item.type}\x00{item.subject}\x00{sent}\x00".encode())
    fingerprint.update(data_json)
    fields = (item.source, item.id, item.type, item.subject)
    return _new_tuple(UsageEvent, (*fields, time_us, data, data_json, fingerprint.digest()))


def _too_deep(data: object, data_json: bytes) -> bool:
    # Counting brackets is nearly free and rules out almost every event; only then walk.
    if data_json.count(b"[") + data_json.count(b"{") <= MAX_DATA_DEPTH:
        return False
    return _depth(data) > MAX_DATA_DEPTH


def _depth(node: object) -> int:
    if isinstance(node, dict):
        return 1 + max((_depth(v) for v in node.values()), default=0)
    if isinstance(node, list):
        return 1 + max((_depth(v) for v in node), default=0)
    return 0


def _attributes(item: CloudEventIn | _WellFormed) -> dict[str, object]:
    return {
        "specversion": item.specversion,
        "id": item.id,
        "source": item.source,
        "type": item.type,
        "subject": item.subject,
    }
