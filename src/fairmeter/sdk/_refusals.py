"""What `MeteringMiddleware` puts on the wire for a decision: the RateLimit fields, and
for a refusal its status, `Retry-After` and RFC 9457 problem body.

The fields follow draft-ietf-httpapi-ratelimit-headers-11 (May 2026): one quota policy
per meter, named after it, `RateLimit-Policy: "api_calls";q=1000` and
`RateLimit: "api_calls";r=12;t=3600` (Structured Field Lists; q and r are Integers, so
quantities are rounded down; t is seconds until the quota resets, rounded up).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from datetime import datetime
from decimal import Decimal
from typing import Any, Final
from urllib.parse import quote

from . import _json
from .decision import LIMITS_UNAVAILABLE, Decision

__all__ = ["STATUS", "RateLimitFields", "Refusal", "refusal", "sf_string", "unidentified"]

PROBLEM_TYPE = "https://fairmeter.dev/problems/"

# 429: waiting helps (the period resets, the throttle refills); 402: paying helps;
# 403: subscribing helps; 503: nobody could decide.
STATUS = {
    "limit_reached": 429,
    "throttled": 429,
    "spend_cap_reached": 402,
    "suspended": 402,
    "no_subscription": 403,
    LIMITS_UNAVAILABLE: 503,
}
_TITLES = {
    "limit_reached": "Usage limit reached",
    "throttled": "Throttled",
    "spend_cap_reached": "Spend cap reached",
    "suspended": "Access suspended",
    "no_subscription": "No subscription for this meter",
    LIMITS_UNAVAILABLE: "Usage limits unavailable",
}
_ceil: Final = math.ceil
# Structured Field Integers have at most 15 digits.
_SF_MAX: Final = 999_999_999_999_999
_SF_DIGITS: Final = 15
# A 503 has no reset instant; clients should not hammer a server that is down.
_UNAVAILABLE_RETRY = 1


def sf_string(text: str) -> str:
    """`text` as a Structured Field String (RFC 9651): quoted, with \\ and " escaped."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _sf_integer(value: Decimal) -> int:
    number = int(value)
    return number if 0 <= number <= _SF_MAX else min(_SF_MAX, max(0, number))


def _seconds_until(instant: float, now: float) -> int:
    seconds = math.ceil(instant - now)
    return seconds if 0 <= seconds <= _SF_MAX else min(_SF_MAX, max(0, seconds))


class RateLimitFields:
    """Builds the two fields for one meter's decisions. On the hot path (every admitted
    call), so the policy field and the reset instants are remembered, not re-formatted.
    An allowed decision with the same limit and reset as the last one (the same objects:
    an in-process engine reuses them) and a whole number remaining costs a concatenation:
    the remaining's digits as Decimal prints them, and the `;t=` part of this second."""

    def __init__(self, meter: str) -> None:
        self._name = sf_string(meter)
        self._name_bytes = self._name.encode()
        self._remaining_head = self._name_bytes + b";r="
        self._policies: dict[Decimal, bytes] = {}
        self._instants: dict[datetime, float] = {}
        # The last allowed decision's limit and reset instant, their policy field and the
        # reset's timestamp, as one tuple (replaced whole: a thread never reads half of
        # it). Fresh objects first: no decision's limit is one of them.
        self._last: tuple[object, object, tuple[bytes, bytes], float] = (
            object(), object(), (b"ratelimit-policy", b""), 0.0
        )  # fmt: skip
        self._wait: tuple[int, bytes] = (-1, b"")  # seconds to the reset, and ";t=" them

    def __call__(self, decision: Decision, now: float) -> list[tuple[bytes, bytes]]:
        """RateLimit-Policy and RateLimit for a decision on a limited meter, else none."""
        limit, resets_at, policy, reset = self._last
        if decision.resets_at is resets_at and decision.limit is limit and decision.allowed:
            # A whole number from 0 to 15 digits prints as just its digits ("1E+3", "2.5"
            # and "-1" are not all digits: they take the general path).
            digits = str(decision.remaining)
            wait = _ceil(reset - now)
            if digits.isdigit() and len(digits) <= _SF_DIGITS and wait >= 0:
                seconds, tail = self._wait
                if seconds != wait:
                    tail = b";t=%d" % wait
                    self._wait = (wait, tail)
                return [policy, (b"ratelimit", self._remaining_head + digits.encode() + tail)]
        return self._fields(decision, now)

    def _fields(self, decision: Decision, now: float) -> list[tuple[bytes, bytes]]:
        limit = decision.limit
        if limit is None:
            return []
        policy = self._policies.get(limit)
        if policy is None:
            policy = self._policy(limit)
        remaining = decision.remaining
        left = 0 if remaining is None else _sf_integer(remaining)
        until = decision.resets_at if decision.allowed else decision.retry_after
        until = until or decision.resets_at
        if until is None:
            return [
                (b"ratelimit-policy", policy),
                (b"ratelimit", b"%s;r=%d" % (self._name_bytes, left)),
            ]
        seconds = self._timestamp(until)
        if decision.allowed and remaining is not None:
            self._last = (limit, until, (b"ratelimit-policy", policy), seconds)
        wait = _seconds_until(seconds, now)
        service = b"%s;r=%d;t=%d" % (self._name_bytes, left, wait)
        return [(b"ratelimit-policy", policy), (b"ratelimit", service)]

    def _policy(self, limit: Decimal) -> bytes:
        if len(self._policies) > 1024:
            self._policies.clear()
        policy = self._policies[limit] = f"{self._name};q={_sf_integer(limit)}".encode()
        return policy

    def _timestamp(self, instant: datetime) -> float:
        seconds = self._instants.get(instant)
        if seconds is None:
            if len(self._instants) > 1024:
                self._instants.clear()
            seconds = self._instants[instant] = instant.timestamp()
        return seconds


class Refusal:
    """The response for a refused decision."""

    __slots__ = ("body", "headers", "status")

    def __init__(self, status: int, headers: list[tuple[bytes, bytes]], body: bytes) -> None:
        self.status = status
        self.headers = headers
        self.body = body


def refusal(
    decision: Decision,
    rate_headers: list[tuple[bytes, bytes]],
    now: float,
    *,
    path: str,
    upgrade_url: str | None,
) -> Refusal:
    status = STATUS.get(decision.reason, 403)
    problem = _problem(decision, status, path, _upgrade_link(upgrade_url, decision.customer))
    body = _json.dumps(problem)
    headers = [
        (b"content-type", b"application/problem+json"),
        (b"content-length", str(len(body)).encode()),
        *rate_headers,
    ]
    retry = _retry_after(decision, now)
    if retry is not None:
        headers.append((b"retry-after", str(retry).encode()))
    return Refusal(status, headers, body)


def unidentified(path: str) -> Refusal:
    """401 for a request the customer function could not attribute (anonymous="reject")."""
    problem = {
        "type": PROBLEM_TYPE + "unidentified_customer",
        "title": "Unidentified customer",
        "status": 401,
        "code": "unidentified_customer",
        "detail": "This API is metered per customer; the request does not say whose it is.",
        "instance": path,
    }
    body = _json.dumps(problem)
    headers = [
        (b"content-type", b"application/problem+json"),
        (b"content-length", str(len(body)).encode()),
    ]
    return Refusal(401, headers, body)


def _retry_after(decision: Decision, now: float) -> int | None:
    if decision.reason == LIMITS_UNAVAILABLE:
        return _UNAVAILABLE_RETRY
    if decision.retry_after is None:
        return None
    return max(1, _seconds_until(decision.retry_after.timestamp(), now))


def _upgrade_link(template: str | None, customer: str) -> str | None:
    if template is None:
        return None
    return template.replace("{customer}", quote(customer, safe=""))


def _plain(value: Decimal | None) -> str | None:
    return None if value is None else format(value, "f")


def _problem(decision: Decision, status: int, path: str, upgrade_url: str | None) -> dict[str, Any]:
    code = decision.reason
    problem: dict[str, Any] = {
        "type": PROBLEM_TYPE + code,
        "title": _TITLES.get(code, "Not allowed"),
        "status": status,
        "code": code,
        "detail": _detail(decision, upgrade_url),
        "instance": path,
        **_limit_fields(decision),
    }
    if upgrade_url is not None:
        problem["upgrade_url"] = upgrade_url
    if decision.limit is not None and status in (402, 429):
        # The draft's quota-exceeded problem names the policies at fault this way.
        problem["violated-policies"] = [decision.meter]
    return problem


def _limit_fields(decision: Decision) -> Mapping[str, Any]:
    fields = decision.as_dict()
    return {
        name: fields[name]
        for name in (
            "customer",
            "meter",
            "policy",
            "limit",
            "usage",
            "remaining",
            "overage_amount",
            "currency",
            "resets_at",
            "retry_after",
            "plan",
        )
    }


def _detail(decision: Decision, upgrade_url: str | None) -> str:
    d = decision
    usage, limit = _plain(d.usage), _plain(d.limit)
    resets = _when(d.resets_at)
    texts = {
        "limit_reached": f"{d.customer} has used {usage} of the {limit} {d.meter} included "
        f"this period; the limit resets {resets}.",
        # Past a throttle policy's limit, or over a rate limit: both are a rate.
        "throttled": f"Calls to {d.meter} are over the rate {d.customer} may use now; "
        f"retry {_when(d.retry_after)}.",
        "spend_cap_reached": f"The overage on {d.meter} has reached the spend cap "
        f"({_plain(d.overage_amount)} {d.currency or ''}); the period resets {resets}.",
        "suspended": f"Access for {d.customer} is suspended until the account is settled.",
        "no_subscription": f"{d.customer} has no active subscription that includes {d.meter}.",
        LIMITS_UNAVAILABLE: "The usage limits could not be checked; retry shortly.",
    }
    text = texts.get(d.reason, f"{d.meter} is not allowed now ({d.reason}).")
    if upgrade_url is not None and d.reason != LIMITS_UNAVAILABLE:
        text += f" Upgrade at {upgrade_url}."
    return text


def _when(instant: datetime | None) -> str:
    return "later" if instant is None else "at " + _json.rfc3339(instant)
