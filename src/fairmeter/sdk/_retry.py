"""When a failed call may be sent again, and how long to wait first."""

from __future__ import annotations

import random
from dataclasses import dataclass

import httpx

from .errors import retry_after_seconds

__all__ = ["RetryPolicy"]

# Past this, a caller is better served by an error than by a hung call.
MAX_DELAY = 10.0


@dataclass(frozen=True)
class RetryPolicy:
    max_retries: int
    backoff: float

    def __post_init__(self) -> None:
        if self.max_retries < 0:
            raise ValueError("max_retries must be >= 0")
        if self.backoff < 0:
            raise ValueError("backoff must be >= 0")

    def delay(self, attempt: int, retry_after: float | None = None) -> float:
        """Exponential backoff with jitter, so clients that failed together spread out."""
        base = min(MAX_DELAY, self.backoff * 2.0**attempt)
        delay = base / 2 + random.uniform(0, base / 2)
        if retry_after is not None:
            delay = max(delay, retry_after)
        return min(MAX_DELAY, delay)

    def _may_retry(self, idempotent: bool, attempt: int) -> bool:
        # Only idempotent calls: resending a create after a lost answer could apply it twice.
        return idempotent and attempt < self.max_retries

    def after_error(
        self, idempotent: bool, attempt: int, error: httpx.TransportError
    ) -> float | None:
        """Seconds to wait before the next attempt, or None to give up now."""
        if isinstance(error, httpx.UnsupportedProtocol) or not self._may_retry(idempotent, attempt):
            return None
        return self.delay(attempt)

    def after_response(
        self, idempotent: bool, attempt: int, response: httpx.Response
    ) -> float | None:
        """Seconds to wait before the next attempt, or None when `response` is final."""
        status = response.status_code
        if not (status == 429 or status >= 500) or not self._may_retry(idempotent, attempt):
            return None
        return self.delay(attempt, retry_after_seconds(response))
