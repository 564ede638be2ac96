"""Delivery rules: which endpoint hears which event, when to try again, how a webhook is
signed (Standard Webhooks), and which addresses a webhook may target."""

from __future__ import annotations

import base64
import hashlib
import hmac
import ipaddress
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from urllib.parse import urlsplit

SECRET_PREFIX = "whsec_"
# The retry schedule: after the n-th failed attempt wait BASE * FACTOR**(n-1), times a
# jitter of 1.0-1.2 (so endpoints that failed together do not retry together), capped at
# CAP. With 9 attempts the waits are ~10 s, 50 s, 4 min, 21 min, 1.7 h, 8.7 h, 30 h, 30 h:
# the last attempt comes ~71 h (about 3 days) after the first; then the delivery fails.
RETRY_BASE_US = 10 * 1_000_000
RETRY_FACTOR = 5
RETRY_CAP_US = 30 * 3600 * 1_000_000
MAX_ATTEMPTS = 9
JITTER = 0.2


def retry_delay_us(failed_attempts: int, jitter: float) -> int | None:
    """How long to wait after `failed_attempts` failures (1 = the first try failed) before
    the next try, or None when the schedule is over. `jitter` is a random number in [0, 1)."""
    if failed_attempts < 1:
        raise ValueError("failed_attempts counts from 1")
    if failed_attempts >= MAX_ATTEMPTS:
        return None
    plain = RETRY_BASE_US * RETRY_FACTOR ** (failed_attempts - 1)
    return min(int(plain * (1 + JITTER * jitter)), RETRY_CAP_US)


# What an endpoint may subscribe to: alert kinds (issue #5) and lifecycle kinds (hooks).
EVENT_KINDS = frozenset(
    {
        "alert.usage_threshold",
        "alert.spend_threshold",
        "alert.budget",
        "alert.forecast",
        "limit.reached",
        "plan.upgraded",
        "access.throttled",
        "access.suspended",
        "access.restored",
        "invoice.issued",
        "invoice.past_due",
    }
)


def matches_event(subscribed: Sequence[str], kind: str) -> bool:
    """An endpoint hears the kinds it lists by name, or every kind with "*"."""
    return "*" in subscribed or kind in subscribed


# --- Standard Webhooks (https://www.standardwebhooks.com) -------------------------------------
def new_secret(random_bytes: bytes) -> str:
    """`whsec_` + base64 of 24+ random bytes (the caller draws them)."""
    if len(random_bytes) < 24:
        raise ValueError("a webhook secret needs at least 24 random bytes")
    return SECRET_PREFIX + base64.b64encode(random_bytes).decode()


def sign(secret: str, message_id: str, timestamp: int, body: bytes) -> str:
    """The `webhook-signature` header: `v1,` + base64 HMAC-SHA256 over
    "{id}.{timestamp}.{body}", keyed with the secret's decoded bytes."""
    key = base64.b64decode(secret.removeprefix(SECRET_PREFIX))
    signed = f"{message_id}.{timestamp}.".encode() + body
    digest = hmac.new(key, signed, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def signed_headers(secret: str, message_id: str, timestamp: int, body: bytes) -> dict[str, str]:
    return {
        "content-type": "application/json",
        "webhook-id": message_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": sign(secret, message_id, timestamp, body),
    }


# --- where a webhook may go -------------------------------------------------------------------
Network = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass(frozen=True)
class TargetPolicy:
    """Webhooks go to public addresses only, unless a host or network is allowed
    explicitly (FAIRMETER_WEBHOOK_ALLOW_PRIVATE): a URL must not reach into the server's
    own network (SSRF)."""

    hosts: frozenset[str] = frozenset()
    networks: tuple[Network, ...] = ()

    @classmethod
    def parse(cls, allowed: Iterable[str]) -> TargetPolicy:
        hosts: set[str] = set()
        networks: list[Network] = []
        for entry in (e.strip() for e in allowed):
            if not entry:
                continue
            try:
                networks.append(ipaddress.ip_network(entry, strict=False))
            except ValueError:
                hosts.add(entry.lower())
        return cls(frozenset(hosts), tuple(networks))

    def refusal(self, host: str, addresses: Iterable[str]) -> str | None:
        """Why a host that resolves to `addresses` may not be called, or None if it may."""
        if host.lower().strip("[]") in self.hosts:
            return None
        for text in addresses:
            address = ipaddress.ip_address(text.split("%", 1)[0])
            if _public(address) or any(address in net for net in self.networks):
                continue
            return f"{host} resolves to the non-public address {address}"
        return None


def _public(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    return not (
        address.is_private
        or address.is_loopback
        or address.is_link_local
        or address.is_multicast
        or address.is_reserved
        or address.is_unspecified
    )


def url_problem(url: str) -> str | None:
    """What is wrong with a webhook URL's form, or None."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https"):
        return "the URL must start with https:// (or http://)"
    if not parts.hostname:
        return "the URL has no host"
    if parts.username or parts.password:
        return "the URL must not carry credentials"
    return None


@dataclass(frozen=True)
class ChannelSettings:
    """How notifications leave: SMTP (empty: no email is sent), where webhooks may go, and
    how often an idle worker looks for due deliveries."""

    smtp_url: str = ""
    targets: TargetPolicy = TargetPolicy()
    poll_seconds: float = 1.0
