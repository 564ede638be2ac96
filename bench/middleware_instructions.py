"""The middleware's cost in instructions per request: a figure that does not drift with the
machine's load, unlike requests/s (docs/performance.md, "Instructions per request").
Prints figures, asserts nothing.

    .venv/bin/python bench/middleware_instructions.py            # valgrind on PATH
    .venv/bin/python bench/middleware_instructions.py --timing   # ns/request instead

Each mode serves the trivial Starlette endpoint of `bench/enforcement.py` part e through
uvicorn's own HTTP protocol (httptools, as a uvicorn worker runs it) in this process, on a
stand-in transport: no sockets, no load generator, only the server's work per request.
Under callgrind, a run of 2,000 requests is subtracted from a run of 12,000 (start-up and
imports cancel out), with the hash seed fixed: the figure repeats to within about 1,000.

- off: no middleware;
- layer: a pass-through middleware (one more ASGI layer);
- wrap: a pass-through middleware that wraps `send` and copies the response's headers;
- fields: the same, adding the two RateLimit fields (fixed bytes): the floor of any
  middleware that sets them;
- fixed: `MeteringMiddleware`, engine answering one fixed decision;
- engine: `MeteringMiddleware` with the real in-process engine (sum meter `calls`), its
  writer and alert threads stopped: the request thread's own work.

FM_LOG=info in the environment keeps uvicorn's access log on in the child (its lines go to
the child's stdout, which is discarded; timing only needs the last line).

"kept" is off / mode: the requests/s a one-core server keeps if time follows instructions
(it roughly does: compare part e of `bench/enforcement.py`).
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

MODES = ("off", "layer", "wrap", "fields", "fixed", "engine")
SMALL, LARGE = 2_000, 12_000


def serve(mode: str, url: str, requests: int, timing: bool) -> None:
    """The child: build the app for `mode`, warm it up, then serve `requests` requests."""
    import asyncio
    import time
    from decimal import Decimal

    import uvloop
    from starlette.applications import Starlette
    from starlette.responses import PlainTextResponse
    from starlette.routing import Route
    from uvicorn.config import Config
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
    from uvicorn.server import ServerState

    async def hello(request: object) -> PlainTextResponse:
        return PlainTextResponse("ok")

    app = Starlette(routes=[Route("/", hello)])
    if mode in ("layer", "wrap", "fields"):
        fixed_fields = [(b"ratelimit-policy", b'"calls";q=1000000000000'),
                        (b"ratelimit", b'"calls";r=999999999999;t=100000')]  # fmt: skip
        added = fixed_fields if mode == "fields" else []

        class Layer:
            def __init__(self, app: object) -> None:
                self.app = app

            async def __call__(self, scope: dict, receive: object, send: object) -> None:
                await self.app(scope, receive, send)  # type: ignore[operator]

        class Fields:
            def __init__(self, app: object) -> None:
                self.app = app

            async def __call__(self, scope: dict, receive: object, send: object) -> None:
                def with_fields(message: dict) -> object:
                    if message["type"] == "http.response.start":
                        message["headers"] = [*message.get("headers", ()), *added]
                    return send(message)  # type: ignore[operator]

                await self.app(scope, receive, with_fields)  # type: ignore[operator]

        app.add_middleware(Layer if mode == "layer" else Fields)
    elif mode != "off":
        from fairmeter.embedded import EmbeddedEngine
        from fairmeter.sdk import MeteringMiddleware

        engine: object = EmbeddedEngine(database_url=url)
        real = engine
        assert isinstance(real, EmbeddedEngine)
        # The middleware passes this same object (`Decimal(unit) is unit`): the lane this
        # call opens takes it by identity, as it does live, where the middleware's first
        # call opens the lane.
        unit = Decimal(1)
        decision = real.consume_now("acme", "calls", unit)
        if mode == "fixed":
            real.close()

            class Fixed:
                def consume_now(self, customer: str, meter: str, quantity: Decimal) -> object:
                    return decision

            engine = Fixed()
        else:  # the request thread alone: no batch written, no alert pass
            assert real.runtime.limits is not None and real.runtime.alerts is not None
            # No re-reads driven by the wall clock either (the counter's, every second,
            # deferred by 50 ms while usage is unwritten; the terms' version check): under
            # callgrind requests run ~50 times slower, and those would be counted ~50 times
            # too often (live, they are a few per second, whatever the rate).
            limits = real.runtime.limits
            limits.terms.refresh_us = 10**15
            local = limits.counters
            local._refresh_after = None  # type: ignore[attr-defined]
            for counter in local._counters.values():  # type: ignore[attr-defined]
                counter.next_refresh = float("inf")
            writer = real.runtime.limits.writer
            writer._write_batches = lambda: None  # type: ignore[method-assign]
            real.runtime.alerts.close()
            writer._stop.set()
            if writer._thread is not None:
                writer._thread.join()
        app.add_middleware(MeteringMiddleware, engine=engine, quantity=unit,
                           customer=lambda request: "acme", meter="calls")  # fmt: skip

    class Transport:
        written = 0

        def write(self, data: bytes) -> None:
            self.written += 1

        def get_extra_info(self, name: str, default: object = None) -> object:
            return {"sockname": ("127.0.0.1", 8000), "peername": ("127.0.0.1", 50000)}.get(
                name, default
            )

        def is_closing(self) -> bool:
            return False

        def close(self) -> None:
            pass

    request = b"GET / HTTP/1.1\r\nHost: bench\r\n\r\n"

    async def main() -> None:
        level = os.environ.get("FM_LOG", "warning")
        config = Config(app, http="httptools", loop="uvloop", log_level=level, lifespan="off")
        config.load()
        protocol = HttpToolsProtocol(config=config, server_state=ServerState(), app_state={})
        transport = Transport()
        protocol.connection_made(transport)  # type: ignore[arg-type]

        async def run(count: int) -> None:
            for _ in range(count):
                want = transport.written + 2  # the head, then the body
                protocol.data_received(request)
                while transport.written < want:
                    await asyncio.sleep(0)

        await run(2_000)  # warm: terms, counter and lane opened, caches filled
        started = time.perf_counter()
        await run(requests)
        if timing:
            print(f"{(time.perf_counter() - started) / requests * 1e9:.0f}")
        protocol.connection_lost(None)

    uvloop.run(main())
    sys.stdout.flush()
    os._exit(0)  # no teardown in the count


def child(mode: str, url: str, requests: int, valgrind: bool) -> float:
    command = [sys.executable, __file__, "--child", mode, url, str(requests)]
    env = {**os.environ, "PYTHONHASHSEED": "0"}
    if not valgrind:
        out = subprocess.run([*command, "--timing"], env=env, capture_output=True, text=True,
                             check=True)  # fmt: skip
        return float(out.stdout.split()[-1])
    out = subprocess.run(
        ["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null", *command],
        env=env, capture_output=True, text=True, check=True,
    )  # fmt: skip
    found = re.search(r"Collected : (\d+)", out.stderr)
    if found is None:
        raise RuntimeError(out.stderr[-2000:])
    return float(found.group(1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--timing", action="store_true", help="ns/request, not instructions")
    parser.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        mode, url, requests = args.child
        serve(mode, url, int(requests), args.timing)
        return
    valgrind = not args.timing and shutil.which("valgrind") is not None
    if not args.timing and not valgrind:
        print("valgrind is not on PATH: timing instead (ns/request, which drifts with load)")
    import fairmeter.embedded
    import fairmeter.sdk.middleware  # noqa: F401 - imported to see whether it is compiled
    from enforcement_parts import set_up
    from fairmeter import _compiled

    running = _compiled.compiled()
    print(f"request path compiled (mypyc, ADR 12): {sum(running.values())} of {len(running)}")

    with tempfile.TemporaryDirectory(prefix="fm_instructions_") as tmp:
        url = f"sqlite:///{tmp}/fairmeter.db"
        rt, _admin = set_up(url)
        rt.close()
        figures: dict[str, float] = {}
        for mode in MODES:
            if valgrind:
                small = child(mode, url, SMALL, True)
                figures[mode] = (child(mode, url, LARGE, True) - small) / (LARGE - SMALL)
            else:
                figures[mode] = min(child(mode, url, LARGE, False) for _ in range(3))
    unit = "instructions" if valgrind else "ns"
    print(f"{'mode':<8} {unit + '/request':>20} {'added':>9} {'kept':>7}")
    previous = None
    for mode in MODES:
        value = figures[mode]
        added = "" if previous is None else f"{value - previous:+,.0f}"
        kept = 100 * figures["off"] / value
        print(f"{mode:<8} {value:>20,.0f} {added:>9} {kept:>6.1f}%")
        previous = value


if __name__ == "__main__":
    main()
