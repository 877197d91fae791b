"""The `alerts` command: the composition root.

It builds Settings, the engine and the services for each command. It alone may import
`scheduler/` (for `alerts run` and `alerts scheduler`).
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated

import typer
from sqlalchemy import Engine
from sqlalchemy.exc import OperationalError

from alerts.config import Settings, SettingsError, load_settings
from db.migrate import is_current, upgrade
from db.session import make_engine

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


def configure_logging(level: int = logging.INFO) -> None:
    logging.basicConfig(
        level=level, format="%(asctime)s %(levelname)s %(name)s %(message)s", stream=sys.stderr
    )


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

    settings = settings_or_exit()
    configure_logging()
    with migrated_engine(settings) as engine:
        uvicorn.run(create_app(settings, engine=engine), host=host, port=port, log_level="info")


@app.command()
def run(host: HostOption = "127.0.0.1", port: PortOption = 8000) -> None:
    """Migrate, then run the API and the scheduler in one process."""
    import uvicorn

    from alerts.app import create_app

    settings = settings_or_exit()
    configure_logging()
    _migrate(settings)
    with migrated_engine(settings) as engine:
        uvicorn.run(create_app(settings, engine=engine), host=host, port=port, log_level="info")


def main() -> None:
    app()


if __name__ == "__main__":
    main()
