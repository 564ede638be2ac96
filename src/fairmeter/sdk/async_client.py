"""The asyncio client: `Client`'s methods as coroutines, over httpx.AsyncClient."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from datetime import datetime
from decimal import Decimal
from types import TracebackType
from typing import Any, Self

import httpx

from . import _calls
from ._base import (
    DEFAULT_BATCH_SIZE,
    BaseClient,
    answer,
    as_object,
    batch_absorbs,
    headers,
    log_retry,
    request_kwargs,
)
from ._calls import BatchResult, Call, EventLike
from .buffer import AsyncEventBuffer, RejectionHandler
from .decision import Decision
from .errors import TransportError, ValidationError
from .events import DEFAULT_SOURCE, build_event

__all__ = ["AsyncClient"]


class AsyncClient(BaseClient):
    """asyncio client with the same methods as `Client`, as coroutines."""

    def __init__(
        self,
        base_url: str,
        api_key: str,
        *,
        timeout: float | httpx.Timeout = 10.0,
        max_retries: int = 3,
        backoff: float = 0.2,
        transport: httpx.AsyncBaseTransport | None = None,
        batch_size: int = DEFAULT_BATCH_SIZE,
    ) -> None:
        super().__init__(max_retries, backoff, batch_size)
        self._http = httpx.AsyncClient(
            base_url=base_url, headers=headers(api_key), timeout=timeout, transport=transport
        )

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    async def close(self) -> None:
        await self._http.aclose()

    aclose = close  # the name httpx and contextlib.aclosing expect

    async def _request(self, call: Call) -> Any:
        attempt = 0
        while True:
            try:
                response = await self._http.request(call.method, call.path, **request_kwargs(call))
            except httpx.TransportError as exc:
                delay = self._policy.after_error(call.idempotent, attempt, exc)
                if delay is None:
                    raise TransportError.wrap(exc) from exc
                reason: object = exc
            else:
                delay = self._policy.after_response(call.idempotent, attempt, response)
                if delay is None:
                    return answer(response)
                reason = response.status_code
            log_retry(call, attempt, delay, reason)
            await asyncio.sleep(delay)
            attempt += 1

    async def send_event(
        self,
        *,
        type: str,
        subject: str,
        data: Mapping[str, Any] | None = None,
        id: str | None = None,
        source: str = DEFAULT_SOURCE,
        time: datetime | str | None = None,
        **extensions: Any,
    ) -> dict[str, Any]:
        """POST one CloudEvent; a retry resends the same id, so it counts once."""
        event = build_event(
            type=type, subject=subject, data=data, id=id, source=source, time=time, **extensions
        )
        return as_object(await self._request(_calls.send_event(event)))

    async def send_events(
        self, events: Sequence[EventLike], *, batch_size: int | None = None
    ) -> dict[str, Any]:
        """POST `events` in chunks of `batch_size`; answers are summed as one.

        `rejected[].index` points into `events`. Raises ValidationError only when
        no chunk had anything accepted, like the server does for one request.
        """
        size = self._batch_size if batch_size is None else batch_size
        batch = BatchResult()
        for offset, call in _calls.event_batches(events, size):
            try:
                batch.add(offset, as_object(await self._request(call)))
            except ValidationError as error:
                if not batch_absorbs(error):
                    raise
                batch.add_failure(offset, error)
        return batch.result()

    def buffer(
        self,
        *,
        max_events: int = 1000,
        flush_interval: float = 1.0,
        on_rejected: RejectionHandler | None = None,
    ) -> AsyncEventBuffer:
        """A buffer that batches `add()`ed events through this client."""
        return AsyncEventBuffer(
            self, max_events=max_events, flush_interval=flush_interval, on_rejected=on_rejected
        )

    async def create_meter(
        self,
        key: str,
        *,
        event_type: str,
        aggregation: str,
        name: str | None = None,
        value_property: str | None = None,
        group_by: Sequence[str] | Mapping[str, str] | None = None,
        unit: str | None = None,
    ) -> dict[str, Any]:
        fields = {
            "event_type": event_type,
            "aggregation": aggregation,
            "name": name,
            "value_property": value_property,
            "group_by": group_by,
            "unit": unit,
        }
        return as_object(await self._request(_calls.create_meter(key, fields)))

    async def get_meter(self, key: str) -> dict[str, Any]:
        return as_object(await self._request(_calls.get(_calls.meter_path(key))))

    async def list_meters(self, *, include_archived: bool = False) -> list[dict[str, Any]]:
        return _calls.data_list(await self._request(_calls.meters_list(include_archived)))

    async def create_customer(
        self,
        key: str,
        *,
        name: str | None = None,
        email: str | None = None,
        currency: str = "USD",
        timezone: str = "UTC",
        metadata: Mapping[str, Any] | None = None,
    ) -> dict[str, Any]:
        fields = {
            "name": name,
            "email": email,
            "currency": currency,
            "timezone": timezone,
            "metadata": metadata,
        }
        return as_object(await self._request(_calls.create_customer(key, fields)))

    async def get_customer(self, key: str) -> dict[str, Any]:
        return as_object(await self._request(_calls.get(_calls.customer_path(key))))

    async def list_customers(self) -> list[dict[str, Any]]:
        """Every customer, following the server's pages."""
        customers: list[dict[str, Any]] = []
        after: str | None = None
        while True:
            body = await self._request(_calls.customers_page(after))
            customers.extend(_calls.data_list(body))
            after = _calls.next_customer(body)
            if after is None:
                return customers

    async def update_customer(self, key: str, **fields: Any) -> dict[str, Any]:
        """PATCH the given fields; a field passed as None is cleared."""
        return as_object(await self._request(_calls.update_customer(key, fields)))

    async def usage(
        self,
        meter: str,
        *,
        customer: str | None = None,
        from_: datetime | str | None = None,
        to: datetime | str | None = None,
        window: str = "none",
        timezone: str | None = None,
        group_by: Sequence[str] | str | None = None,
    ) -> list[dict[str, Any]]:
        """Usage rows of `meter`; each row's `value` is a Decimal (or None)."""
        call = _calls.usage(
            meter,
            customer=customer,
            from_=from_,
            to=to,
            window=window,
            timezone=timezone,
            group_by=group_by,
        )
        return _calls.usage_rows(await self._request(call))

    async def check(self, customer: str, meter: str, quantity: Decimal | int | str = 1) -> Decision:
        """Would `quantity` more of `meter` be allowed now? Records nothing."""
        call = _calls.entitlement("check", customer, meter, quantity)
        return Decision.from_dict(as_object(await self._request(call)))

    async def consume(
        self,
        customer: str,
        meter: str,
        quantity: Decimal | int | str = 1,
        *,
        idempotency_key: str | None = None,
        data: Mapping[str, Any] | None = None,
    ) -> Decision:
        """Check and, when allowed, record `quantity` as usage, in one step.

        A refusal is a Decision with `allowed` False, not an exception. Without an
        `idempotency_key` a new one is made, so the client's own retries count once.
        """
        call = _calls.entitlement("consume", customer, meter, quantity, idempotency_key, data)
        return Decision.from_dict(as_object(await self._request(call)))
