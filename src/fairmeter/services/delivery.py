"""The delivery worker: sends what the outbox holds, records every attempt, retries.

Claiming is a lease: a worker marks due deliveries `delivering` with a token and an expiry
in one transaction (PostgreSQL skips rows another worker holds locked; SQLite serializes
writers), sends outside any transaction, then stores the result only if its token still
holds. So several workers never send the same delivery at once, and a worker that dies
mid-send leaves the row to be claimed again when its lease runs out."""

from __future__ import annotations

import logging
import random
import secrets
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import httpx
from sqlalchemy.engine import RowMapping

from fairmeter.domain.notifications import retry_delay_us
from fairmeter.domain.windows import to_us
from fairmeter.services import webhooks
from fairmeter.services.email import Smtp, compose, send_email
from fairmeter.services.notices import sweep_past_due
from fairmeter.services.runtime import Runtime
from fairmeter.services.webhooks import Outcome
from fairmeter.storage import notifications as store

log = logging.getLogger("fairmeter.delivery")


@dataclass
class Report:
    delivered: int = 0
    retrying: int = 0
    failed: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    @property
    def handled(self) -> int:
        return self.delivered + self.retrying + self.failed

    def count(self, status: str) -> None:
        with self._lock:
            self.delivered += status == store.DELIVERED
            self.retrying += status == store.PENDING
            self.failed += status == store.FAILED


@dataclass(frozen=True)
class Claimed:
    """A leased delivery with what it needs, read in the claiming transaction."""

    row: RowMapping
    notification: RowMapping | None
    endpoint: RowMapping | None


@dataclass
class DeliveryWorker:
    rt: Runtime
    http: httpx.Client = field(default_factory=webhooks.http_client)
    batch: int = 20
    # Sends in flight at once: one slow receiver must not hold up everybody else's.
    concurrency: int = 8
    # Longer than a batch of sends that all time out (20 / 8 x 10 s).
    lease: timedelta = timedelta(minutes=5)
    jitter: Callable[[], float] = random.random
    token: str = field(default_factory=lambda: secrets.token_hex(8))

    def __post_init__(self) -> None:
        url = self.rt.channels.smtp_url
        self.smtp = Smtp.parse(url) if url else None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._senders = ThreadPoolExecutor(self.concurrency, thread_name_prefix="fairmeter-send")

    @property
    def channels(self) -> tuple[str, ...]:
        # Without SMTP, email deliveries stay queued for a worker that has it.
        return ("webhook", "email") if self.smtp else ("webhook",)

    def run_once(self, now: datetime | None = None) -> Report:
        """Deliver every delivery due at `now` (the clock's now by default), batch by batch;
        then note invoices that fell past due."""
        now_us = to_us(now or self.rt.clock.now())
        report = Report()
        while True:
            claimed = self._claim(now_us)
            # list(): wait for the whole batch, and raise what a send raised.
            list(self._senders.map(lambda one: self._deliver(one, now_us, report), claimed))
            if len(claimed) < self.batch:
                break
        sweep_past_due(self.rt, now_us)
        return report

    def deliver_due(self) -> Report:
        return self.run_once()

    # --- running in the background ------------------------------------------------------------
    def start(self) -> DeliveryWorker:
        self._thread = threading.Thread(target=self.run, name="fairmeter-delivery", daemon=True)
        self._thread.start()
        return self

    def run(self) -> None:
        while not self._stop.is_set():
            try:
                report = self.run_once()
            except Exception:
                log.exception("delivery round failed; trying again")
                report = Report()
            if report.handled == 0:
                self._stop.wait(self.rt.channels.poll_seconds)

    def __enter__(self) -> DeliveryWorker:
        return self

    def __exit__(self, *_: object) -> None:
        self.stop()

    def request_stop(self) -> None:
        """Finish the delivery in hand, then return from `run` (safe from a signal handler)."""
        self._stop.set()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)
        self._senders.shutdown()
        self.http.close()

    # --- one delivery ---------------------------------------------------------------------------
    def _claim(self, now_us: int) -> list[Claimed]:
        lease_us = int(self.lease.total_seconds() * 1_000_000)
        with self.rt.db.write() as conn:
            rows = store.claim_due(conn, now_us, lease_us, self.token, self.channels, self.batch)
            notes = store.notifications_by_id(conn, {r["notification_id"] for r in rows})
            ends = store.endpoints_by_id(conn, {r["endpoint_id"] for r in rows if r["endpoint_id"]})
        return [
            Claimed(r, notes.get(r["notification_id"]), ends.get(r["endpoint_id"])) for r in rows
        ]

    def _deliver(self, claimed: Claimed, now_us: int, report: Report) -> None:
        row, notification, endpoint = claimed.row, claimed.notification, claimed.endpoint
        unreachable = endpoint is None or endpoint["disabled_us"] is not None
        if notification is None:
            outcome = Outcome(None, "the notification no longer exists", 0)
        elif row["channel"] == "email":
            outcome = self._email(notification, row)
        elif endpoint is None or unreachable:
            outcome = Outcome(None, "the endpoint is disabled or deleted", 0)
        else:
            body = webhooks.payload(notification)
            outcome = webhooks.send(
                self.http, endpoint, row["id"], body, now_us // 1_000_000, self.rt.channels.targets
            )
        final = notification is None or (row["channel"] == "webhook" and unreachable)
        self._settle(row, outcome, now_us, report, give_up=final)

    def _email(self, notification: RowMapping, row: RowMapping) -> Outcome:
        assert self.smtp is not None  # email is claimed only with SMTP configured
        try:
            message = compose(self.rt, notification, row["recipient"])
        except Exception as exc:  # a template or lookup bug must not stall the queue
            log.exception("could not render notification %s", notification["id"])
            return Outcome(None, f"rendering failed: {exc}"[:500], 0)
        return send_email(self.smtp, message, row["id"])

    def _settle(
        self, row: RowMapping, outcome: Outcome, now_us: int, report: Report, give_up: bool
    ) -> None:
        gone = row["channel"] == "webhook" and outcome.status_code == 410
        result = self._result(row, outcome, now_us, give_up or gone)
        attempt = {
            "at_us": now_us,
            "status_code": outcome.status_code,
            "error": outcome.error,
            "duration_ms": outcome.duration_ms,
        }
        with self.rt.db.write() as conn:
            if not store.record_attempt(conn, row["id"], self.token, attempt, result):
                log.warning("lost the lease on delivery %s; its result is dropped", row["id"])
                return
            if gone:
                # 410 Gone: the receiver asks never to be called again (Standard Webhooks).
                reason = "the endpoint answered 410 Gone"
                disabled = {"disabled_us": now_us, "disabled_reason": reason, "updated_us": now_us}
                store.update_endpoint(conn, row["endpoint_id"], disabled)
                store.fail_pending(conn, row["endpoint_id"], reason, now_us)
        report.count(result["status"])

    def _result(
        self, row: RowMapping, outcome: Outcome, now_us: int, give_up: bool
    ) -> dict[str, Any]:
        """The delivery's state after this attempt: delivered, due again later, or failed
        (the schedule is over, or retrying is pointless)."""
        result: dict[str, Any] = {
            "last_status_code": outcome.status_code,
            "last_error": outcome.error,
            "updated_us": now_us,
        }
        if outcome.ok:
            return {**result, "status": store.DELIVERED, "delivered_us": now_us}
        delay = None if give_up else retry_delay_us(row["attempts"] + 1, self.jitter())
        if delay is None:
            return {**result, "status": store.FAILED}
        return {**result, "status": store.PENDING, "next_attempt_us": now_us + delay}
