"""Shared fixtures: a real database built by the migrations, on SQLite or (with
TEST_DATABASE_URL) PostgreSQL.

- `session`: one test's work inside a transaction that is rolled back afterwards.
- `db_url`: a database of the test's own (a copy of the migrated template), for code that
  opens and commits its own sessions: commands, jobs, concurrent processes.
"""

from __future__ import annotations

import dataclasses
import itertools
import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, create_engine, make_url, text
from sqlalchemy.orm import Session, sessionmaker

from alerts.config import Settings
from alerts.targets.catalogue import load_catalogue
from alerts.targets.sync import sync_catalogue
from db.clock import utc_now
from db.migrate import upgrade
from db.session import make_engine, make_sessionmaker, transaction
from tests.fakes.smtp import SmtpServer

DATA = Path(__file__).parent / "data"
TEST_DATABASE_URL = os.environ.get("TEST_DATABASE_URL", "")
ON_POSTGRES = TEST_DATABASE_URL.startswith("postgres")
TEST_SECRET = "test-secret-key-0123456789abcdef"

_counter = itertools.count()


def _pg_url(url: str) -> str:
    if url.startswith("postgresql://"):
        return "postgresql+psycopg://" + url.removeprefix("postgresql://")
    return url


def _pg_admin(url: str) -> Engine:
    return create_engine(
        make_url(url).set(database="postgres"), isolation_level="AUTOCOMMIT", poolclass=None
    )


#: The targets of the suite's databases: the shipped entries of these slugs. Tests speak of
#: one target unless they add others; the whole shipped catalogue is loaded and synced by
#: the tests of the catalogue itself (tests/test_targets).
SUITE_TARGETS = frozenset({"her2-exon20"})


def migrate_and_sync(engine: Engine) -> None:
    """What `alerts db upgrade` does, the migrations then the catalogue, with the shipped
    entries of SUITE_TARGETS."""
    upgrade(engine)
    shipped = load_catalogue()
    suite = dataclasses.replace(
        shipped, entries=tuple(e for e in shipped.entries if e.slug in SUITE_TARGETS)
    )
    with transaction(make_sessionmaker(engine)) as session:
        sync_catalogue(session, suite, now=utc_now())


@pytest.fixture(scope="session")
def template_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A migrated database that per-test databases are copied from."""
    if ON_POSTGRES:
        base = make_url(_pg_url(TEST_DATABASE_URL))
        name = f"{base.database}_tpl_{uuid.uuid4().hex[:8]}"
        admin = _pg_admin(str(base.render_as_string(hide_password=False)))
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
        url = base.set(database=name).render_as_string(hide_password=False)
        engine = make_engine(url)
        migrate_and_sync(engine)
        engine.dispose()
        yield url
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()
    else:
        path = tmp_path_factory.mktemp("template") / "template.db"
        engine = make_engine(f"sqlite:///{path}")
        migrate_and_sync(engine)
        engine.dispose()  # the last connection to close checkpoints the WAL into the file
        assert not path.with_name(path.name + "-wal").exists()
        yield f"sqlite:///{path}"


def _copy_database(template_url: str, suffix: str, directory: Path) -> str:
    """A new database holding a copy of the migrated template."""
    if ON_POSTGRES:
        base = make_url(template_url)
        name = f"{base.database.rsplit('_tpl_', 1)[0]}_{suffix}"
        admin = _pg_admin(template_url)
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            conn.execute(text(f'CREATE DATABASE "{name}" TEMPLATE "{base.database}"'))
        admin.dispose()
        return base.set(database=name).render_as_string(hide_password=False)
    path = directory / f"{suffix}.db"
    shutil.copyfile(Path(template_url.removeprefix("sqlite:///")), path)
    return f"sqlite:///{path}"


def _drop_database(url: str) -> None:
    if ON_POSTGRES:
        admin = _pg_admin(url)
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{make_url(url).database}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture
def db_url(template_url: str, tmp_path: Path) -> Iterator[str]:
    """A fresh migrated database of this test's own; dropped afterwards."""
    url = _copy_database(template_url, f"t{os.getpid()}_{next(_counter)}", tmp_path)
    yield url
    _drop_database(url)


@pytest.fixture(scope="session")
def shared_url(template_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The database of the rolled-back `session` tests (never committed to)."""
    url = _copy_database(template_url, f"shared{os.getpid()}", tmp_path_factory.mktemp("shared"))
    yield url
    _drop_database(url)


@pytest.fixture(scope="session")
def engine(shared_url: str) -> Iterator[Engine]:
    """The engine of the shared database; every `session` on it rolls back."""
    engine = make_engine(shared_url)
    yield engine
    engine.dispose()


@pytest.fixture
def session(engine: Engine) -> Iterator[Session]:
    """A session inside a transaction rolled back at the end; commits become savepoints."""
    connection = engine.connect()
    outer = connection.begin()
    session = Session(bind=connection, join_transaction_mode="create_savepoint",
                      expire_on_commit=False)
    try:
        yield session
    finally:
        session.close()
        outer.rollback()
        connection.close()


@pytest.fixture
def session_factory(session: Session) -> sessionmaker[Session]:
    """A factory whose sessions all join the test's rolled-back transaction."""
    return sessionmaker(bind=session.connection(), join_transaction_mode="create_savepoint",
                        expire_on_commit=False)


def make_settings(tmp_path: Path, database_url: str, **overrides: object) -> Settings:
    values: dict[str, object] = {
        "database_url": database_url,
        "var_dir": tmp_path / "var",
        "secret_key": TEST_SECRET,
        "public_url": "http://alerts.test",
        "pubmed_base_url": "http://pubmed.test/entrez/eutils",
        "ctgov_base_url": "http://ctgov.test/api/v2",
        "smtp_host": None,
    }
    values.update(overrides)
    return Settings(_env_file=None, **values)  # type: ignore[call-arg, arg-type]


@pytest.fixture
def settings(tmp_path: Path, shared_url: str) -> Settings:
    return make_settings(tmp_path, shared_url)


@pytest.fixture
def isolated(db_url: str) -> Iterator[tuple[Engine, sessionmaker[Session]]]:
    """Engine and session factory of a per-test database (real commits)."""
    engine = make_engine(db_url)
    yield engine, make_sessionmaker(engine)
    engine.dispose()


@pytest.fixture
def smtp_server() -> Iterator[SmtpServer]:
    """A real SMTP server on loopback that records every accepted message."""
    with SmtpServer() as server:
        yield server
