"""What `MeteringMiddleware` asks for a decision: an in-process engine or a remote server.

`RemoteEngine` talks to a fairmeter server with `AsyncClient`. Every allowed call goes to
the server (usage must be counted there, once); refusals are remembered for a short time,
so a customer hammering a closed limit costs no round trips. When the server cannot be
reached, the named `failure` setting decides: "open" admits the call uncounted, "closed"
refuses it (503). Either way it is logged and counted in `stats`.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Literal, Protocol

from .async_client import AsyncClient
from .decision import LIMITS_UNAVAILABLE, Decision
from .errors import (
    AuthenticationError,
    FairmeterError,
    PermissionDeniedError,
    RateLimitError,
    ServerError,
    TransportError,
)

__all__ = ["Engine", "Failure", "RemoteEngine", "RemoteStats"]

logger = logging.getLogger("fairmeter.sdk")

Failure = Literal["open", "closed"]

# Answers that say "the server cannot decide now", not "this customer may not".
_UNREACHABLE = (
    TransportError,
    ServerError,
    RateLimitError,
    AuthenticationError,
    PermissionDeniedError,
)
# Of those, the ones a person must fix (a wrong or revoked key): logged as errors.
_MISCONFIGURED = (AuthenticationError, PermissionDeniedError)


class Engine(Protocol):
    """What `MeteringMiddleware` asks. An in-process engine may also offer a synchronous
    `consume_now(customer, meter, quantity) -> Decision`, which the middleware then calls
    instead (no coroutine per request)."""

    async def consume(self, customer: str, meter: str, quantity: Decimal) -> Decision:
        """Decide and, when allowed, count `quantity` of `meter` for `customer`."""
        ...


@dataclass
class RemoteStats:
    """Counts since the engine was made; read them for metrics."""

    calls: int = 0  # round trips to the server
    cached_refusals: int = 0  # refusals answered from the local cache
    failed_open: int = 0  # calls admitted because the server could not be reached
    failed_closed: int = 0  # calls refused because the server could not be reached


class RemoteEngine:
    """An `Engine` backed by a fairmeter server.

    `client` is an `AsyncClient` the caller owns, or give `base_url` and `api_key` (an
    ingest or admin key) and the engine makes one with a short timeout and one retry (the
    consume carries an idempotency key, so the retry cannot count twice), closed by
    `aclose()`. `cache_ttl` (seconds) bounds how long a refusal, or the server being
    unreachable, is remembered; a refusal is never kept past its `retry_after`.
    """

    def __init__(
        self,
        client: AsyncClient | None = None,
        *,
        base_url: str | None = None,
        api_key: str | None = None,
        cache_ttl: float = 1.0,
        failure: Failure = "closed",
        timeout: float = 2.0,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        if failure not in ("open", "closed"):
            raise ValueError('failure must be "open" or "closed"')
        if cache_ttl < 0:
            raise ValueError("cache_ttl must be >= 0")
        self._owns_client = client is None
        if client is None:
            if not base_url or not api_key:
                raise ValueError("give a client, or base_url and api_key")
            client = AsyncClient(base_url, api_key, timeout=timeout, max_retries=1, backoff=0.05)
        self.client = client
        self.failure: Failure = failure
        self.cache_ttl = cache_ttl
        self.stats = RemoteStats()
        self._now = monotonic
        self._refusals: dict[tuple[str, str], tuple[float, Decision]] = {}
        self._down_until = 0.0

    async def consume(self, customer: str, meter: str, quantity: Decimal) -> Decision:
        now = self._now()
        cached = self._cached_refusal(customer, meter, now)
        if cached is not None:
            self.stats.cached_refusals += 1
            return cached
        if now < self._down_until:
            return self._unreachable(customer, meter)
        try:
            self.stats.calls += 1
            decision = await self.client.consume(customer, meter, quantity)
        except _UNREACHABLE as error:
            self._went_down(error, now)
            return self._unreachable(customer, meter)
        self._came_back()
        if not decision.allowed and decision.reason != LIMITS_UNAVAILABLE:
            self._remember(decision, now)
        return decision

    async def aclose(self) -> None:
        if self._owns_client:
            await self.client.aclose()

    def _cached_refusal(self, customer: str, meter: str, now: float) -> Decision | None:
        entry = self._refusals.get((customer, meter))
        if entry is None:
            return None
        if now < entry[0]:
            return entry[1]
        del self._refusals[(customer, meter)]
        return None

    def _remember(self, decision: Decision, now: float) -> None:
        ttl = self.cache_ttl
        if decision.retry_after is not None:
            ttl = min(ttl, max(0.0, decision.retry_after.timestamp() - time.time()))
        if ttl > 0:
            self._refusals[(decision.customer, decision.meter)] = (now + ttl, decision)

    def _went_down(self, error: FairmeterError, now: float) -> None:
        if self._down_until == 0.0:
            level = logging.ERROR if isinstance(error, _MISCONFIGURED) else logging.WARNING
            logger.log(level, "fairmeter server unreachable (%s); failing %s", error, self.failure)
        self._down_until = now + self.cache_ttl

    def _came_back(self) -> None:
        if self._down_until:
            logger.warning("fairmeter server reachable again")
            self._down_until = 0.0

    def _unreachable(self, customer: str, meter: str) -> Decision:
        if self.failure == "open":
            self.stats.failed_open += 1
        else:
            self.stats.failed_closed += 1
        return Decision.unavailable(customer, meter, allowed=self.failure == "open")
