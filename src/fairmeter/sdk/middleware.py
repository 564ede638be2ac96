"""`MeteringMiddleware`: real-time limits in front of a Starlette or FastAPI app.

Pure ASGI (not BaseHTTPMiddleware, which costs a task and a queue per request): it asks
the engine to consume before the handler runs, refuses with problem+json (429, 402, 403,
503) or lets the call through with the IETF RateLimit fields added to the response, and
may report after the handler (the units only the response knows, like tokens).
"""

from __future__ import annotations

import inspect
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Final, Literal

from mypy_extensions import mypyc_attr
from starlette.datastructures import Headers
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from . import _refusals
from ._requests import plain_class as _plain_class
from .decision import Decision
from .engines import Engine

__all__ = ["MeteringMiddleware", "Outcome"]

logger = logging.getLogger("fairmeter.sdk")

Quantity = Decimal | int
CustomerFn = Callable[[Request], str | None] | Callable[[Request], Awaitable[str | None]]
QuantityFn = Callable[[Request], Quantity]
SkipFn = Callable[[Request], bool]


@dataclass(frozen=True, slots=True)
class Outcome:
    """What `report` learns once the handler has answered an admitted call."""

    customer: str
    decision: Decision
    status: int
    headers: Headers  # the response's headers


ReportFn = Callable[[Request, Outcome], Awaitable[None] | None]


def _is_async(function: object) -> bool:
    return inspect.iscoroutinefunction(function) or inspect.iscoroutinefunction(
        getattr(function, "__call__", None)  # noqa: B004 - an object with async __call__
    )


@mypyc_attr(allow_interpreted_subclasses=True)  # compiled or not, you may subclass it
class MeteringMiddleware:
    """`app.add_middleware(MeteringMiddleware, engine=..., customer=..., meter=...)`.

    - `customer(request)` (sync or async) names the customer; None means the request is
      not metered: it passes through (the app's own auth answers it), or with
      `anonymous="reject"` it is refused with 401.
    - `quantity`: a number, or `quantity(request)` for each call (default 1).
    - `skip(request)`: True lets the request through unmetered (health checks, docs).
    - `report(request, outcome)` (sync or async) runs after the handler of an admitted
      call; `request.state.fairmeter` holds the decision for the handler and report.
    - `upgrade_url`: told in every refusal; "{customer}" in it is replaced.
    - `clock`: seconds since the epoch, for the `t` and `Retry-After` values.
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        engine: Engine,
        customer: CustomerFn,
        meter: str = "api_calls",
        quantity: Quantity | QuantityFn = 1,
        report: ReportFn | None = None,
        skip: SkipFn | None = None,
        upgrade_url: str | None = None,
        anonymous: Literal["pass", "reject"] = "pass",
        clock: Callable[[], float] = time.time,
    ) -> None:
        if anonymous not in ("pass", "reject"):
            raise ValueError('anonymous must be "pass" or "reject"')
        self.app = app
        self.engine = engine
        self.meter = meter
        self._customer = customer
        self._customer_async = _is_async(customer)
        self._quantity = Decimal(1) if callable(quantity) else Decimal(quantity)
        self._quantity_fn: QuantityFn | None = quantity if callable(quantity) else None
        self._report = report
        self._report_async = _is_async(report)
        self._skip = skip
        self._upgrade_url = upgrade_url
        self._reject_anonymous = anonymous == "reject"
        self._clock = clock
        self._fields = _refusals.RateLimitFields(meter)
        self._fields_of = self._fields.__call__  # bound once: no slot lookup per request
        consume_now = getattr(engine, "consume_now", None)
        self._consume_now: Callable[[str, str, Decimal], Decision] | None = (
            consume_now if callable(consume_now) and not _is_async(consume_now) else None
        )
        plain = not (self._customer_async or skip or report or self._quantity_fn)
        self._consume_plain = self._consume_now if plain else None

    def __call__(
        self, scope: Scope, receive: Receive | None = None, send: Send | None = None
    ) -> Any:
        """The request as an awaitable: on the common set-up (a sync `customer`, one
        quantity, no skip or report, an in-process engine, a scope that is a dict as ASGI
        says), the inner app's own coroutine once the call is admitted, with no coroutine
        of ours around it (nor the interpreter's wrapping of one); else ours. ADR 14.

        Not a coroutine function, so a server handed this app directly (not through
        `add_middleware`) may take it for ASGI 2 and call `app(scope)`, then
        `(receive, send)`: that is served too, the same way (`_Asgi2`)."""
        if receive is None or send is None:
            return _Asgi2(self, scope)
        consume = self._consume_plain
        if consume is None or not isinstance(scope, dict) or scope["type"] != "http":
            return self._call(scope, receive, send)
        plain: dict[str, Any] = scope
        customer = self._customer(_request(scope, receive))
        if customer is None:
            return self._anonymous(scope, receive, send)
        decision = consume(customer, self.meter, self._quantity)
        state = plain.get("state")
        if state is None:
            state = plain["state"] = {}
        state["fairmeter"] = decision
        now = self._clock()
        fields = self._fields_of(decision, now)
        if not decision.allowed:
            return self._refuse(decision, fields, now, scope, send)
        return self.app(scope, receive, _WithFields(send, fields) if fields else send)

    async def _call(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request = Request(scope, receive)
        if self._skip is not None and self._skip(request):
            await self.app(scope, receive, send)
            return
        customer: Any = self._customer(request)
        if self._customer_async:
            customer = await customer
        if customer is None:
            await self._anonymous(scope, receive, send)
            return
        quantity = self._quantity
        if self._quantity_fn is not None:
            quantity = Decimal(self._quantity_fn(request))
        if self._consume_now is not None:  # an in-process engine: no coroutine to await
            decision = self._consume_now(customer, self.meter, quantity)
        else:
            decision = await self.engine.consume(customer, self.meter, quantity)
        scope.setdefault("state", {})["fairmeter"] = decision
        now = self._clock()
        fields = self._fields_of(decision, now)
        if not decision.allowed:
            await self._refuse(decision, fields, now, scope, send)
        elif self._report is None:
            await self.app(scope, receive, _WithFields(send, fields) if fields else send)
        else:
            await self._handle_and_report(request, customer, decision, fields, send)

    async def _refuse(
        self,
        decision: Decision,
        fields: list[tuple[bytes, bytes]],
        now: float,
        scope: Scope,
        send: Send,
    ) -> None:
        refusal = _refusals.refusal(decision, fields, now, path=scope["path"],
                                    upgrade_url=self._upgrade_url)  # fmt: skip
        await _send(send, refusal)

    async def _anonymous(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self._reject_anonymous:
            await _send(send, _refusals.unidentified(scope["path"]))
        else:
            await self.app(scope, receive, send)

    async def _handle_and_report(
        self,
        request: Request,
        customer: str,
        decision: Decision,
        fields: list[tuple[bytes, bytes]],
        send: Send,
    ) -> None:
        started: list[Message] = []

        async def send_and_watch(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", ()), *fields]
                started.append(message)
            await send(message)

        await self.app(request.scope, request.receive, send_and_watch)
        if not started:
            return
        start = started[0]
        outcome = Outcome(customer, decision, start["status"], Headers(raw=start["headers"]))
        try:
            done = self._report(request, outcome)  # type: ignore[misc]
            if self._report_async:
                await done  # type: ignore[misc]
        except Exception:
            # The response has gone out already; a failing report must not turn it into an
            # error, but it must not pass silently either.
            logger.exception("fairmeter report callback failed for %s", customer)


class _Asgi2:
    """`app(scope)(receive, send)`: the ASGI 2 calling convention, for a server that
    takes `MeteringMiddleware` for an ASGI 2 app."""

    __slots__ = ("app", "scope")

    def __init__(self, app: MeteringMiddleware, scope: Scope) -> None:
        self.app = app
        self.scope = scope

    def __call__(self, receive: Receive, send: Send) -> Awaitable[None]:
        awaitable: Awaitable[None] = self.app(self.scope, receive, send)
        return awaitable


@mypyc_attr(free_list_len=1)  # compiled: one per request, made again from a freed one
class _WithFields:
    """`send`, adding the RateLimit fields to the response's start. A plain callable handing
    back `send`'s awaitable (no coroutine of its own per message), one object per request."""

    __slots__ = ("fields", "send")

    def __init__(self, send: Send, fields: list[tuple[bytes, bytes]]) -> None:
        self.send = send
        self.fields = fields

    def __call__(self, message: Message) -> Awaitable[None]:
        if isinstance(message, dict):  # as ASGI says: compiled, the dict's own reads
            plain: dict[str, Any] = message
            if plain["type"] == "http.response.start":
                plain["headers"] = _joined(plain.get("headers", ()), self.fields)
        elif message["type"] == "http.response.start":
            message["headers"] = _joined(message.get("headers", ()), self.fields)
        return self.send(message)


_PLAIN: Final = _plain_class
_new_object: Final = object.__new__


def _request(scope: Scope, receive: Receive) -> Request:
    """`Request(scope, receive)` for the customer function, made cheaply (`_requests`)."""
    if _PLAIN is None:
        return Request(scope, receive)
    request: Request = _new_object(_PLAIN)
    request.scope = scope
    request._receive = receive
    return request


def _joined(headers: Any, fields: list[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
    # ASGI allows any iterable; Starlette sends a list, joined in one step.
    return headers + fields if type(headers) is list else [*headers, *fields]


async def _send(send: Send, refusal: _refusals.Refusal) -> None:
    await send(
        {"type": "http.response.start", "status": refusal.status, "headers": refusal.headers}
    )
    await send({"type": "http.response.body", "body": refusal.body})
