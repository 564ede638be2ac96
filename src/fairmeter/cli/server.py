"""`fairmeter serve` and `fairmeter migrate`."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path

import typer

import fairmeter
from fairmeter.cli.console import echo, mask_url, note, session
from fairmeter.config import Settings
from fairmeter.services.runtime import Runtime
from fairmeter.storage.migrate import is_current

FACTORY = "fairmeter.wiring:create_app_from_env"


def serve(
    host: str | None = typer.Option(None, "--host", help="Default: FAIRMETER_HOST or 127.0.0.1."),
    port: int | None = typer.Option(None, "--port", help="Default: FAIRMETER_PORT or 8000."),
    reload: bool = typer.Option(False, "--reload", help="Restart when the code changes."),
    workers: int = typer.Option(
        1, "--workers", min=1, max=64, help="Server processes (2 on a 2-core machine ingests more)."
    ),
    with_worker: bool = typer.Option(
        False, "--with-worker", help="Also deliver notifications (as `fairmeter worker` does)."
    ),
) -> None:
    """Apply migrations, then serve the HTTP API (docs at /docs).

    Example: fairmeter serve --port 8000 --workers 2"""
    settings = Settings.from_env()
    settings = replace(settings, host=host or settings.host, port=port or settings.port)
    with session(settings) as rt, delivering(rt, with_worker):
        note(f"Database {mask_url(settings.database_url)} is up to date.")
        if reload or workers > 1:
            import uvicorn

            # The reloader and the workers import the app in child processes: they need an
            # import string, and each process opens its own database connections.
            if not with_worker:  # the worker keeps using this process's connections
                rt.close()
            uvicorn.run(
                FACTORY,
                factory=True,
                host=settings.host,
                port=settings.port,
                reload=reload,
                workers=None if reload else workers,
                reload_dirs=[str(Path(fairmeter.__file__).parent)] if reload else None,
            )
        else:
            run(rt, settings.host, settings.port)


@contextmanager
def delivering(rt: Runtime, wanted: bool) -> Iterator[None]:
    """The delivery worker in a thread of this process, for as long as the server runs."""
    if not wanted:
        yield
        return
    from fairmeter.cli.worker import start_worker

    found = start_worker(rt, background=True)
    note("Delivering notifications in this process (--with-worker).")
    try:
        yield
    finally:
        found.stop()


def run(rt: Runtime, host: str, port: int) -> None:
    # Imported here: FastAPI and uvicorn would slow the start of every other command.
    import uvicorn

    from fairmeter.api.app import create_app
    from fairmeter.wiring import settle_heap

    app = create_app(rt)
    settle_heap()
    note(f"Serving on http://{host}:{port} (API docs at http://{host}:{port}/docs); Ctrl+C stops.")
    uvicorn.run(app, host=host, port=port)


def migrate() -> None:
    """Apply every pending database migration (safe to run again)."""
    settings = Settings.from_env()
    with session(settings) as rt:
        current = is_current(rt.db.engine)
    state = "up to date" if current else "NOT up to date"
    echo(f"Database {mask_url(settings.database_url)} is {state}.")
    if not current:
        raise typer.Exit(1)
