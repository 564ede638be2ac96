"""What each API call sends and how its answer is shaped, shared by both clients.

Keeping this free of I/O lets `Client` and `AsyncClient` differ only in how they
wait, so the two cannot drift apart in what they put on the wire.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any
from urllib.parse import quote
from uuid import uuid4

from . import _json
from .errors import FairmeterError, ValidationError, error_from_problem
from .events import Event, to_cloudevent

__all__ = ["BatchResult", "Call"]

JSON = "application/json"
CLOUDEVENT = "application/cloudevents+json"
CLOUDEVENT_BATCH = "application/cloudevents-batch+json"

EventLike = Event | Mapping[str, Any]

# The server's largest page: fewer round trips when listing everything.
PAGE_SIZE = 1000

# Under the server's default 1 MiB body limit, so a full chunk of big events is not a 413.
MAX_BATCH_BYTES = 1_000_000


@dataclass(frozen=True)
class Call:
    method: str
    path: str
    idempotent: bool
    content: bytes | None = None
    content_type: str | None = None
    params: Mapping[str, str] | None = None


def _segment(key: str) -> str:
    # Keys are caller data; a "/" or "?" in one must not change the route.
    return quote(key, safe="")


def _without_none(fields: Mapping[str, Any]) -> dict[str, Any]:
    return {name: value for name, value in fields.items() if value is not None}


def get(path: str) -> Call:
    return Call("GET", path, idempotent=True)


def write(method: str, path: str, body: Mapping[str, Any]) -> Call:
    return Call(method, path, idempotent=False, content=_json.dumps(body), content_type=JSON)


def meter_path(key: str) -> str:
    return f"/v1/meters/{_segment(key)}"


def customer_path(key: str) -> str:
    return f"/v1/customers/{_segment(key)}"


def send_event(event: Event) -> Call:
    return Call(
        "POST",
        "/v1/events",
        idempotent=True,  # the server deduplicates on the event id
        content=_json.dumps(event.to_cloudevent()),
        content_type=CLOUDEVENT,
    )


def _batch_call(encoded: list[bytes]) -> Call:
    content = b"[" + b",".join(encoded) + b"]"
    return Call("POST", "/v1/events", True, content, CLOUDEVENT_BATCH)


def event_batches(
    events: Sequence[EventLike], batch_size: int, max_bytes: int = MAX_BATCH_BYTES
) -> list[tuple[int, Call]]:
    """(offset in `events`, call) per chunk of at most `batch_size` events and `max_bytes`.

    Everything is encoded before the first send, so a bad event fails the call
    before any chunk reaches the server, and ids stay fixed across retries.
    """
    if batch_size < 1:
        raise ValueError("batch_size must be >= 1")
    calls: list[tuple[int, Call]] = []
    chunk: list[bytes] = []
    size = offset = 0
    for index, event in enumerate(events):
        encoded = _json.dumps(to_cloudevent(event))
        if chunk and (len(chunk) == batch_size or size + len(encoded) + 1 > max_bytes):
            calls.append((offset, _batch_call(chunk)))
            chunk, size, offset = [], 0, index
        chunk.append(encoded)
        size += len(encoded) + 1  # the comma or bracket around it
    if chunk:
        calls.append((offset, _batch_call(chunk)))
    return calls


def create_meter(key: str, fields: Mapping[str, Any]) -> Call:
    return write("POST", "/v1/meters", {"key": key, **_without_none(fields)})


def create_customer(key: str, fields: Mapping[str, Any]) -> Call:
    return write("POST", "/v1/customers", {"key": key, **_without_none(fields)})


def update_customer(key: str, fields: Mapping[str, Any]) -> Call:
    # None is kept: in a PATCH it means "clear this field".
    return write("PATCH", customer_path(key), fields)


def customers_page(after: str | None) -> Call:
    params = {"limit": str(PAGE_SIZE)}
    if after is not None:
        params["starting_after"] = after
    return Call("GET", "/v1/customers", idempotent=True, params=params)


def next_customer(body: Any) -> str | None:
    """The key to list after, or None when `body` was the last page."""
    rows = data_list(body)
    return str(rows[-1]["key"]) if body.get("has_more") and rows else None


def meters_list(include_archived: bool) -> Call:
    params = {"include_archived": "true"} if include_archived else None
    return Call("GET", "/v1/meters", idempotent=True, params=params)


def _query_time(value: datetime | str) -> str:
    return _json.rfc3339(value) if isinstance(value, datetime) else value


def usage(
    meter: str,
    *,
    customer: str | None,
    from_: datetime | str | None,
    to: datetime | str | None,
    window: str,
    timezone: str | None,
    group_by: Sequence[str] | str | None,
) -> Call:
    params = _without_none(
        {
            "customer": customer,
            "from": _query_time(from_) if from_ is not None else None,
            "to": _query_time(to) if to is not None else None,
            "window": window,
            "timezone": timezone,
            "group_by": group_by if isinstance(group_by, str | None) else ",".join(group_by),
        }
    )
    return Call("GET", f"{meter_path(meter)}/usage", idempotent=True, params=params)


def _quantity(value: Decimal | int | str) -> str:
    if isinstance(value, float | bool):
        raise TypeError("quantity must be a Decimal, an int or a decimal string, not a float")
    return format(value if isinstance(value, Decimal) else Decimal(value), "f")


def entitlement(
    action: str,
    customer: str,
    meter: str,
    quantity: Decimal | int | str,
    idempotency_key: str | None = None,
    data: Mapping[str, Any] | None = None,
) -> Call:
    """POST /v1/entitlements/check or /consume.

    A consume always carries an idempotency key (a new one when the caller has none), so a
    retry after a lost answer is deduplicated by the server instead of counted twice.
    """
    body: dict[str, Any] = {"customer": customer, "meter": meter, "quantity": _quantity(quantity)}
    if action == "consume":
        body["idempotency_key"] = idempotency_key or str(uuid4())
        if data is not None:
            body["data"] = data
    return Call(
        "POST",
        f"/v1/entitlements/{action}",
        idempotent=True,
        content=_json.dumps(body),
        content_type=JSON,
    )


def data_list(body: Any) -> list[dict[str, Any]]:
    """The `data` array of a list answer."""
    if not isinstance(body, dict) or not isinstance(body.get("data"), list):
        raise FairmeterError(
            code="invalid_response", status=200, detail="expected an object with a data list"
        )
    return list(body["data"])


def usage_rows(body: Any) -> list[dict[str, Any]]:
    rows = data_list(body)
    for row in rows:
        value = row.get("value")
        row["value"] = Decimal(value) if value is not None else None
    return rows


def _shift_pointer(error: Any, old: str, new: str) -> Any:
    pointer = error.get("pointer") if isinstance(error, dict) else None
    if not isinstance(pointer, str) or not (pointer == old or pointer.startswith(old + "/")):
        return error
    return {**error, "pointer": new + pointer[len(old) :]}


def _shift(item: Mapping[str, Any], offset: int) -> dict[str, Any]:
    """A rejected item re-addressed from its chunk to the caller's whole list."""
    index = item.get("index")
    if not offset or not isinstance(index, int):
        return dict(item)
    old, new = f"/{index}", f"/{index + offset}"
    errors = item.get("errors")
    shifted = {**item, "index": index + offset}
    if isinstance(errors, list):
        shifted["errors"] = [_shift_pointer(error, old, new) for error in errors]
    return shifted


class BatchResult:
    """Sums the answers of a chunked send as if it had been a single request."""

    def __init__(self) -> None:
        self.accepted = 0
        self.duplicates = 0
        self.rejected: list[dict[str, Any]] = []
        self._chunks = 0
        self._failures: list[ValidationError] = []

    def add(self, offset: int, body: Mapping[str, Any]) -> None:
        self._chunks += 1
        self.accepted += int(body.get("accepted", 0))
        self.duplicates += int(body.get("duplicates", 0))
        self.rejected.extend(_shift(item, offset) for item in body.get("rejected") or [])

    def add_failure(self, offset: int, error: ValidationError) -> None:
        """A chunk the server refused whole (422 invalid_events)."""
        self.add(offset, error.problem)
        self._failures.append(error)

    def result(self) -> dict[str, Any]:
        if self._failures and len(self._failures) == self._chunks:
            # Nothing accepted anywhere: the same 422 the server gives one request.
            problem = {**self._failures[0].problem, **self._counts()}
            raise error_from_problem(self._failures[0].status, problem)
        return self._counts()

    def _counts(self) -> dict[str, Any]:
        return {"accepted": self.accepted, "duplicates": self.duplicates, "rejected": self.rejected}
