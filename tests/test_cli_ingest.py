"""The ingestion commands: `alerts poll`, `alerts backfill`, `alerts targets list|add`,
`alerts feeds add`: what they print, and one clear line (no traceback) when they cannot
do their job."""

from __future__ import annotations

import socket
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest
from click.testing import Result
from sqlalchemy import create_engine, inspect, select
from typer.testing import CliRunner

from alerts.cli import app
from alerts.sources.base import PollResult, SourceError, SourceName
from db.models import Feed, Target
from db.session import make_engine
from tests.fakes.adapters import FakeSource, article, install

SLUG = "her2-exon20"
Invoke = Callable[..., Result]


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture
def invoke(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, db_url: str) -> Invoke:
    """Run `alerts ...` in-process against the test's own database; the upstreams are a
    closed port unless a test installs fake adapters."""
    monkeypatch.chdir(tmp_path)  # no stray .env
    unreachable = f"http://127.0.0.1:{closed_port()}"
    for name, value in {
        "ALERTS_DATABASE_URL": db_url,
        "ALERTS_VAR_DIR": str(tmp_path / "var"),
        "ALERTS_PUBMED_BASE_URL": f"{unreachable}/entrez/eutils",
        "ALERTS_CTGOV_BASE_URL": f"{unreachable}/api/v2",
        "ALERTS_HTTP_MAX_RETRIES": "0",
    }.items():
        monkeypatch.setenv(name, value)

    def run(*args: str) -> Result:
        return CliRunner().invoke(app, list(args))

    return run


@pytest.fixture
def fakes(monkeypatch: pytest.MonkeyPatch) -> dict[SourceName, FakeSource]:
    sources = {
        SourceName.pubmed: FakeSource(SourceName.pubmed, {SLUG: [PollResult(
            items=[article("1", "Zongertinib in HER2 exon 20 insertion NSCLC"),
                   article("2", "Sevabertinib in HER2-mutant NSCLC")],
            cursor={"window_end": "2026-06-01"}, requests=2,
            warnings=['PubMed dropped the phrase "YVMA"'],
        )]}),
        SourceName.ctgov: FakeSource(SourceName.ctgov, {
            SLUG: [SourceError("ctgov studies: HTTP 400 bad query")],
            "*": [PollResult(items=[], cursor={"window_start": "2026-06-01"}, requests=1)],
        }),
        SourceName.rss: FakeSource(SourceName.rss, {}),
    }
    install(monkeypatch, *sources.values())
    return sources


def test_poll_prints_one_line_per_source_and_target(
    invoke: Invoke, fakes: dict[SourceName, FakeSource]
) -> None:
    outcome = invoke("poll")
    assert outcome.exit_code == 0, outcome.output
    # The whole catalogue first ("*": one search per source for every target), then
    # each target never polled on its own (its first history).
    assert outcome.stdout.splitlines() == [
        "pubmed  *            skipped: no query for this source",
        "ctgov   *            0 new, 0 updated  (1 request)",
        "rss     *            skipped: no feeds for this target",
        "pubmed  her2-exon20  2 new, 0 updated  (2 requests)",
        '  warning: PubMed dropped the phrase "YVMA"',
        "ctgov   her2-exon20  failed: ctgov studies: HTTP 400 bad query",
        "rss     her2-exon20  skipped: no feeds for this target",
    ]


def test_poll_polls_a_target_on_its_own_only_for_its_first_history(
    invoke: Invoke, fakes: dict[SourceName, FakeSource]
) -> None:
    invoke("poll")
    outcome = invoke("poll")
    assert outcome.exit_code == 0, outcome.output
    lines = outcome.stdout.splitlines()
    assert "pubmed  her2-exon20  2 new, 0 updated  (2 requests)" not in lines  # done
    assert "ctgov   her2-exon20  failed: ctgov studies: HTTP 400 bad query" in lines  # not yet


def test_poll_again_reports_nothing_new(
    invoke: Invoke, fakes: dict[SourceName, FakeSource]
) -> None:
    invoke("poll", "--source", "pubmed")
    outcome = invoke("poll", "--source", "pubmed", "--target", SLUG)
    assert outcome.exit_code == 0
    assert outcome.stdout.splitlines()[0] == "pubmed  her2-exon20  0 new, 0 updated  (2 requests)"


def test_poll_names_unreachable_upstreams_and_still_succeeds(invoke: Invoke) -> None:
    outcome = invoke("poll", "--source", "pubmed")
    assert outcome.exit_code == 0
    everything, target = outcome.stdout.splitlines()
    assert everything.startswith("pubmed  *            failed: pubmed esearch: connection failed")
    assert target.startswith("pubmed  her2-exon20  failed: pubmed esearch: connection failed")
    assert "Traceback" not in outcome.output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["poll", "--source", "scopus"], "error: unknown source 'scopus': choose pubmed, "
                                         "ctgov or rss"),
        (["poll", "--target", "nope"], "error: unknown target 'nope'"),
        (["backfill", "--target", "nope", "--since", "2024-01-01"],
         "error: unknown target 'nope'"),
        (["backfill", "--target", SLUG, "--since", "01/02/2024"],
         "error: --since must be a date like 2024-01-31, not '01/02/2024'"),
        (["backfill", "--target", SLUG, "--since", "2999-01-01"],
         "error: --since 2999-01-01 is in the future"),
    ],
)
def test_bad_poll_arguments_fail_with_one_line(
    invoke: Invoke, fakes: dict[SourceName, FakeSource], args: list[str], message: str
) -> None:
    outcome = invoke(*args)
    assert outcome.exit_code == 1
    assert outcome.stderr.strip() == message
    assert all(not f.calls for f in fakes.values())


def test_a_backfill_that_fetches_nothing_prints_only_its_error(
    invoke: Invoke, fakes: dict[SourceName, FakeSource]
) -> None:
    outcome = invoke("backfill", "--target", "nope", "--since", "2024-01-01")
    assert outcome.exit_code == 1
    assert outcome.stderr == "error: unknown target 'nope'\n"  # no empty progress bar


def test_backfill_fetches_from_the_date_and_reports(
    invoke: Invoke, fakes: dict[SourceName, FakeSource]
) -> None:
    outcome = invoke("backfill", "--target", SLUG, "--since", "2024-01-01", "--source",
                     "pubmed")
    assert outcome.exit_code == 0, outcome.output
    assert outcome.stdout.splitlines()[0] == (
        "pubmed  her2-exon20  2 new, 0 updated  (2 requests)")
    [call] = fakes[SourceName.pubmed].calls
    assert (call.cursor, call.since) == ({}, datetime(2024, 1, 1, tzinfo=UTC))
    assert "pubmed items" in outcome.stderr  # the progress bar's row


def test_targets_add_then_list(invoke: Invoke, db_url: str) -> None:
    added = invoke(
        "targets", "add", "kras-g12c", "--name", "KRAS G12C", "--description", "KRAS",
        "--kind", "variant", "--pubmed-query", "KRAS G12C[tiab]", "--gene", "KRAS",
        "--variant-term", "G12C", "--drug", "sotorasib", "--drug", "adagrasib",
    )
    assert (added.exit_code, added.stdout) == (
        0, "added target kras-g12c; rematched: 0 kept, 0 newly matched, 0 newly rejected\n")
    listed = invoke("targets", "list")
    assert listed.exit_code == 0
    assert listed.stdout.splitlines() == [
        "her2-exon20  HER2 (ERBB2) exon 20  [pubmed, ctgov, 0 feeds]",
        "kras-g12c    KRAS G12C  [pubmed, 0 feeds]",
    ]
    engine = make_engine(db_url)
    with engine.connect() as connection:
        terms = connection.scalar(select(Target.match_terms).where(Target.slug == "kras-g12c"))
    engine.dispose()
    assert (terms["kind"], terms["genes"], terms["variant_terms"]) == (
        "variant", ["KRAS"], ["G12C"])
    assert [drug["name"] for drug in terms["drugs"]] == ["sotorasib", "adagrasib"]


@pytest.mark.parametrize(
    ("slug", "message"),
    [
        (SLUG, "error: target 'her2-exon20' already exists"),
        ("KRAS_G12C", "error: slug: 'KRAS_G12C' must match ^[a-z0-9][a-z0-9-]{1,62}$ "
                      "(lowercase letters, digits, hyphens)"),
    ],
)
def test_targets_add_refuses_a_taken_or_malformed_slug(
    invoke: Invoke, slug: str, message: str
) -> None:
    outcome = invoke("targets", "add", slug, "--name", "Another", "--description", "x",
                     "--kind", "protein", "--gene", "KRAS")
    assert outcome.exit_code == 1
    assert outcome.stderr.strip() == message


def test_feeds_add_attaches_a_feed(invoke: Invoke, db_url: str) -> None:
    outcome = invoke("feeds", "add", "https://news.example/her2.xml", "--target", SLUG)
    assert outcome.exit_code == 0
    assert outcome.stdout == "added feed https://news.example/her2.xml to her2-exon20\n"
    assert "1 feed]" in invoke("targets", "list").stdout
    assert _feed_urls(db_url) == ["https://news.example/her2.xml"]


def test_feeds_add_without_a_target_gives_the_feed_to_the_whole_catalogue(
    invoke: Invoke, db_url: str
) -> None:
    outcome = invoke("feeds", "add", "https://news.example/oncology.xml")
    assert outcome.exit_code == 0, outcome.output
    assert outcome.stdout == "added feed https://news.example/oncology.xml to the whole catalogue\n"
    again = invoke("feeds", "add", "https://news.example/oncology.xml")
    assert (again.exit_code, again.stderr.strip()) == (
        1, "error: the catalogue already has the feed https://news.example/oncology.xml")
    # The same URL may still belong to a target of its own.
    assert invoke("feeds", "add", "https://news.example/oncology.xml", "--target", SLUG
                  ).exit_code == 0
    assert _feed_urls(db_url) == ["https://news.example/oncology.xml"] * 2


@pytest.mark.parametrize(
    ("url", "target", "message"),
    [
        ("https://news.example/her2.xml", SLUG,
         "error: target 'her2-exon20' already has the feed https://news.example/her2.xml"),
        ("https://news.example/x.xml", "nope", "error: unknown target 'nope'"),
        ("ftp://news.example/x.xml", SLUG,
         "error: invalid url: must be an absolute http:// or https:// URL"),
        ("news.example/x.xml", SLUG,
         "error: invalid url: must be an absolute http:// or https:// URL"),
    ],
)
def test_feeds_add_refuses_bad_input_and_keeps_what_is_there(
    invoke: Invoke, db_url: str, url: str, target: str, message: str
) -> None:
    invoke("feeds", "add", "https://news.example/her2.xml", "--target", SLUG)
    outcome = invoke("feeds", "add", url, "--target", target)
    assert outcome.exit_code == 1
    assert outcome.stderr.strip() == message
    assert _feed_urls(db_url) == ["https://news.example/her2.xml"]


@pytest.mark.parametrize(
    "args",
    [
        ["poll"],
        ["backfill", "--target", SLUG, "--since", "2024-01-01"],
        ["targets", "list"],
        ["targets", "add", "kras-g12c", "--name", "KRAS", "--description", "x",
         "--kind", "protein", "--gene", "KRAS"],
        ["feeds", "add", "https://news.example/x.xml", "--target", SLUG],
        ["serve"],
        ["scheduler"],
    ],
)
def test_an_unmigrated_database_says_to_run_the_upgrade(
    invoke: Invoke, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, args: list[str]
) -> None:
    empty = tmp_path / "empty.db"
    monkeypatch.setenv("ALERTS_DATABASE_URL", f"sqlite:///{empty}")
    outcome = invoke(*args)
    assert outcome.exit_code == 1
    assert outcome.stderr.strip() == (
        "error: the database is not migrated: run `alerts db upgrade` first")
    engine = create_engine(f"sqlite:///{empty}")
    assert inspect(engine).get_table_names() == []  # nothing half-created
    engine.dispose()


@pytest.mark.parametrize(
    ("database", "message"),
    [
        ("postgresql", "error: cannot reach the database: connection failed: "),
        ("sqlite-under-a-file", "error: cannot create the database's directory "),
    ],
)
@pytest.mark.parametrize("args", [["db", "upgrade"], ["poll"], ["targets", "list"]])
def test_a_database_that_cannot_be_opened_is_one_line(
    invoke: Invoke, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, database: str,
    message: str, args: list[str],
) -> None:
    if database == "postgresql":
        url = f"postgresql+psycopg://postgres@127.0.0.1:{closed_port()}/alerts"
    else:
        (tmp_path / "a-file").write_text("")
        url = f"sqlite:///{tmp_path / 'a-file' / 'var' / 'alerts.db'}"
    monkeypatch.setenv("ALERTS_DATABASE_URL", url)
    outcome = invoke(*args)
    assert outcome.exit_code == 1
    [line] = outcome.stderr.splitlines()
    assert line.startswith(message)
    assert outcome.stdout == ""


def _feed_urls(db_url: str) -> list[str]:
    engine = make_engine(db_url)
    with engine.connect() as connection:
        urls = list(connection.scalars(select(Feed.url).order_by(Feed.id)))
    engine.dispose()
    return urls
