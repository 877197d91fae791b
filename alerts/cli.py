"""The `alerts` command: the composition root.

It builds Settings, the engine and the services for each command. It alone may import
`scheduler/` (for `alerts run` and `alerts scheduler`).
"""

from __future__ import annotations

import os
import signal
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from types import FrameType
from typing import TYPE_CHECKING, Annotated

import typer
from sqlalchemy import Engine
from sqlalchemy.exc import OperationalError

from alerts.config import Settings, SettingsError, load_settings
from alerts.ops.logging import configure_logging
from db.migrate import is_current, upgrade
from db.session import make_engine, make_sessionmaker

if TYPE_CHECKING:
    import uvicorn

    from scheduler.runner import SchedulerRunner

app = typer.Typer(
    name="alerts",
    help="Target Alerts: email digests of what is new about drug-discovery targets.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
db_app = typer.Typer(help="Database migrations.", no_args_is_help=True)
app.add_typer(db_app, name="db")

HostOption = Annotated[str, typer.Option("--host", help="Address to bind.")]
PortOption = Annotated[int, typer.Option("--port", help="Port to bind.")]


class CommandFailed(Exception):
    """The command could not do its job; the message is the one line shown."""


def fail(message: str, code: int = 1) -> typer.Exit:
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(code)


def settings_or_exit() -> Settings:
    try:
        return load_settings()
    except SettingsError as exc:
        raise fail(str(exc), 2) from None


@contextmanager
def migrated_engine(settings: Settings) -> Iterator[Engine]:
    """The engine of a database that is migrated; otherwise one line saying what to do."""
    _ensure_sqlite_dir(settings)
    engine = make_engine(settings.database_url)
    try:
        try:
            current = is_current(engine)
        except OperationalError as exc:
            raise fail(f"cannot reach the database: {exc.orig}") from None
        if not current:
            raise fail("the database is not migrated: run `alerts db upgrade` first")
        yield engine
    finally:
        engine.dispose()


def _ensure_sqlite_dir(settings: Settings) -> None:
    if settings.database_url.startswith("sqlite:///"):
        path = settings.database_url.removeprefix("sqlite:///")
        if path and path != ":memory:":
            from pathlib import Path

            Path(path).parent.mkdir(parents=True, exist_ok=True)


def _migrate(settings: Settings) -> None:
    _ensure_sqlite_dir(settings)
    engine = make_engine(settings.database_url)
    try:
        upgrade(engine)
    except OperationalError as exc:
        raise fail(f"cannot reach the database: {exc.orig}") from None
    finally:
        engine.dispose()


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Apply all database migrations."""
    settings = settings_or_exit()
    _migrate(settings)
    typer.echo("database is up to date")


@app.command()
def serve(host: HostOption = "127.0.0.1", port: PortOption = 8000) -> None:
    """Run the API and web pages only (any number of processes)."""
    import uvicorn

    from alerts.app import create_app
    from alerts.mail.factory import make_mailer
    from alerts.ops.metrics import Metrics

    settings = settings_or_exit()
    configure_logging()
    with migrated_engine(settings) as engine:
        metrics = Metrics()
        mailer = make_mailer(settings, observe_latency=metrics.observe_smtp_latency)
        api = create_app(settings, engine=engine, metrics=metrics, mailer=mailer)
        uvicorn.run(api, host=host, port=port, log_level="info")


@app.command()
def run(host: HostOption = "127.0.0.1", port: PortOption = 8000) -> None:
    """Migrate, then run the API and the scheduler in one process."""
    import uvicorn

    from alerts.app import create_app
    from alerts.ops.metrics import Metrics
    from scheduler.runner import build_runner

    settings = settings_or_exit()
    configure_logging()
    _migrate(settings)
    with migrated_engine(settings) as engine:
        metrics = Metrics()
        runner = build_runner(settings, engine, metrics=metrics)
        api = create_app(settings, engine=engine, metrics=metrics, mailer=runner.ctx.mailer)
        server = uvicorn.Server(uvicorn.Config(api, host=host, port=port, log_level="info"))
        _serve_with_scheduler(server, runner)


def _serve_with_scheduler(server: uvicorn.Server, runner: SchedulerRunner) -> None:
    """Serve until SIGTERM/SIGINT, then let the scheduler finish its running jobs.

    uvicorn handles both signals while it serves and, once stopped, re-raises the signal
    to the handler installed before it: this one, which only asks the server to exit
    (so it also covers a signal that comes before uvicorn's own handlers are in place).
    Without it the re-raised signal would kill the process before the scheduler stops."""

    def _exit(_signum: int, _frame: FrameType | None) -> None:
        server.should_exit = True

    previous = {sig: signal.signal(sig, _exit) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        with runner.started():
            server.run()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


MetricsPortOption = Annotated[
    int | None,
    typer.Option(
        "--metrics-port",
        help="Serve this process's own Prometheus metrics (job runs and durations, SMTP "
        "latency) on this port; the shared facts are on the API's /metrics.",
    ),
]


@app.command("scheduler")
def scheduler_command(metrics_port: MetricsPortOption = None) -> None:
    """Run the scheduler only (several processes on PostgreSQL, one on SQLite)."""
    from alerts.ops.metrics import Metrics, serve_metrics
    from scheduler.runner import build_runner, run_until_signalled, warn_if_single_scheduler_only

    settings = settings_or_exit()
    configure_logging()
    with migrated_engine(settings) as engine:
        warn_if_single_scheduler_only(settings)
        metrics = Metrics()
        if metrics_port is not None:
            serve_metrics(metrics, metrics_port)
        run_until_signalled(build_runner(settings, engine, metrics=metrics))


digests_app = typer.Typer(help="Email digests.", no_args_is_help=True)
app.add_typer(digests_app, name="digests")


@digests_app.command("send")
def digests_send(
    frequency: Annotated[
        str | None, typer.Option("--frequency", help="Only daily or only weekly digests.")
    ] = None,
    now: Annotated[
        str | None,
        typer.Option("--now", help="Send what is due at this moment: ISO-8601 with an "
                     "offset or Z, e.g. 2026-05-04T08:00:00Z (default: now)."),
    ] = None,
) -> None:
    """Send every digest due at --now, and any left pending by an earlier run."""
    from alerts.digests.service import send_due
    from alerts.mail.factory import make_mailer
    from db.clock import utc_now

    if frequency is not None and frequency not in ("daily", "weekly"):
        raise fail(f"--frequency must be daily or weekly, not {frequency!r}")
    moment = utc_now()
    if now is not None:
        try:
            moment = datetime.fromisoformat(now.strip())
        except ValueError:
            raise fail(
                f"--now must be ISO-8601 (e.g. 2026-05-04T08:00:00Z), not {now!r}"
            ) from None
        if moment.tzinfo is None:
            raise fail(f"--now needs an offset or Z (e.g. 2026-05-04T08:00:00Z), not {now!r}")
    settings = settings_or_exit()
    configure_logging()
    with migrated_engine(settings) as engine:
        report = send_due(
            make_sessionmaker(engine),
            settings,
            make_mailer(settings),
            now=moment,
            owner=f"cli-{socket.gethostname()}-{os.getpid()}",
            frequency=frequency,
        )
    typer.echo(
        f"sent {report.sent} digests to {report.addresses} addresses "
        f"(planned {report.planned}, empty {report.empty}, pending {report.pending}, "
        f"failed {report.failed})"
    )
    if report.error:
        raise fail(report.error)


# -- ingestion: poll, targets, feeds, backfill -----------------------------------------------

def main() -> None:
    app()


if __name__ == "__main__":
    main()
