"""`fairmeter worker`: deliver the notification outbox (webhooks and email)."""

from __future__ import annotations

import contextlib
import signal
from types import FrameType

import typer

from fairmeter.cli.console import echo, fail, mask_url, note, session
from fairmeter.config import Settings
from fairmeter.services.delivery import DeliveryWorker
from fairmeter.services.runtime import Runtime

EPILOG = (
    "Examples:\n\n  fairmeter worker\n\n"
    "  FAIRMETER_SMTP_URL='smtp://user:pass@mail.example.com:587?starttls=true"
    "&from=billing@example.com' fairmeter worker\n\n"
    "  fairmeter worker --once   (deliver what is due now, then exit)"
)


def worker(
    once: bool = typer.Option(False, "--once", help="Deliver what is due now, then exit."),
) -> None:
    """Deliver queued notifications: signed webhooks and email, retried with backoff.

    Run as many as you like against one database: each delivery is claimed by one worker."""
    settings = Settings.from_env()
    with session(settings) as rt:
        found = start_worker(rt, background=False)
        try:
            note(describe(rt, settings))
            if once:
                report = found.run_once()
                echo(
                    f"Delivered {report.delivered}, retrying {report.retrying}, "
                    f"failed {report.failed}."
                )
                return
            _stop_on_sigterm(found)
            note("Delivering; Ctrl+C stops.")
            with contextlib.suppress(KeyboardInterrupt):
                found.run()
        finally:
            found.stop()


def start_worker(rt: Runtime, background: bool) -> DeliveryWorker:
    """A worker for this runtime (running in a thread if `background`); a bad
    FAIRMETER_SMTP_URL ends the command with its reason."""
    try:
        found = DeliveryWorker(rt)
    except ValueError as exc:
        raise fail(str(exc)) from None
    return found.start() if background else found


def describe(rt: Runtime, settings: Settings) -> str:
    email = (
        f"email via {mask_url(settings.smtp_url)}"
        if settings.smtp_url
        else "no email (FAIRMETER_SMTP_URL is not set)"
    )
    return f"Outbox of {mask_url(settings.database_url)}: webhooks and {email}."


def _stop_on_sigterm(found: DeliveryWorker) -> None:
    def handler(_signum: int, _frame: FrameType | None) -> None:
        found.request_stop()

    signal.signal(signal.SIGTERM, handler)
