"""`fairmeter demo`: a database with months of realistic usage and invoices, a key, and a
running server."""

from __future__ import annotations

import itertools
import time
from collections.abc import Iterator
from contextlib import suppress
from dataclasses import dataclass
from datetime import datetime, timedelta

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from fairmeter.api import codec
from fairmeter.cli import demo_billing, demo_data, server
from fairmeter.cli.console import echo, err, mask_url, note, session
from fairmeter.config import Settings
from fairmeter.domain.customers import parse_customer
from fairmeter.domain.errors import AlreadyExists, NotFound
from fairmeter.domain.keys import Scope
from fairmeter.domain.meters import parse_meter
from fairmeter.domain.windows import to_us
from fairmeter.services import catalog
from fairmeter.services.ingest import record_events
from fairmeter.services.keys import create_key
from fairmeter.services.runtime import Runtime

BATCH = 1000
# Created last, so its presence means a load finished; an interrupted load is redone
# (deterministic ids make the redo add only what is missing).
MARKER = "acme"

EPILOG = (
    "Examples:\n\n"
    "  fairmeter demo\n\n"
    "  FAIRMETER_DATABASE_URL=sqlite:///./try.db fairmeter demo --port 8080\n\n"
    "  fairmeter demo --no-serve\n\n"
    "The data (5 customers, 5 meters, about 530,000 events over almost four months, "
    "plans, subscriptions and three months of invoices) is loaded once per database; "
    "later runs only make a new admin key and serve."
)


@dataclass
class Loaded:
    accepted: int = 0
    duplicates: int = 0
    rejected: int = 0


def demo(
    port: int | None = typer.Option(None, "--port", help="Default: FAIRMETER_PORT or 8000."),
    serve: bool = typer.Option(True, "--serve/--no-serve", help="Start the server at the end."),
    scale: float = typer.Option(
        1.0, "--scale", envvar="FAIRMETER_DEMO_SCALE", hidden=True, min=0.0001, max=10.0
    ),
) -> None:
    """Load the demo data set (once), make an admin key, print what to try, and serve.

    Uses FAIRMETER_DATABASE_URL, or ./fairmeter.db when it is not set."""
    settings = Settings.from_env()
    port = port or settings.port
    with session(settings) as rt:
        note(f"Database: {mask_url(settings.database_url)}")
        now = rt.clock.now()
        summary = _load_once(rt, now, scale)
        key = create_key(rt.db, rt.clock, Scope.ADMIN, "demo")
        _welcome(summary, key, _base_url(settings.host, port), now, demo_billing.story(rt))
        if serve:
            server.run(rt, settings.host, port)


def _load_once(rt: Runtime, now: datetime, scale: float) -> str:
    """Load what is missing: the events (then the customers), then the billing story."""
    loaded_before = _is_loaded(rt, demo_data.generate(demo_data.SEED, now, scale))
    if loaded_before and demo_billing.is_set_up(rt):
        note("The demo data is already loaded; nothing to add.")
        return "the demo data was loaded earlier"
    started = time.monotonic()
    summary = "the demo data was loaded earlier"
    if not loaded_before:
        data = demo_data.generate(demo_data.SEED, now, scale)
        loaded = load(rt, data)
        summary = (
            f"{len(data.customers)} customers, {len(data.meters)} meters, "
            f"{loaded.accepted:,} events over the last {(data.end - data.start).days} days"
        )
    note("Replaying the daily billing runs since the subscriptions started ...")
    demo_billing.set_up(rt, scale)
    note(f"Loaded in {time.monotonic() - started:.0f} s.")
    return summary


def load(rt: Runtime, data: demo_data.DemoData) -> Loaded:
    """Meters first (so events are rolled up as they arrive), then events, then customers."""
    # AlreadyExists means an interrupted load made it before: keep it.
    for body in data.meters:
        with suppress(AlreadyExists):
            catalog.create_meter(rt.db, rt.clock, parse_meter(body))
    loaded = _load_events(rt, data)
    for body in sorted(data.customers, key=lambda c: c["key"] == MARKER):
        with suppress(AlreadyExists):
            catalog.create_customer(rt.db, rt.clock, parse_customer(body))
    if loaded.rejected:
        note(f"{loaded.rejected} demo events were refused (left from an older load).", "yellow")
    return loaded


def _is_loaded(rt: Runtime, data: demo_data.DemoData) -> bool:
    """Every demo customer exists: the customers are created after their events."""
    for body in data.customers:
        try:
            catalog.get_customer(rt.db, str(body["key"]))
        except NotFound:
            return False
    return True


def _load_events(rt: Runtime, data: demo_data.DemoData) -> Loaded:
    loaded = Loaded()
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
    )
    console = err()
    # Only a terminal gets a live bar; logs and pipes get the summary alone.
    live = Progress(*columns, console=console, transient=True, disable=not console.is_terminal)
    with live as progress:
        task = progress.add_task("Loading demo events", total=data.total_events)
        for batch in _batches(data.events(), min(BATCH, rt.policy.max_batch_events)):
            now = _received(batch, rt.clock.now())
            items, rejected = codec.parse_batch(demo_data.encode(batch), now, rt.policy)
            result = record_events(rt.db, items, rejected, received_us=to_us(now))
            loaded.accepted += result.accepted
            loaded.duplicates += result.duplicates
            loaded.rejected += len(result.rejected)
            progress.advance(task, len(batch))
    return loaded


def _received(batch: list[dict[str, object]], now: datetime) -> datetime:
    """When a batch arrives: a minute after its latest event, as if sent as it happened
    (months-old events would be refused as older than the backdating window), never
    after now."""
    # The times share one format ("...:SSZ"), so the latest sorts last as text.
    latest = datetime.fromisoformat(max(str(event["time"]) for event in batch))
    return min(now, latest + timedelta(minutes=1))


def _batches(events: Iterator[dict[str, object]], size: int) -> Iterator[list[dict[str, object]]]:
    while batch := list(itertools.islice(events, size)):
        yield batch


def _base_url(host: str, port: int) -> str:
    shown = "127.0.0.1" if host in ("0.0.0.0", "::", "") else host
    return f"http://{shown}:{port}"


def _welcome(summary: str, key: str, base: str, now: datetime, story: demo_billing.Story) -> None:
    lines = [
        f"fairmeter demo is ready: {summary}.",
        "",
        f"Admin key (shown only once): {key}",
        "",
        f"  API:  {base}",
        f"  Docs: {base}/docs",
        "",
        *story.lines,
        "",
        "Try:",
        *_curls(f'-H "Authorization: Bearer {key}"', base, now, story.pdf_invoice),
    ]
    for line in lines:
        echo(line)


def _curls(auth: str, base: str, now: datetime, pdf_invoice: str | None) -> list[str]:
    since = (now - timedelta(days=7)).strftime("%Y-%m-%dT00:00:00Z")
    event = (
        '{"specversion":"1.0","id":"try-1","source":"curl","type":"api.request",'
        '"subject":"acme","data":{"endpoint":"/v1/chat","model":"small","tokens":150,'
        '"user_id":"u001"}}'
    )
    lines = [
        "  # the meters",
        f"  curl -s {base}/v1/meters {auth}",
        "  # acme's API calls per day (in acme's time zone) over the last week",
        f'  curl -s "{base}/v1/meters/api_calls/usage?customer=acme&window=day&from={since}" '
        + auth,
        "  # send an event (send it twice: the second time it is a duplicate)",
        f"  curl -s {base}/v1/events {auth} "
        f"-H \"Content-Type: application/cloudevents+json\" -d '{event}'",
        "  # acme's upcoming invoice: this period so far, and where it is heading",
        f"  curl -s {base}/v1/customers/acme/upcoming-invoice {auth}",
        "  # acme's invoices",
        f'  curl -s "{base}/v1/invoices?customer=acme" {auth}',
    ]
    if pdf_invoice:
        lines += [
            "  # acme's largest invoice as a PDF",
            f"  curl -s -o invoice.pdf {base}/v1/invoices/{pdf_invoice}.pdf {auth}",
        ]
    return lines
