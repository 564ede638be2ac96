"""Webhook endpoints (who hears what) and one signed delivery attempt to one of them."""

from __future__ import annotations

import json
import secrets
import socket
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import httpx
from sqlalchemy.engine import RowMapping

from fairmeter.domain.errors import FieldError, InvalidInput, NotFound
from fairmeter.domain.notifications import (
    EVENT_KINDS,
    TargetPolicy,
    new_secret,
    signed_headers,
    url_problem,
)
from fairmeter.domain.windows import format_instant, to_us
from fairmeter.services.notifications import new_id
from fairmeter.services.runtime import Runtime
from fairmeter.storage import notifications as store

TIMEOUT_SECONDS = 10.0


@dataclass(frozen=True)
class EndpointChanges:
    url: str | None = None
    events: tuple[str, ...] | None = None
    description: str | None = None
    enabled: bool | None = None


def parse_events(raw: object, pointer: str = "/events") -> tuple[str, ...]:
    if not isinstance(raw, list) or not raw or not all(isinstance(e, str) for e in raw):
        raise InvalidInput(
            "events must be a non-empty list of event names",
            errors=(FieldError(pointer, 'a list such as ["limit.reached"] or ["*"]'),),
        )
    unknown = sorted(set(raw) - EVENT_KINDS - {"*"})
    if unknown:
        known = ", ".join(sorted(EVENT_KINDS))
        detail = f"unknown event {unknown[0]!r}; known: {known}, or * for all"
        raise InvalidInput(detail, errors=(FieldError(pointer, detail, "unknown_event"),))
    return tuple(dict.fromkeys(raw))


def resolve(host: str) -> list[str]:
    """The addresses a host name stands for now (empty when it does not resolve)."""
    try:
        found = socket.getaddrinfo(host, None, proto=socket.IPPROTO_TCP)
    except (socket.gaierror, UnicodeError):
        return []
    return sorted({str(info[4][0]) for info in found})


def target_refusal(url: str, policy: TargetPolicy) -> str | None:
    problem = url_problem(url)
    if problem:
        return problem
    host = urlsplit(url).hostname or ""
    return policy.refusal(host, resolve(host))


def check_url(url: object, policy: TargetPolicy) -> str:
    if not isinstance(url, str) or not url:
        raise InvalidInput("url is required", errors=(FieldError("/url", "a URL is required"),))
    problem = url_problem(url)
    if problem:
        raise InvalidInput(problem, errors=(FieldError("/url", problem, "invalid_url"),))
    # A host that does not resolve yet is accepted: DNS is checked again at each delivery.
    refusal = target_refusal(url, policy)
    if refusal:
        detail = f"{refusal}; allow it with FAIRMETER_WEBHOOK_ALLOW_PRIVATE"
        raise InvalidInput(detail, errors=(FieldError("/url", detail, "private_target"),))
    return url


def create_endpoint(
    rt: Runtime, url: object, events: object, description: str = ""
) -> tuple[RowMapping, str]:
    """Returns the endpoint and its signing secret (shown this once)."""
    checked_url = check_url(url, rt.channels.targets)
    kinds = parse_events(events)
    now_us = _now_us(rt)
    endpoint_id = new_id("we", now_us)
    secret = new_secret(secrets.token_bytes(24))
    with rt.db.write() as conn:
        store.insert_endpoint(
            conn,
            {
                "id": endpoint_id,
                "url": checked_url,
                "description": description,
                "events": json.dumps(list(kinds)),
                "secret": secret,
                "created_us": now_us,
                "updated_us": now_us,
            },
        )
        return _found(store.endpoint(conn, endpoint_id), endpoint_id), secret


def update_endpoint(rt: Runtime, endpoint_id: str, changes: EndpointChanges) -> RowMapping:
    values: dict[str, Any] = {"updated_us": _now_us(rt)}
    if changes.url is not None:
        values["url"] = check_url(changes.url, rt.channels.targets)
    if changes.events is not None:
        values["events"] = json.dumps(list(changes.events))
    if changes.description is not None:
        values["description"] = changes.description
    if changes.enabled is not None:
        # Re-enabling clears the reason it was disabled (a 410, say).
        values["disabled_us"] = None if changes.enabled else values["updated_us"]
        values["disabled_reason"] = None if changes.enabled else "disabled by an operator"
    with rt.db.write() as conn:
        if not store.update_endpoint(conn, endpoint_id, values):
            raise _missing(endpoint_id)
        return _found(store.endpoint(conn, endpoint_id), endpoint_id)


def get_endpoint(rt: Runtime, endpoint_id: str) -> RowMapping:
    with rt.db.read() as conn:
        return _found(store.endpoint(conn, endpoint_id), endpoint_id)


def list_endpoints(rt: Runtime) -> list[RowMapping]:
    with rt.db.read() as conn:
        return store.list_endpoints(conn)


def delete_endpoint(rt: Runtime, endpoint_id: str) -> None:
    with rt.db.write() as conn:
        if not store.delete_endpoint(conn, endpoint_id, _now_us(rt)):
            raise _missing(endpoint_id)


# --- one attempt -----------------------------------------------------------------------------
@dataclass(frozen=True)
class Outcome:
    status_code: int | None
    error: str | None
    duration_ms: int

    @property
    def ok(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300


def payload(notification: RowMapping) -> bytes:
    """The body every endpoint receives: Standard Webhooks' {type, timestamp, data}."""
    data = {
        "id": notification["id"],
        "customer": notification["customer_key"],
        "kind": notification["kind"],
        "title": notification["title"],
        "details": json.loads(notification["details"]),
        "rule_id": notification["rule_id"],
        "period_start": format_instant(notification["period_start_us"]),
        "period_end": format_instant(notification["period_end_us"]),
        "created_at": format_instant(notification["created_us"]),
    }
    body = {"type": notification["kind"], "timestamp": data["created_at"], "data": data}
    return json.dumps(body, sort_keys=True, separators=(",", ":")).encode()


def send(
    http: httpx.Client,
    endpoint: RowMapping,
    message_id: str,
    body: bytes,
    now_s: int,
    policy: TargetPolicy,
) -> Outcome:
    """POST one signed message. The target is checked again now: DNS may have changed."""
    started = time.monotonic()
    refusal = target_refusal(endpoint["url"], policy)
    if refusal:
        return Outcome(None, f"refused: {refusal}", 0)
    headers = signed_headers(endpoint["secret"], message_id, now_s, body)
    try:
        response = http.post(endpoint["url"], content=body, headers=headers)
    except httpx.TimeoutException:
        return Outcome(None, "timed out", _ms(started))
    except httpx.HTTPError as exc:
        return Outcome(None, f"{type(exc).__name__}: {exc}"[:500], _ms(started))
    error = None if response.is_success else f"HTTP {response.status_code}"
    return Outcome(response.status_code, error, _ms(started))


def http_client() -> httpx.Client:
    # No redirects: a 3xx could point a signed message at a private address.
    return httpx.Client(timeout=TIMEOUT_SECONDS, follow_redirects=False, trust_env=False)


def _ms(started: float) -> int:
    return int((time.monotonic() - started) * 1000)


def _now_us(rt: Runtime) -> int:
    return to_us(rt.clock.now())


def _found(row: RowMapping | None, endpoint_id: str) -> RowMapping:
    if row is None:
        raise _missing(endpoint_id)
    return row


def _missing(endpoint_id: str) -> NotFound:
    return NotFound(f"no webhook endpoint {endpoint_id!r}")
