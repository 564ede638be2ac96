"""Alerts as usage is recorded: ingest notes what changed, a thread of our own evaluates.

The usage listener runs in ingest's commit thread, before the acknowledgement: it only
notes which (customer, meter) pairs got usage, O(items), no I/O. The evaluator thread
wakes, takes every pair noted so far (a burst of a thousand requests for one customer is
one evaluation), evaluates them, and rests: at least `pace`, and until the rest of the
process has used `1/share - 1` times the CPU the pass took (so evaluation is at most
`share` of the process's CPU however fast usage arrives), but never more than
`longest_rest`. A crossing is queued within one rest plus one pass of its commit.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Sequence

from fairmeter.services.alert_contexts import ContextCache
from fairmeter.services.alert_evaluation import Told, evaluate
from fairmeter.services.hooks import Recorded
from fairmeter.services.runtime import Runtime

log = logging.getLogger("fairmeter.alerts")


class AlertEvaluator:
    def __init__(
        self, rt: Runtime, pace: float = 0.05, share: float = 0.1, longest_rest: float = 0.2
    ):
        self.rt = rt
        self.pace = pace
        self.share = share
        self.longest_rest = longest_rest  # the latency promise: queued within a second
        self.told = Told()
        self.contexts = ContextCache()
        self._pending: dict[str, set[str]] = {}
        self._busy = False
        self._closed = False
        self._cond = threading.Condition()
        self._thread: threading.Thread | None = None

    def listener(self, items: Sequence[Recorded]) -> None:
        """For `rt.hooks.on_usage`: note the pairs and wake the thread."""
        with self._cond:
            if self._closed:
                return
            for item in items:
                meters = self._pending.get(item.subject)
                if meters is None:
                    meters = self._pending[item.subject] = set()
                meters.add(item.meter.key)
            self._start()
            self._cond.notify_all()

    def drain(self, timeout: float = 30) -> None:
        """Wait until everything noted so far has been evaluated (tests, shutdown)."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while self._pending or self._busy:
                left = deadline - time.monotonic()
                if left <= 0 or self._thread is None:
                    raise TimeoutError("alert evaluation did not finish in time")
                self._cond.wait(left)

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()
            thread = self._thread
        if thread is not None:
            thread.join(timeout=30)

    def _start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="fm-alerts", daemon=True)
            self._thread.start()

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._pending and not self._closed:
                    self._cond.wait()
                if not self._pending:
                    return
                touched, self._pending = self._pending, {}
                self._busy = True
            spent = time.thread_time()
            try:
                evaluate(self.rt, touched, self.told, self.contexts)
                self._rest(time.thread_time() - spent)
            except Exception:  # e.g. the database away for a moment: try again in a second
                log.exception("alert evaluation failed for %d customer(s)", len(touched))
                self._requeue(touched)
                self._rest(0, at_least=1.0)

    def forget(self) -> None:
        """Rules, budgets or limits changed: read them again on the next pass."""
        self.contexts.forget()

    def _requeue(self, touched: dict[str, set[str]]) -> None:
        with self._cond:
            for customer, meters in touched.items():
                self._pending.setdefault(customer, set()).update(meters)

    def _rest(self, cpu: float, at_least: float | None = None) -> None:
        """Rest after a pass that took `cpu` seconds of CPU (new usage does not cut it
        short; closing does).

        Past the shortest rest it waits for the CPU the rest of the process still owes
        (the soonest it can be paid: the process earns at most a core's worth per second on
        the common, one-interpreter, path), then, if the process is that idle, until the
        longest rest. No small polls: on a VM a timed wake-up costs tens of µs of CPU, and
        takes the GIL from the threads serving requests."""
        started = time.monotonic()
        shortest = self.pace if at_least is None else at_least
        longest = max(self.longest_rest, shortest)
        others = time.process_time() + cpu * (1 / self.share - 1)
        with self._cond:
            self._busy = False
            self._cond.notify_all()
            checked = False
            while not self._closed:
                waited = time.monotonic() - started
                if waited >= longest:
                    return
                if waited < shortest:
                    self._cond.wait(shortest - waited)
                    continue
                owed = others - time.process_time()
                if owed <= 0:
                    return
                self._cond.wait(longest - waited if checked else min(longest - waited, owed))
                checked = True
