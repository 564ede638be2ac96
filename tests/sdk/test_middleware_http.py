"""MeteringMiddleware over HTTP: a real Starlette app through httpx, with an engine that
answers the decisions each test sets, so every status, header and problem body is
checked here; the real engines have their own test files."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import AsyncIterator, Callable, Iterator, MutableMapping
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse
from starlette.routing import Route

from fairmeter.sdk import Decision, MeteringMiddleware, Outcome

pytestmark = pytest.mark.anyio

NOW = datetime(2026, 11, 15, 12, 0, tzinfo=UTC)
RESETS = datetime(2026, 12, 1, tzinfo=UTC)
TO_RESET = 15 * 86400 + 12 * 3600  # seconds from NOW to RESETS


class ScriptedEngine:
    """Answers every consume with `decision` (its customer and meter filled in) and
    remembers what it was asked."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str, Decimal]] = []
        self.fields: dict[str, Any] = {"allowed": True, "reason": "within_allowance"}

    async def consume(self, customer: str, meter: str, quantity: Decimal) -> Decision:
        self.calls.append((customer, meter, quantity))
        return Decision(customer=customer, meter=meter, **self.fields)


def _limited(allowed: bool, reason: str, **fields: Any) -> dict[str, Any]:
    return {
        "allowed": allowed,
        "reason": reason,
        "policy": "block",
        "usage": Decimal("1000"),
        "limit": Decimal("1000"),
        "remaining": Decimal("0"),
        "resets_at": RESETS,
        "retry_after": None if allowed else RESETS,
        "plan": "pro",
        **fields,
    }


async def _hello(request: Request) -> JSONResponse:
    decision = getattr(request.state, "fairmeter", None)
    return JSONResponse({"hello": "world", "reason": decision and decision.reason})


async def _health(request: Request) -> PlainTextResponse:
    return PlainTextResponse("ok")


def _app(engine: ScriptedEngine, **options: Any) -> Starlette:
    settings = {
        "engine": engine,
        "customer": lambda request: request.headers.get("x-customer"),
        "meter": "api_calls",
        "clock": NOW.timestamp,
        **options,
    }
    return Starlette(
        routes=[Route("/hello", _hello, methods=["GET", "POST"]), Route("/health", _health)],
        middleware=[Middleware(MeteringMiddleware, **settings)],
    )


@pytest.fixture
def engine() -> ScriptedEngine:
    return ScriptedEngine()


@pytest.fixture
def make_client() -> Callable[..., httpx.AsyncClient]:
    def make(app: Starlette) -> httpx.AsyncClient:
        return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://api")

    return make


@pytest.fixture
async def client(
    engine: ScriptedEngine, make_client: Callable[..., httpx.AsyncClient]
) -> AsyncIterator[httpx.AsyncClient]:
    async with make_client(_app(engine, upgrade_url="https://example.com/upgrade")) as http:
        yield http


ACME = {"x-customer": "acme"}


async def test_an_allowed_call_reaches_the_handler_after_one_consume(
    client: httpx.AsyncClient, engine: ScriptedEngine
) -> None:
    response = await client.get("/hello", headers=ACME)
    assert response.status_code == 200
    assert response.json() == {"hello": "world", "reason": "within_allowance"}
    assert engine.calls == [("acme", "api_calls", Decimal(1))]


async def test_an_allowed_call_carries_the_ratelimit_fields(
    client: httpx.AsyncClient, engine: ScriptedEngine
) -> None:
    engine.fields = _limited(True, "within_allowance", usage=Decimal("988"))
    engine.fields["remaining"] = Decimal("12.5")
    response = await client.get("/hello", headers=ACME)
    assert response.status_code == 200
    assert response.headers["ratelimit-policy"] == '"api_calls";q=1000'
    # r is an Integer: 12.5 left is 12 whole calls; t is seconds until the period resets.
    assert response.headers["ratelimit"] == f'"api_calls";r=12;t={TO_RESET}'
    assert "retry-after" not in response.headers


async def test_a_meter_without_a_limit_sends_no_ratelimit_fields(
    client: httpx.AsyncClient,
) -> None:
    response = await client.get("/hello", headers=ACME)
    assert response.status_code == 200
    assert "ratelimit" not in response.headers
    assert "ratelimit-policy" not in response.headers


async def test_a_reached_limit_is_a_429_problem_naming_the_limit_and_its_reset(
    client: httpx.AsyncClient, engine: ScriptedEngine
) -> None:
    engine.fields = _limited(False, "limit_reached")
    response = await client.post("/hello", headers=ACME)
    assert response.status_code == 429
    assert response.headers["content-type"] == "application/problem+json"
    assert response.headers["retry-after"] == str(TO_RESET)
    assert response.headers["ratelimit"] == f'"api_calls";r=0;t={TO_RESET}'
    assert response.headers["ratelimit-policy"] == '"api_calls";q=1000'
    body = response.json()
    assert body["type"] == "https://fairmeter.dev/problems/limit_reached"
    assert (body["status"], body["code"], body["instance"]) == (429, "limit_reached", "/hello")
    assert (body["meter"], body["limit"], body["usage"], body["remaining"]) == (
        "api_calls",
        "1000",
        "1000",
        "0",
    )
    assert body["resets_at"] == body["retry_after"] == "2026-12-01T00:00:00+00:00"
    assert body["upgrade_url"] == "https://example.com/upgrade"
    assert body["violated-policies"] == ["api_calls"]
    assert "resets at 2026-12-01T00:00:00+00:00" in body["detail"]
    assert "Upgrade at https://example.com/upgrade" in body["detail"]


async def test_a_throttled_call_is_a_429_to_retry_when_the_bucket_refills(
    client: httpx.AsyncClient, engine: ScriptedEngine
) -> None:
    soon = NOW + timedelta(milliseconds=300)
    engine.fields = _limited(False, "throttled", policy="throttle", retry_after=soon)
    response = await client.get("/hello", headers=ACME)
    assert response.status_code == 429
    assert response.json()["code"] == "throttled"
    # Retry-After is whole seconds, never 0 for a refusal; t rounds up too.
    assert response.headers["retry-after"] == "1"
    assert response.headers["ratelimit"] == '"api_calls";r=0;t=1'


@pytest.mark.parametrize("reason", ["spend_cap_reached", "suspended"])
async def test_a_customer_who_must_pay_gets_a_402(
    client: httpx.AsyncClient, engine: ScriptedEngine, reason: str
) -> None:
    engine.fields = _limited(
        False, reason, policy="overage", overage_amount=Decimal("50.00"), currency="USD"
    )
    response = await client.get("/hello", headers=ACME)
    assert response.status_code == 402
    body = response.json()
    assert (body["code"], body["overage_amount"], body["currency"]) == (reason, "50.00", "USD")
    assert body["upgrade_url"] == "https://example.com/upgrade"


async def test_a_customer_without_a_subscription_gets_a_403_without_retry_after(
    client: httpx.AsyncClient, engine: ScriptedEngine
) -> None:
    engine.fields = {"allowed": False, "reason": "no_subscription"}
    response = await client.get("/hello", headers=ACME)
    assert response.status_code == 403
    assert response.json()["detail"].startswith("acme has no active subscription")
    assert "retry-after" not in response.headers
    assert "ratelimit" not in response.headers


async def test_limits_that_cannot_be_checked_give_a_503_to_retry_shortly(
    client: httpx.AsyncClient, engine: ScriptedEngine
) -> None:
    engine.fields = {"allowed": False, "reason": "limits_unavailable"}
    response = await client.get("/hello", headers=ACME)
    assert response.status_code == 503
    assert response.json()["code"] == "limits_unavailable"
    assert response.headers["retry-after"] == "1"


async def test_a_refused_call_never_reaches_the_handler(
    engine: ScriptedEngine, make_client: Callable[..., httpx.AsyncClient]
) -> None:
    reached: list[str] = []

    async def handler(request: Request) -> PlainTextResponse:
        reached.append(request.url.path)
        return PlainTextResponse("done")

    app = Starlette(
        routes=[Route("/work", handler, methods=["POST"])],
        middleware=[
            Middleware(MeteringMiddleware, engine=engine, customer=lambda r: "acme", meter="m")
        ],
    )
    engine.fields = _limited(False, "limit_reached")
    async with make_client(app) as http:
        assert (await http.post("/work", content=b"x")).status_code == 429
        engine.fields = {"allowed": True, "reason": "within_allowance"}
        assert (await http.post("/work", content=b"x")).status_code == 200
    assert reached == ["/work"]


async def test_a_request_without_a_customer_passes_through_unmetered(
    client: httpx.AsyncClient, engine: ScriptedEngine
) -> None:
    response = await client.get("/hello")
    # The handler runs without a decision: the app's own auth would answer here.
    assert response.json() == {"hello": "world", "reason": None}
    assert engine.calls == []


async def test_anonymous_reject_answers_401_without_asking_the_engine(
    engine: ScriptedEngine, make_client: Callable[..., httpx.AsyncClient]
) -> None:
    async with make_client(_app(engine, anonymous="reject")) as http:
        response = await http.get("/hello")
    assert response.status_code == 401
    assert response.json()["code"] == "unidentified_customer"
    assert engine.calls == []


async def test_skip_lets_a_request_through_without_consuming(
    engine: ScriptedEngine, make_client: Callable[..., httpx.AsyncClient]
) -> None:
    app = _app(engine, skip=lambda request: request.url.path == "/health")
    engine.fields = _limited(False, "limit_reached")
    async with make_client(app) as http:
        assert (await http.get("/health", headers=ACME)).text == "ok"
        assert (await http.get("/hello", headers=ACME)).status_code == 429
    assert [call[0] for call in engine.calls] == ["acme"]


async def test_quantity_can_be_computed_from_the_request(
    engine: ScriptedEngine, make_client: Callable[..., httpx.AsyncClient]
) -> None:
    app = _app(engine, quantity=lambda request: int(request.query_params.get("n", "1")))
    async with make_client(app) as http:
        await http.get("/hello?n=5", headers=ACME)
        await http.get("/hello", headers=ACME)
    assert [call[2] for call in engine.calls] == [Decimal(5), Decimal(1)]


async def test_an_async_customer_function_is_awaited(
    engine: ScriptedEngine, make_client: Callable[..., httpx.AsyncClient]
) -> None:
    async def customer(request: Request) -> str | None:
        return request.headers.get("x-customer", "").upper() or None

    async with make_client(_app(engine, customer=customer)) as http:
        assert (await http.get("/hello", headers=ACME)).status_code == 200
    assert engine.calls[0][0] == "ACME"


async def test_report_counts_units_the_handler_produced_after_it_answered(
    engine: ScriptedEngine, make_client: Callable[..., httpx.AsyncClient]
) -> None:
    reports: list[tuple[str, int, str, int]] = []

    async def generate(request: Request) -> JSONResponse:
        request.state.tokens = 1234  # what a model call would have cost
        return JSONResponse({"text": "..."}, headers={"x-model": "large"})

    async def report(request: Request, outcome: Outcome) -> None:
        # Runs after the handler: the tokens are known now, and consumed on their meter.
        tokens = request.state.tokens
        reports.append((outcome.customer, outcome.status, outcome.headers["x-model"], tokens))
        await engine.consume(outcome.customer, "llm_tokens", Decimal(tokens))

    app = Starlette(
        routes=[Route("/generate", generate, methods=["POST"])],
        middleware=[
            Middleware(
                MeteringMiddleware,
                engine=engine,
                customer=lambda r: r.headers["x-customer"],
                report=report,
            )
        ],
    )
    engine.fields = _limited(True, "within_allowance", remaining=Decimal(7))
    async with make_client(app) as http:
        response = await http.post("/generate", headers=ACME)
    assert response.status_code == 200
    assert response.headers["ratelimit"].startswith('"api_calls";r=7')
    assert reports == [("acme", 200, "large", 1234)]
    assert engine.calls == [
        ("acme", "api_calls", Decimal(1)),
        ("acme", "llm_tokens", Decimal(1234)),
    ]


async def test_a_failing_report_does_not_break_the_response_it_follows(
    engine: ScriptedEngine,
    make_client: Callable[..., httpx.AsyncClient],
    caplog: pytest.LogCaptureFixture,
) -> None:
    def report(request: Request, outcome: Outcome) -> None:
        raise RuntimeError("tokenizer crashed")

    async with make_client(_app(engine, report=report)) as http:
        response = await http.get("/hello", headers=ACME)
    assert response.status_code == 200
    assert "report callback failed" in caplog.text


async def test_a_refused_call_is_not_reported(
    engine: ScriptedEngine, make_client: Callable[..., httpx.AsyncClient]
) -> None:
    reported: list[Outcome] = []
    engine.fields = _limited(False, "limit_reached")
    async with make_client(_app(engine, report=lambda r, o: reported.append(o))) as http:
        assert (await http.get("/hello", headers=ACME)).status_code == 429
    assert reported == []


async def test_the_upgrade_url_names_the_customer(
    engine: ScriptedEngine, make_client: Callable[..., httpx.AsyncClient]
) -> None:
    app = _app(engine, upgrade_url="https://example.com/billing/{customer}/upgrade")
    engine.fields = _limited(False, "limit_reached")
    async with make_client(app) as http:
        body = (await http.get("/hello", headers={"x-customer": "a b/c"})).json()
    assert body["upgrade_url"] == "https://example.com/billing/a%20b%2Fc/upgrade"


def test_bad_settings_are_refused_when_the_middleware_is_built() -> None:
    with pytest.raises(ValueError, match="anonymous"):
        MeteringMiddleware(
            Starlette(), engine=ScriptedEngine(), customer=lambda r: "x", anonymous="deny"
        )  # type: ignore[arg-type]


def test_the_client_alone_does_not_import_starlette() -> None:
    # The SDK ships on its own: only MeteringMiddleware needs Starlette, on first use.
    code = (
        "import sys, fairmeter.sdk as sdk; assert 'starlette' not in sys.modules; "
        "sdk.MeteringMiddleware; assert 'starlette' in sys.modules"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_the_fields_fast_path_answers_what_the_general_path_answers() -> None:
    """RateLimitFields formats an allowed decision with the last decision's limit and reset
    (the same objects) in one step: the same bytes as the general path, for every second
    and remaining; another limit, a refusal or a missing remaining take the general path."""
    from datetime import UTC, datetime
    from decimal import Decimal

    from fairmeter.sdk import Decision
    from fairmeter.sdk._refusals import RateLimitFields

    resets = datetime(2026, 12, 1, tzinfo=UTC)
    limit = Decimal(1000)
    fast, general = RateLimitFields("api_calls"), RateLimitFields("api_calls")

    def decision(remaining: Decimal | None, allowed: bool = True, cap: Decimal = limit) -> Decision:
        return Decision(allowed, "within_allowance" if allowed else "limit_reached", "acme",
                        "api_calls", "block", Decimal(1), cap, remaining, resets_at=resets,
                        retry_after=None if allowed else resets)  # fmt: skip

    fast(decision(Decimal(999)), 0.0)  # remembers the limit and the reset
    base = resets.timestamp()
    cases = [
        (decision(Decimal("998.5")), base - 3600.2),
        (decision(Decimal(0)), base - 0.5),
        (decision(Decimal(10) ** 16), base - 10),  # above a Structured Field Integer
        (decision(Decimal(5)), base + 2),  # past the reset
        (decision(None), base - 10),
        (decision(Decimal(7), allowed=False), base - 10),
        (decision(Decimal(7), cap=Decimal(1000)), base - 10),  # equal, not the same object
        (decision(Decimal("1E+3")), base - 10),  # whole, printed with an exponent
        (decision(Decimal("12.000")), base - 10),
        (decision(Decimal(-1)), base - 10),
        (decision(Decimal(10**15 - 1)), base - 10),  # the largest Integer: fifteen digits
        (decision(Decimal(10**15)), base - 10),
        (decision(Decimal(41)), base - 10.5),  # the same second again: its ";t=" is kept
        (decision(Decimal(40)), base - 9.5),
    ]
    for case, now in cases:
        assert fast(case, now) == general._fields(case, now), case


class _Mapping(MutableMapping[str, Any]):
    """A scope or message that is a mapping but not a dict (ASGI says dict; some test
    harnesses differ): the middleware takes its general path for it."""

    def __init__(self, **items: Any) -> None:
        self._items = dict(items)

    def __getitem__(self, key: str) -> Any:
        return self._items[key]

    def __setitem__(self, key: str, value: Any) -> None:
        self._items[key] = value

    def __delitem__(self, key: str) -> None:
        del self._items[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._items)

    def __len__(self) -> int:
        return len(self._items)


class _SyncEngine:
    """An in-process engine (`consume_now`): the middleware's plain path."""

    def __init__(self) -> None:
        self.fields = _limited(True, "within_allowance", remaining=Decimal(12))

    async def consume(self, customer: str, meter: str, quantity: Decimal) -> Decision:
        return self.consume_now(customer, meter, quantity)

    def consume_now(self, customer: str, meter: str, quantity: Decimal) -> Decision:
        return Decision(customer=customer, meter=meter, **self.fields)


@pytest.mark.parametrize("scope_type", [dict, _Mapping])
@pytest.mark.parametrize("message_type", [dict, _Mapping])
@pytest.mark.parametrize("headers_type", [list, tuple])
async def test_any_scope_message_and_headers_get_the_ratelimit_fields(
    scope_type: Callable[..., Any], message_type: Callable[..., Any], headers_type: type
) -> None:
    """ASGI makes scopes and messages dicts and headers any iterable: the plain path reads a
    dict directly and joins a list in one step; anything else takes the general path, with
    the same answer (the app's own headers first, then the two fields)."""
    sent: list[Any] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        assert scope["state"]["fairmeter"].remaining == Decimal(12)
        headers = headers_type([(b"content-type", b"text/plain")])
        await send(message_type(type="http.response.start", status=200, headers=headers))
        await send(message_type(type="http.response.body", body=b"ok"))

    async def send(message: Any) -> None:
        sent.append(message)

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b""}

    middleware = MeteringMiddleware(app, engine=_SyncEngine(), customer=lambda request: "acme",
                                    meter="api_calls", clock=NOW.timestamp)  # fmt: skip
    scope = scope_type(type="http", method="GET", path="/", headers=[], query_string=b"")
    await middleware(scope, receive, send)
    assert list(sent[0]["headers"]) == [
        (b"content-type", b"text/plain"),
        (b"ratelimit-policy", b'"api_calls";q=1000'),
        (b"ratelimit", b'"api_calls";r=12;t=%d' % TO_RESET),
    ]
    assert sent[1]["body"] == b"ok"


async def test_the_customer_function_gets_a_request_like_starlettes() -> None:
    """The middleware makes the customer function's Request without running `__init__`
    (compiled, no Python frame): it holds what Starlette's own holds, and reads alike."""
    from starlette.requests import Request

    from fairmeter.sdk import middleware

    body = b'{"customer": "acme"}'
    scope = {"type": "http", "method": "POST", "path": "/hello", "query_string": b"a=1",
             "headers": [(b"x-customer", b"acme")], "state": {}}  # fmt: skip

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": body, "more_body": False}

    made, real = middleware._request(scope, receive), Request(scope, receive)
    assert isinstance(made, Request)
    for name in vars(real):
        assert getattr(made, name) == getattr(real, name), name
    assert made.headers["x-customer"] == "acme"
    assert made.query_params["a"] == "1"
    assert made.url.path == "/hello"
    assert await made.json() == {"customer": "acme"}


async def test_a_server_that_takes_it_for_asgi2_is_served_alike() -> None:
    """`__call__` hands back an awaitable and is not a coroutine function, so a server
    given the middleware directly may take it for ASGI 2 (uvicorn does, hypercorn too):
    `app(scope)` then `(receive, send)` answers as `app(scope, receive, send)` does."""
    from uvicorn.config import Config
    from uvicorn.middleware.asgi2 import ASGI2Middleware

    engine = _SyncEngine()
    app = Starlette(routes=[Route("/hello", _hello)])
    middleware = MeteringMiddleware(app, engine=engine, customer=lambda request: "acme",
                                    meter="api_calls", clock=NOW.timestamp)  # fmt: skip
    config = Config(middleware)
    config.load()
    assert config.interface == "asgi2"
    for served in (middleware, ASGI2Middleware(middleware)):
        transport = httpx.ASGITransport(app=served)
        async with httpx.AsyncClient(transport=transport, base_url="http://api") as http:
            response = await http.get("/hello")
        assert response.status_code == 200
        assert response.json() == {"hello": "world", "reason": "within_allowance"}
        assert response.headers["ratelimit"] == f'"api_calls";r=12;t={TO_RESET}'
