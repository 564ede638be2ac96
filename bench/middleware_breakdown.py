"""Where the middleware's cost goes: the server's main-thread CPU per request, one thing
added at a time (docs/performance.md, "A pinned server"). Prints figures, asserts nothing.

    .venv/bin/python bench/middleware_breakdown.py                 # 3 rounds of 5 s
    .venv/bin/python bench/middleware_breakdown.py --rounds 5 --seconds 8

Modes, each a fresh uvicorn server on a trivial Starlette endpoint (the one of
`bench/enforcement.py` part e), measured in interleaved rounds:

- off: no middleware;
- fields: a pass-through middleware that wraps `send` and adds the two RateLimit fields
  (fixed bytes): the floor of any middleware that sets them;
- fixed: `MeteringMiddleware` with an engine that answers one fixed decision;
- no-writer: the real in-process engine, its batch writer stopped (nothing written);
- shipped: the real in-process engine, as shipped (sum meter `calls`);
- count: the same on the count meter `hits` (one event per request, written in runs).

With two CPUs or more the server is pinned to one and the load generator to the others.
The main thread's CPU comes from /proc/<pid>/task/<pid>/stat, the other threads' apart.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import free_port
from enforcement_parts import _wait_for, hammer, set_up

MODES = ("off", "fields", "fixed", "no-writer", "shipped", "count")
APP = textwrap.dedent(
    """
    import sys, uvicorn
    from decimal import Decimal
    from starlette.applications import Starlette
    from starlette.responses import PlainTextResponse
    from starlette.routing import Route

    async def hello(request):
        return PlainTextResponse("ok")

    app = Starlette(routes=[Route("/", hello)])
    mode, url = sys.argv[2], sys.argv[3]
    if mode == "fields":
        FIELDS = [(b"ratelimit-policy", b'"calls";q=1000000000000'),
                  (b"ratelimit", b'"calls";r=999999999999;t=100000')]

        class Fields:
            def __init__(self, app):
                self.app = app

            async def __call__(self, scope, receive, send):
                def with_fields(message):
                    if message["type"] == "http.response.start":
                        message["headers"] = [*message.get("headers", ()), *FIELDS]
                    return send(message)
                await self.app(scope, receive, with_fields)

        app.add_middleware(Fields)
    elif mode != "off":
        from fairmeter.embedded import EmbeddedEngine
        from fairmeter.sdk import MeteringMiddleware
        engine = EmbeddedEngine(database_url=url)
        if mode == "fixed":
            decision = engine.consume_now("acme", "calls", Decimal(1))

            class Fixed:
                def consume_now(self, customer, meter, quantity):
                    return decision

            engine = Fixed()
        elif mode == "no-writer":
            engine.runtime.limits.writer._write_batches = lambda: None
        app.add_middleware(MeteringMiddleware, engine=engine, customer=lambda request: "acme",
                           meter="hits" if mode == "count" else "calls")
    uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]), log_level="warning")
    """
)


def thread_cpu(pid: int) -> dict[int, float]:
    """CPU seconds per thread of a process (Linux /proc)."""
    tick = os.sysconf("SC_CLK_TCK")
    found: dict[int, float] = {}
    for tid in os.listdir(f"/proc/{pid}/task"):
        stat = Path(f"/proc/{pid}/task/{tid}/stat").read_text()
        fields = stat.rsplit(")", 1)[1].split()
        found[int(tid)] = (int(fields[11]) + int(fields[12])) / tick
    return found


def measure(mode: str, url: str, seconds: float, server_cpus: set[int] | None) -> dict[str, float]:
    port = free_port()
    pin = (lambda: os.sched_setaffinity(0, server_cpus)) if server_cpus else None
    app = subprocess.Popen([sys.executable, "-c", APP, str(port), mode, url], preexec_fn=pin)
    request = b"GET / HTTP/1.1\r\nHost: bench\r\n\r\n"
    try:
        _wait_for(port)
        hammer(port, request, max(0.5, seconds / 4))
        before = thread_cpu(app.pid)
        result = hammer(port, request, seconds, pid=app.pid)
        after = thread_cpu(app.pid)
    finally:
        app.terminate()
        app.wait(15)
    served = result["req_per_s"] * seconds
    main = (after[app.pid] - before.get(app.pid, 0.0)) / served * 1e6
    others = sum(after[t] - before.get(t, 0.0) for t in after if t != app.pid) / served * 1e6
    return {"req_per_s": result["req_per_s"], "main_us": main, "other_threads_us": others}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=5.0)
    args = parser.parse_args()
    cpus = sorted(os.sched_getaffinity(0))
    server_cpus = {cpus[-1]} if len(cpus) >= 2 else None
    if server_cpus:
        os.sched_setaffinity(0, set(cpus[:-1]))
    with tempfile.TemporaryDirectory(prefix="fm_breakdown_") as tmp:
        url = f"sqlite:///{tmp}/fairmeter.db"
        rt, _admin = set_up(url)
        rt.close()
        runs: dict[str, list[dict[str, float]]] = {mode: [] for mode in MODES}
        for number in range(1, args.rounds + 1):
            print(f"round {number} of {args.rounds}", flush=True)
            for mode in MODES:
                runs[mode].append(measure(mode, url, args.seconds, server_cpus))
    print(f"{'mode':<10} {'req/s':>9} {'main µs/req':>12} {'added':>7} {'other threads':>14}")
    previous = None
    shipped = 0.0
    for mode in MODES:
        main_us = statistics.mean(r["main_us"] for r in runs[mode])
        rate = statistics.mean(r["req_per_s"] for r in runs[mode])
        others = statistics.mean(r["other_threads_us"] for r in runs[mode])
        added = "" if previous is None else f"{main_us - previous:+.1f}"
        if mode == "count":  # beside `shipped`, not after it
            added = f"{main_us - shipped:+.1f} vs shipped"
        if mode == "shipped":
            shipped = main_us
        print(f"{mode:<10} {rate:>9,.0f} {main_us:>12.1f} {added:>7} {others:>14.2f}")
        previous = main_us


if __name__ == "__main__":
    main()
