"""Fixtures for digest tests: factories on the rolled-back session, and a database of
the test's own with a real SMTP server for everything that sends (and commits)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session, sessionmaker

from alerts.config import Settings
from alerts.digests.delivery.send import SendReport, send_due
from alerts.mail.smtp import SmtpMailer
from db.models import Digest
from db.session import transaction
from tests.conftest import make_settings
from tests.fakes.smtp import SmtpServer
from tests.test_digests.factories import T0, Factory

ADMIN_TOKEN = "admin-token-for-digest-tests-0123"


@pytest.fixture
def factory(session: Session) -> Factory:
    return Factory(session)


@dataclass
class Post:
    """A database of the test's own, a real SMTP server, and one way to send."""

    settings: Settings
    engine: Engine
    session_factory: sessionmaker[Session]
    smtp: SmtpServer

    @contextmanager
    def seed(self) -> Iterator[Factory]:
        """Rows made in here are committed at the end of the block."""
        with transaction(self.session_factory) as session:
            yield Factory(session)

    def mailer(self) -> SmtpMailer:
        return SmtpMailer(host="127.0.0.1", port=self.smtp.port, timeout=5)

    def send(self, now: datetime, *, owner: str = "test", mailer: Any = None,
             **kwargs: Any) -> SendReport:
        return send_due(self.session_factory, self.settings, mailer or self.mailer(),
                        now=now, owner=owner, render_workers=kwargs.pop("render_workers", 0),
                        **kwargs)

    def mails(self, to: str | None = None) -> list[EmailMessage]:
        return self.smtp.handler.to(to) if to else self.smtp.handler.messages()

    def digests(self) -> list[Digest]:
        with transaction(self.session_factory) as session:
            return list(session.scalars(select(Digest).order_by(Digest.id)))

    def query(self, fn: Callable[[Session], Any]) -> Any:
        with transaction(self.session_factory) as session:
            return fn(session)


def readers_with_news(post: Post, addresses: list[str]) -> None:
    """A daily 08:00 UTC alert on one target for each address, and a publication for
    them an hour after T0 (due in the slot of 2026-05-01 08:00 UTC)."""
    with post.seed() as make:
        target = make.target("her2-x", "HER2 exon 20")
        for address in addresses:
            make.alert(make.subscriber(address), target)
        make.event(make.item("publication"), target, at=T0 + timedelta(hours=1))


@pytest.fixture
def post(
    tmp_path: Path, db_url: str, isolated: tuple[Engine, sessionmaker[Session]],
    smtp_server: SmtpServer,
) -> Post:
    engine, factory = isolated
    settings = make_settings(tmp_path, db_url, smtp_host="127.0.0.1", smtp_port=smtp_server.port,
                             admin_token=ADMIN_TOKEN)
    return Post(settings, engine, factory, smtp_server)
