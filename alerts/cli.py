"""The `alerts` command: the composition root.

It builds Settings, the engine and the services for each command. It alone may import
`scheduler/` (for `alerts run` and `alerts scheduler`).
"""

from __future__ import annotations

import logging
import signal
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Annotated, Any

import typer
from pydantic import ValidationError
from sqlalchemy import Engine
from sqlalchemy.exc import OperationalError

from alerts.config import Settings, SettingsError, load_settings
from alerts.errors import AlertsError
from alerts.ops.logging import configure_logging
from alerts.polling.schemas import UNCHANGED, SourceReport
from alerts.sources.base import SourceName
from db.leases import new_owner
from db.migrate import is_current, upgrade
from db.session import make_engine, make_sessionmaker, transaction

if TYPE_CHECKING:
    import uvicorn
    from starlette.types import ASGIApp

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
            raise _unreachable(exc) from None
        if not current:
            raise fail("the database is not migrated: run `alerts db upgrade` first")
        yield engine
    finally:
        engine.dispose()


def _unreachable(exc: OperationalError) -> typer.Exit:
    # The driver's text may span lines (psycopg adds "\n\tIs the server running ..."): the
    # command still prints one line.
    return fail(f"cannot reach the database: {' '.join(str(exc.orig).split())}")


def _ensure_sqlite_dir(settings: Settings) -> None:
    if settings.database_url.startswith("sqlite:///"):
        path = settings.database_url.removeprefix("sqlite:///")
        if path and path != ":memory:":
            directory = Path(path).parent
            try:
                directory.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise fail(f"cannot create the database's directory {directory}: "
                           f"{exc.strerror}") from None


def _migrate(settings: Settings) -> list[str]:
    """Apply the migrations, then sync the catalogue file; the sync's report lines."""
    _ensure_sqlite_dir(settings)
    engine = make_engine(settings.database_url)
    try:
        upgrade(engine)
        return _sync_catalogue(engine, settings.catalogue_file)
    except OperationalError as exc:
        raise _unreachable(exc) from None
    finally:
        engine.dispose()


def _sync_catalogue(
    engine: Engine, path: Path | None = None, reset: list[str] | None = None
) -> list[str]:
    """Write the catalogue file into the database: the report lines, or a failure that
    lists every problem of the file (nothing is written then)."""
    from alerts.targets.catalogue import CATALOGUE_PATH, CatalogueError, load_catalogue
    from alerts.targets.sync import sync_catalogue
    from db.clock import utc_now

    try:
        catalogue = load_catalogue(path or CATALOGUE_PATH)
    except CatalogueError as exc:
        raise fail(f"the catalogue cannot be loaded: {exc}") from None
    with transaction(make_sessionmaker(engine)) as session:
        return sync_catalogue(session, catalogue, now=utc_now(), reset=reset or ()).lines()


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Apply all database migrations, then sync the target catalogue."""
    settings = settings_or_exit()
    for line in _migrate(settings):
        typer.echo(line)
    typer.echo("database is up to date")


def server_config(api: ASGIApp, host: str, port: int) -> uvicorn.Config:
    """How every command serves HTTP (`bench/api.py` serves its baseline with it too)."""
    import uvicorn

    # log_config=None: uvicorn's lines go through our one-line format too.
    return uvicorn.Config(api, host=host, port=port, log_level="info", log_config=None)


def http_server(api: ASGIApp, host: str, port: int) -> uvicorn.Server:
    """The server of `server_config`, with everything built so far out of the garbage
    collector's way (`bench/api.py` serves its baseline with it too).

    The app, its libraries and their caches are ~150,000 long-lived objects, and each
    full collection walked them all: 40-110 ms during which no request was answered,
    a dozen times in ten seconds of load, which was most of the p99. Frozen after
    start-up, they are never scanned again; what requests allocate is collected as
    before."""
    import gc

    import uvicorn

    gc.collect()
    gc.freeze()
    return uvicorn.Server(server_config(api, host, port))


@app.command()
def serve(host: HostOption = "127.0.0.1", port: PortOption = 8000) -> None:
    """Run the API and web pages only (any number of processes)."""

    from alerts.app import create_app
    from alerts.mail.factory import make_mailer
    from alerts.ops.metrics import Metrics

    settings = settings_or_exit()
    configure_logging()
    with migrated_engine(settings) as engine:
        metrics = Metrics()
        mailer = make_mailer(settings, observe_latency=metrics.observe_smtp_latency)
        api = create_app(settings, engine=engine, metrics=metrics, mailer=mailer)
        http_server(api, host, port).run()


@app.command()
def run(host: HostOption = "127.0.0.1", port: PortOption = 8000) -> None:
    """Migrate, then run the API and the scheduler in one process."""

    from alerts.app import create_app
    from alerts.ops.metrics import Metrics
    from scheduler.runner import build_runner

    settings = settings_or_exit()
    configure_logging()
    for line in _migrate(settings):
        level = logging.WARNING if line.startswith("warning:") else logging.INFO
        logging.getLogger("alerts.targets").log(level, "%s", line)
    with migrated_engine(settings) as engine:
        metrics = Metrics()
        runner = build_runner(settings, engine, metrics=metrics)
        api = create_app(settings, engine=engine, metrics=metrics, mailer=runner.ctx.mailer)
        server = http_server(api, host, port)
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
    from alerts.digests.delivery.send import send_due
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
            owner=new_owner(),
            frequency=frequency,
        )
    typer.echo(
        f"sent {report.sent} digest{'' if report.sent == 1 else 's'} to "
        f"{report.addresses} address{'' if report.addresses == 1 else 'es'} "
        f"(planned {report.planned}, empty {report.empty}, pending {report.pending}, "
        f"failed {report.failed})"
    )
    if report.error:
        raise fail(report.error)


# -- ingestion: poll, targets, feeds, backfill -----------------------------------------------

targets_app = typer.Typer(help="The target catalogue.", no_args_is_help=True)
app.add_typer(targets_app, name="targets")
feeds_app = typer.Typer(help="RSS/Atom feeds attached to targets.", no_args_is_help=True)
app.add_typer(feeds_app, name="feeds")

SourceOption = Annotated[
    str | None, typer.Option("--source", help="pubmed, ctgov or rss (default: all).")
]


def _source_or_exit(value: str | None) -> SourceName | None:
    if value is None:
        return None
    try:
        return SourceName(value.strip().lower())
    except ValueError:
        raise fail(f"unknown source {value!r}: choose pubmed, ctgov or rss") from None


def _detail(exc: AlertsError | ValidationError) -> str:
    """A domain or validation error as the one line a command prints."""
    if isinstance(exc, ValidationError):
        problems = [(e["loc"][-1] if e["loc"] else "value", e["msg"]) for e in exc.errors()]
    elif isinstance(exc.detail, list):
        problems = [(e["loc"][-1], e["msg"]) for e in exc.detail]
    else:
        return str(exc.detail)
    return "; ".join(f"invalid {field}: {msg.removeprefix('Value error, ')}"
                     for field, msg in problems)


def _report_lines(reports: list[SourceReport]) -> list[str]:
    """One line per (source, target), then its warnings indented."""
    source_width = max((len(r.source) for r in reports), default=0)
    target_width = max((len(r.target) for r in reports), default=0)
    lines = []
    for r in reports:
        if r.failed:
            outcome = f"failed: {r.error}"
        elif r.skipped and r.reason != UNCHANGED:
            outcome = f"skipped: {r.reason}"
        else:
            requests = f"{r.requests} request{'' if r.requests == 1 else 's'}"
            outcome = f"{r.new} new, {r.updated} updated  ({requests})"
            if r.skipped:
                outcome = f"skipped: {r.reason}  ({requests})"
        lines.append(f"{r.source:<{source_width}}  {r.target:<{target_width}}  {outcome}")
        lines.extend(f"  warning: {warning}" for warning in r.warnings)
    return lines


def _run_poll(
    settings: Settings,
    source: SourceName | None,
    target_slug: str | None,
    *,
    since: datetime | None = None,
    progress: Callable[[str, int, int | None], None] | None = None,
) -> list[SourceReport]:
    from alerts.polling.service import poll

    with migrated_engine(settings) as engine:
        try:
            return poll(
                make_sessionmaker(engine), settings, source=source, target_slug=target_slug,
                owner=new_owner(), since=since, progress=progress,
            )
        except AlertsError as exc:
            raise fail(_detail(exc)) from None


def _run_catalogue_poll(settings: Settings, source: SourceName | None) -> list[SourceReport]:
    """The catalogue-wide poll of each source, then the first history of every target
    never polled on its own and the targets' own feeds (what the scheduler does when
    polls are due)."""
    from alerts.polling.service import poll
    from alerts.polling.sweep import poll_catalogue

    with migrated_engine(settings) as engine:
        factory, owner = make_sessionmaker(engine), new_owner()
        return [
            *poll_catalogue(factory, settings, source=source, owner=owner),
            *poll(factory, settings, source=source, owner=owner, alongside_catalogue=True),
        ]


@app.command("poll")
def poll_command(
    source: SourceOption = None,
    target: Annotated[
        str | None, typer.Option("--target", help="Target slug (default: all).")
    ] = None,
) -> None:
    """Poll the sources once now: new, updated or failed per source and target.

    Without --target, each source once for the whole catalogue (target "*"), then the
    first history of each target never polled on its own and the targets' own feeds;
    with --target, that target's own searches. A failing source does not make the
    command fail: its line names the failure."""
    settings = settings_or_exit()
    chosen = _source_or_exit(source)
    configure_logging(logging.WARNING)
    reports = (_run_poll(settings, chosen, target) if target is not None
               else _run_catalogue_poll(settings, chosen))
    for line in _report_lines(reports):
        typer.echo(line)


@app.command()
def backfill(
    target: Annotated[str, typer.Option("--target", help="Target slug.")],
    since: Annotated[str, typer.Option("--since", help="First day to fetch, YYYY-MM-DD.")],
    source: SourceOption = None,
) -> None:
    """Fetch a target's history since a date, with a progress bar.

    Items already stored are kept once; the regular polls carry on from where they were."""
    settings = settings_or_exit()
    chosen = _source_or_exit(source)
    try:
        day = date.fromisoformat(since.strip())
    except ValueError:
        raise fail(f"--since must be a date like 2024-01-31, not {since!r}") from None
    start = datetime(day.year, day.month, day.day, tzinfo=UTC)
    if start > datetime.now(UTC):
        raise fail(f"--since {day.isoformat()} is in the future")
    configure_logging(logging.WARNING)
    with _progress_bar() as progress:
        reports = _run_poll(settings, chosen, target, since=start, progress=progress)
    for line in _report_lines(reports):
        typer.echo(line)


@contextmanager
def _progress_bar() -> Iterator[Callable[[str, int, int | None], None]]:
    """A rich progress bar on stderr, one row per thing an adapter reports progress on."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn

    rows: dict[str, object] = {}
    bar = Progress(
        "{task.description}", BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
        console=Console(stderr=True),
    )

    def update(what: str, done: int, total: int | None) -> None:
        if what not in rows:
            if not rows:
                bar.start()
            rows[what] = bar.add_task(what, total=total)
        bar.update(rows[what], completed=done, total=total)  # type: ignore[arg-type]

    # Started on the first report only: a backfill that fails before fetching anything
    # (unknown target, unmigrated database) prints its error line and no empty bar.
    try:
        yield update
    finally:
        if rows:
            bar.stop()


@targets_app.command("list")
def targets_list() -> None:
    """List the targets, with the sources each is searched in."""
    from alerts.targets.service import feed_counts, list_targets

    settings = settings_or_exit()
    with migrated_engine(settings) as engine, transaction(make_sessionmaker(engine)) as session:
        targets, feeds = list_targets(session), feed_counts(session)
        if not targets:
            typer.echo("no targets: add one with `alerts targets add`")
        width = max((len(t.slug) for t in targets), default=0)
        for t in targets:
            searched = [name for name, query in (
                ("pubmed", t.pubmed_query), ("ctgov", t.ctgov_term or t.ctgov_intr)) if query]
            count = feeds.get(t.id, 0)
            searched.append(f"{count} feed{'' if count == 1 else 's'}")
            typer.echo(f"{t.slug:<{width}}  {t.name}  [{', '.join(searched)}]")


def _entry_input(file: Path | None, flags: dict[str, Any]) -> dict[str, Any]:
    """A target's keys from a TOML or JSON file (a table of an entry's keys, or a file
    holding one [[targets]] entry), then the flags given, which win over the file's."""
    import json
    import tomllib

    document: dict[str, Any] = {}
    if file is not None:
        try:
            text = file.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise fail(f"cannot read {file}: {getattr(exc, 'strerror', None) or exc}") from None
        try:
            loaded = json.loads(text) if file.suffix == ".json" else tomllib.loads(text)
        except ValueError as exc:
            raise fail(f"{file} is not valid {'JSON' if file.suffix == '.json' else 'TOML'}: "
                       f"{exc}") from None
        if isinstance(loaded, dict) and list(loaded) == ["targets"] \
                and isinstance(loaded["targets"], list) and len(loaded["targets"]) == 1:
            loaded = loaded["targets"][0]
        if not isinstance(loaded, dict):
            raise fail(f"{file} must hold one target's keys (a table or a JSON object)")
        document.update(loaded)
    document.update(flags)
    return document


def _changed_by(by: str | None) -> str:
    import getpass

    if by:
        return by
    try:
        return f"{getpass.getuser()} (command line)"
    except (OSError, KeyError):
        return "unknown user (command line)"


def _fail_fields(exc: AlertsError) -> typer.Exit:
    """A domain error as a command's error: one line per bad field."""
    if isinstance(exc.detail, list):
        for problem in exc.detail[:-1]:
            typer.echo(f"error: {_field_line(problem)}", err=True)
        return fail(_field_line(exc.detail[-1]))
    return fail(str(exc.detail))


def _field_line(problem: dict[str, Any]) -> str:
    where = ""
    for part in problem["loc"][1:]:
        where += f"[{part}]" if isinstance(part, int) else (f".{part}" if where else str(part))
    return f"{where or 'entry'}: {problem['msg']}"


FileOption = Annotated[
    Path | None,
    typer.Option("--file", help="The target's keys as a catalogue entry, TOML (a table, "
                 "or one [[targets]] entry) or JSON (.json); flags win over it."),
]
ByOption = Annotated[
    str | None, typer.Option("--by", help="Who makes the change, for its record "
                             "(default: the OS user).")
]
NameFlag = Annotated[str | None, typer.Option("--name", help="Display name.")]
DescriptionFlag = Annotated[str | None, typer.Option("--description", help="One line.")]
KindFlag = Annotated[
    str | None, typer.Option("--kind", help="variant, fusion, protein or pathway.")
]
GeneFlag = Annotated[list[str] | None, typer.Option("--gene", help="Gene symbol or synonym.")]
VariantFlag = Annotated[
    list[str] | None, typer.Option("--variant-term", help="Variant term (e.g. G12C).")
]
PatternFlag = Annotated[
    list[str] | None, typer.Option("--variant-pattern", help="Variant regex.")
]
DrugFlag = Annotated[
    list[str] | None,
    typer.Option("--drug", help="A drug aimed at the target, counted alone (codes, "
                 "brands and shared_with go in --file)."),
]
RelatedFlag = Annotated[
    list[str] | None,
    typer.Option("--related-drug", help="A drug that counts only with the target's terms."),
]
SourceFlag = Annotated[
    list[str] | None, typer.Option("--source", help="Where the terms come from.")
]
PubmedFlag = Annotated[str | None, typer.Option("--pubmed-query", help="PubMed ESearch term.")]
CtgovTermFlag = Annotated[
    str | None, typer.Option("--ctgov-term", help="ClinicalTrials.gov query.term.")
]
CtgovIntrFlag = Annotated[
    str | None, typer.Option("--ctgov-intr", help="ClinicalTrials.gov query.intr.")
]


def _entry_flags(**given: Any) -> dict[str, Any]:
    """The flags given (not None), as an entry's keys: each replaces the key as a whole;
    an empty query clears it."""
    keys = {"gene": "genes", "variant_term": "variant_terms",
            "variant_pattern": "variant_patterns", "related_drug": "related_drugs",
            "source": "sources"}
    flags: dict[str, Any] = {}
    for option, value in given.items():
        if value is None:
            continue
        if option == "drug":
            flags["drugs"] = [{"name": name} for name in value]
        elif option in ("pubmed_query", "ctgov_term", "ctgov_intr"):
            flags[option] = value.strip() or None
        else:
            flags[keys.get(option, option)] = value
    return flags


def _rematch_line(counts: Any) -> str:
    return (f"rematched: {counts.kept} kept, {counts.newly_matched} newly matched, "
            f"{counts.newly_rejected} newly rejected")


@targets_app.command("add")
def targets_add(
    slug: Annotated[str | None, typer.Argument(help="Lowercase letters, digits, hyphens "
                                               "(or the file's slug).")] = None,
    file: FileOption = None, name: NameFlag = None, description: DescriptionFlag = None,
    kind: KindFlag = None, gene: GeneFlag = None, variant_term: VariantFlag = None,
    variant_pattern: PatternFlag = None, drug: DrugFlag = None,
    related_drug: RelatedFlag = None, source: SourceFlag = None,
    pubmed_query: PubmedFlag = None, ctgov_term: CtgovTermFlag = None,
    ctgov_intr: CtgovIntrFlag = None, by: ByOption = None,
) -> None:
    """Add a target: a catalogue entry (--file and/or flags), checked as the catalogue
    file's entries are, matched against the stored items at once, the change recorded.

    The target is local: `alerts targets sync` never changes it."""
    from alerts.targets.changes import add_target
    from db.clock import utc_now

    flags = _entry_flags(
        name=name, description=description, kind=kind, gene=gene, variant_term=variant_term,
        variant_pattern=variant_pattern, drug=drug, related_drug=related_drug, source=source,
        pubmed_query=pubmed_query, ctgov_term=ctgov_term, ctgov_intr=ctgov_intr)
    document = _entry_input(file, {"slug": slug, **flags} if slug else flags)
    settings = settings_or_exit()
    with migrated_engine(settings) as engine, transaction(make_sessionmaker(engine)) as session:
        try:
            done = add_target(session, document, by=_changed_by(by), now=utc_now())
        except AlertsError as exc:
            raise _fail_fields(exc) from None
        typer.echo(f"added target {done.target.slug}; {_rematch_line(done.rematched)}")


@targets_app.command("edit")
def targets_edit(
    slug: Annotated[str, typer.Argument(help="Target slug.")],
    file: FileOption = None, name: NameFlag = None, description: DescriptionFlag = None,
    kind: KindFlag = None, gene: GeneFlag = None, variant_term: VariantFlag = None,
    variant_pattern: PatternFlag = None, drug: DrugFlag = None,
    related_drug: RelatedFlag = None, source: SourceFlag = None,
    pubmed_query: PubmedFlag = None, ctgov_term: CtgovTermFlag = None,
    ctgov_intr: CtgovIntrFlag = None, by: ByOption = None,
) -> None:
    """Change a target: the keys given (--file and/or flags) replace its entry's; the
    result is checked as a whole entry, a changed rule rematches the stored items, the
    change is recorded.

    A target of the catalogue file keeps this edit at the next sync (which warns if the
    file's entry changes too)."""
    from alerts.targets.changes import edit_target
    from db.clock import utc_now

    flags = _entry_flags(
        name=name, description=description, kind=kind, gene=gene, variant_term=variant_term,
        variant_pattern=variant_pattern, drug=drug, related_drug=related_drug, source=source,
        pubmed_query=pubmed_query, ctgov_term=ctgov_term, ctgov_intr=ctgov_intr)
    changes = _entry_input(file, {})
    changes.update(flags)
    if not changes:
        raise fail("nothing to change: give --file or a flag (see --help)")
    settings = settings_or_exit()
    with migrated_engine(settings) as engine, transaction(make_sessionmaker(engine)) as session:
        try:
            done = edit_target(session, slug, changes, by=_changed_by(by), now=utc_now())
        except AlertsError as exc:
            raise _fail_fields(exc) from None
    if not done.changed:
        typer.echo(f"{slug}: already so, nothing changed")
    elif done.rematched is None:
        typer.echo(f"edited {slug}")
    else:
        typer.echo(f"edited {slug}; {_rematch_line(done.rematched)}")


@targets_app.command("remove")
def targets_remove(
    slug: Annotated[str, typer.Argument(help="Target slug.")],
    force: Annotated[bool, typer.Option("--force", help="Also when people follow it: "
                                        "their alerts end with it.")] = False,
    by: ByOption = None,
) -> None:
    """Remove a target, refused while it has pending, active or paused alerts unless
    --force (each confirmed follower is then mailed that the alert ended, by the
    scheduler's outbox). Its history stays; `alerts targets sync` does not add it back from the file
    (`sync --reset SLUG` does)."""
    from alerts.targets.changes import remove_target
    from db.clock import utc_now

    settings = settings_or_exit()
    with migrated_engine(settings) as engine, transaction(make_sessionmaker(engine)) as session:
        try:
            ended = remove_target(session, slug, by=_changed_by(by), now=utc_now(),
                                  settings=settings, force=force)
        except AlertsError as exc:
            raise _fail_fields(exc) from None
    typer.echo(f"removed {slug}" + (f"; {ended} alert{'' if ended == 1 else 's'} ended"
                                    if ended else ""))


@targets_app.command("history")
def targets_history(
    slug: Annotated[str, typer.Argument(help="Target slug (also a removed one's).")],
    as_json: Annotated[bool, typer.Option("--json", help="Each change as a JSON line, "
                                          "with the entry before and after.")] = False,
) -> None:
    """Who changed the target, when and what, oldest first."""
    import json

    from alerts.targets.changes import target_history

    settings = settings_or_exit()
    with migrated_engine(settings) as engine, transaction(make_sessionmaker(engine)) as session:
        try:
            history = target_history(session, slug)
        except AlertsError as exc:
            raise _fail_fields(exc) from None
        for change in history:
            when = change.changed_at.strftime("%Y-%m-%dT%H:%M:%SZ")
            if as_json:
                typer.echo(json.dumps({
                    "changed_at": when, "action": change.action, "by": change.changed_by,
                    "before": change.before, "after": change.after}, ensure_ascii=False))
                continue
            keys = sorted(k for k in {*(change.before or {}), *(change.after or {})}
                          if (change.before or {}).get(k) != (change.after or {}).get(k))
            what = f": {', '.join(keys)}" if change.action == "edit" else ""
            typer.echo(f"{when}  {change.action}  by {change.changed_by}{what}")


@app.command("match")
def match_command(
    target: Annotated[str, typer.Option("--target", help="Target slug.")],
    file: Annotated[
        typer.FileText | None,
        typer.Argument(help="JSON Lines items (default: standard input)."),
    ] = None,
    catalogue: Annotated[
        str | None,
        typer.Option("--catalogue", help="Catalogue file to read the target from "
                     "(default: the shipped alerts/targets/catalogue.toml)."),
    ] = None,
) -> None:
    """Apply a target's rule to JSON Lines items; print {"id", "matched", "terms",
    "evidence"} per item.

    The rule is the target's entry in the catalogue file (alerts/targets/catalogue.toml,
    or --catalogue), else the target's in the database (targets added with `alerts
    targets add`). A bad line prints an error naming it on standard error and the
    others still run."""
    import json
    import sys

    from alerts.matching import DefinitionError, MatchInput, compile_rule

    definition, origin = _match_definition(target, Path(catalogue) if catalogue else None)
    try:
        rule = compile_rule(definition)
    except DefinitionError as exc:
        raise fail(f"target {target} in {origin}: {exc}") from None
    typer.echo(f"rule: {target} from {origin}", err=True)
    for number, line in enumerate(file or sys.stdin, start=1):
        if not line.strip():
            continue
        try:
            data = json.loads(line)
        except ValueError as exc:
            typer.echo(f"error: line {number}: not a JSON object: {exc}", err=True)
            continue
        try:
            result = rule.match(MatchInput.from_json(data))
        except ValueError as exc:
            typer.echo(f"error: line {number}: {exc}", err=True)
            continue
        typer.echo(json.dumps({
            "id": data.get("id"), "matched": result.matched,
            "terms": list(result.terms), "evidence": result.evidence,
        }, ensure_ascii=False))


def _match_definition(slug: str, catalogue: Path | None) -> tuple[dict[str, Any], str]:
    """A target's definition and where it came from: the catalogue file (what the target
    becomes at the next `alerts targets sync`, so an edit can be tried before it is
    synced), else the database for a target added there; exits when neither has it."""
    from alerts.matching import DefinitionError
    from alerts.matching.catalogue import CATALOGUE_FILE, load_definitions

    path = catalogue or CATALOGUE_FILE
    if catalogue is not None and not path.is_file():
        raise fail(f"no catalogue file {path}")
    try:
        definitions = load_definitions(path)
    except DefinitionError as exc:
        raise fail(str(exc)) from None
    if slug in definitions:
        return definitions[slug], str(path)
    stored = _stored_definition(slug)
    if stored is None:
        raise fail(f"unknown target {slug!r}: not in {path} nor in the database")
    return stored, "the database"


def _stored_definition(slug: str) -> dict[str, Any] | None:
    """The target's match terms in the configured database, if it is there to read:
    never creates or migrates a database (a fresh checkout has none)."""
    from alerts.targets.repository import by_slug

    try:
        settings = load_settings()
    except SettingsError:
        return None
    url = settings.database_url
    if url.startswith("sqlite:///") and not Path(url.removeprefix("sqlite:///")).is_file():
        return None
    engine = make_engine(url)
    try:
        if not is_current(engine):
            return None
        with transaction(make_sessionmaker(engine)) as session:
            found = by_slug(session, slug)
            return dict(found.match_terms) if found is not None else None
    except OperationalError:
        return None
    finally:
        engine.dispose()


@targets_app.command("sync")
def targets_sync(
    file: Annotated[
        Path | None,
        typer.Option("--file", help="Catalogue file (default: ALERTS_CATALOGUE_FILE, "
                     "else the shipped catalogue.toml)."),
    ] = None,
    reset: Annotated[
        list[str] | None,
        typer.Option("--reset", help="A target changed by hand (edited, added or removed) "
                     "that takes the file's entry again; repeatable."),
    ] = None,
) -> None:
    """Write the catalogue file into the database: targets added or updated by slug.

    Nothing is deleted: a target the file no longer lists is reported. A target whose
    rule changed is rematched at once (old items are never mailed as new). What the file
    changed since the last sync is applied; a change made by hand (`alerts targets
    add/edit/remove`, the admin API) is kept, with a warning when the file's entry
    changed too, until --reset SLUG."""
    settings = settings_or_exit()
    with migrated_engine(settings) as engine:
        for line in _sync_catalogue(engine, file or settings.catalogue_file, reset):
            typer.echo(line)


@targets_app.command("rematch")
def targets_rematch(
    slug: Annotated[str, typer.Argument(help="Target slug.")],
) -> None:
    """Decide the target's stored items again with its current rule, without refetching.

    Newly matched old items are linked without being mailed as new; newly rejected ones
    leave future digests, the items API and the pages."""
    from alerts.items.service import rematch
    from db.clock import utc_now

    settings = settings_or_exit()
    with migrated_engine(settings) as engine, transaction(make_sessionmaker(engine)) as session:
        try:
            counts = rematch(session, slug, now=utc_now())
        except AlertsError as exc:
            raise fail(_detail(exc)) from None
    typer.echo(
        f"{slug}: {counts.kept} kept, {counts.newly_matched} newly matched "
        f"({counts.backfilled} from the kept window), "
        f"{counts.newly_rejected} newly rejected ({counts.still_rejected} still rejected)"
    )


@feeds_app.command("add")
def feeds_add(
    url: Annotated[str, typer.Argument(help="The feed's http(s) URL.")],
    target: Annotated[
        str | None,
        typer.Option("--target", help="Target slug (default: the whole catalogue)."),
    ] = None,
) -> None:
    """Attach an RSS/Atom feed to a target, or without --target to the whole catalogue:
    fetched once per cycle and its entries matched against every target (an entry is
    kept for the targets it matches)."""
    from alerts.targets.service import add_feed

    settings = settings_or_exit()
    with migrated_engine(settings) as engine, transaction(make_sessionmaker(engine)) as session:
        try:
            feed = add_feed(session, target, url)
        except AlertsError as exc:
            raise fail(_detail(exc)) from None
        typer.echo(f"added feed {feed.url} to {target or 'the whole catalogue'}")


feedback_app = typer.Typer(help="Readers' verdicts on digest items.", no_args_is_help=True)
app.add_typer(feedback_app, name="feedback")


@feedback_app.command("export")
def feedback_export(
    target: Annotated[str | None, typer.Option("--target", help="Target slug.")] = None,
) -> None:
    """Print readers' "not relevant" labels as evaluation cases, one JSON line each
    (`make eval EXTRA=file` takes them in)."""
    import json

    from alerts.feedback.service import evaluation_cases

    settings = settings_or_exit()
    with migrated_engine(settings) as engine, transaction(make_sessionmaker(engine)) as session:
        try:
            for case in evaluation_cases(session, target=target):
                typer.echo(json.dumps(case, ensure_ascii=False))
        except AlertsError as exc:
            raise fail(_detail(exc)) from None


def main() -> None:
    app()


if __name__ == "__main__":
    main()
