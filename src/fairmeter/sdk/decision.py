"""The answer to "may this customer use this meter now?", as the SDK sees it.

Parsed from the server's JSON (`POST /v1/entitlements/check|consume`), or built by an
in-process engine; quantities are exact Decimals and times aware datetimes.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from decimal import Decimal
from typing import Any, NamedTuple

from . import _json

__all__ = ["LIMITS_UNAVAILABLE", "Decision"]

# The reason given when no engine could answer (the server or its counters are down).
LIMITS_UNAVAILABLE = "limits_unavailable"


def _decimal(value: object) -> Decimal | None:
    if value is None:
        return None
    return value if isinstance(value, Decimal) else Decimal(str(value))


def _time(value: object) -> datetime | None:
    if value is None or isinstance(value, datetime):
        return value
    # fromisoformat reads RFC 3339 ("Z" included) since Python 3.11.
    parsed = datetime.fromisoformat(str(value))
    if parsed.tzinfo is None:
        raise ValueError(f"time without an offset: {value!r}")
    return parsed


def _text(value: object) -> str | None:
    return None if value is None else str(value)


class Decision(NamedTuple):
    """`allowed` and a stable `reason` (within_allowance, overage, upgraded, limit_reached,
    spend_cap_reached, throttled, suspended, no_subscription, limits_unavailable).

    Immutable. A NamedTuple rather than a frozen dataclass because the in-process engine
    builds one per request, and a frozen dataclass takes three times as long to build."""

    allowed: bool
    reason: str
    customer: str
    meter: str
    policy: str | None = None
    usage: Decimal | None = None
    limit: Decimal | None = None  # None: the meter has no limit on the plan
    remaining: Decimal | None = None
    overage_amount: Decimal | None = None
    currency: str | None = None
    retry_after: datetime | None = None  # when a refused call may succeed again
    resets_at: datetime | None = None  # the end of the current period
    plan: str | None = None
    upgraded_to: str | None = None
    duplicate: bool = False

    @classmethod
    def from_dict(cls, body: Mapping[str, Any]) -> Decision:
        """The decision in a server answer; unknown fields are ignored (newer servers)."""
        return cls(
            allowed=bool(body["allowed"]),
            reason=str(body["reason"]),
            customer=str(body.get("customer") or ""),
            meter=str(body.get("meter") or ""),
            policy=_text(body.get("policy")),
            usage=_decimal(body.get("usage")),
            limit=_decimal(body.get("limit")),
            remaining=_decimal(body.get("remaining")),
            overage_amount=_decimal(body.get("overage_amount")),
            currency=_text(body.get("currency")),
            retry_after=_time(body.get("retry_after")),
            resets_at=_time(body.get("resets_at")),
            plan=_text(body.get("plan")),
            upgraded_to=_text(body.get("upgraded_to")),
            duplicate=bool(body.get("duplicate", False)),
        )

    @classmethod
    def unavailable(cls, customer: str, meter: str, *, allowed: bool) -> Decision:
        """The decision taken without an engine: `allowed` is the fail-open/closed setting."""
        return cls(allowed=allowed, reason=LIMITS_UNAVAILABLE, customer=customer, meter=meter)

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready fields, the same shape the server answers with."""
        return {
            "allowed": self.allowed,
            "reason": self.reason,
            "customer": self.customer,
            "meter": self.meter,
            "policy": self.policy,
            "usage": _plain(self.usage),
            "limit": _plain(self.limit),
            "remaining": _plain(self.remaining),
            "overage_amount": _plain(self.overage_amount),
            "currency": self.currency,
            "retry_after": _rfc3339(self.retry_after),
            "resets_at": _rfc3339(self.resets_at),
            "plan": self.plan,
            "upgraded_to": self.upgraded_to,
            "duplicate": self.duplicate,
        }


def _plain(value: Decimal | None) -> str | None:
    return None if value is None else format(value, "f")


def _rfc3339(value: datetime | None) -> str | None:
    return None if value is None else _json.rfc3339(value)
