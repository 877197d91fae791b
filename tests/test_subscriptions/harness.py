"""A running app over a database of the test's own and a real SMTP server (aiosmtpd),
with helpers to read what was mailed and follow its links. Shared by the subscription
and web tests through their conftest files."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from email.message import EmailMessage
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session, sessionmaker

from alerts.app import create_app
from alerts.config import Settings
from alerts.mail.smtp import SmtpMailer
from db.models import Alert, Item, ItemTarget, OutboundMail, Subscriber, Target
from db.session import transaction
from tests.conftest import make_settings
from tests.fakes.smtp import SmtpServer

ADMIN_TOKEN = "admin-token-for-tests-0123456789"
SLUG = "her2-exon20"


@dataclass
class Harness:
    client: TestClient
    settings: Settings
    smtp: SmtpServer
    engine: Engine
    session_factory: sessionmaker[Session]

    # --- mail -----------------------------------------------------------------------

    def mails(self, to: str | None = None) -> list[EmailMessage]:
        handler = self.smtp.handler
        return handler.to(to) if to else handler.messages()

    def only_mail(self, to: str) -> EmailMessage:
        mails = self.mails(to)
        assert len(mails) == 1, [str(m["Subject"]) for m in mails]
        return mails[0]

    # --- database -------------------------------------------------------------------

    def db(self) -> Any:
        return transaction(self.session_factory)

    def alerts(self, email: str) -> list[Alert]:
        with self.db() as session:
            return list(session.scalars(
                select(Alert).join(Subscriber).where(Subscriber.email == email)
                .order_by(Alert.id)
            ))

    def statuses(self, email: str) -> list[str]:
        return [a.status for a in self.alerts(email)]

    def subscriber(self, email: str) -> Subscriber | None:
        with self.db() as session:
            return session.scalars(
                select(Subscriber).where(Subscriber.email == email)
            ).one_or_none()

    def outbound(self) -> list[OutboundMail]:
        with self.db() as session:
            return list(session.scalars(select(OutboundMail).order_by(OutboundMail.id)))

    def add_target(self, slug: str, name: str, description: str = "") -> int:
        with self.db() as session:
            target = Target(slug=slug, name=name, description=description,
                            match_terms={"genes": [], "mutations": [], "drugs": []})
            session.add(target)
            session.flush()
            return target.id

    def target_id(self, slug: str = SLUG) -> int:
        with self.db() as session:
            return session.scalars(select(Target.id).where(Target.slug == slug)).one()

    def add_item(self, title: str, *, external_id: str, url: str, slug: str = SLUG,
                 source: str = "pubmed", published: datetime | None = None) -> None:
        target_id = self.target_id(slug)
        with self.db() as session:
            item = Item(source=source, external_id=external_id, kind="publication",
                        title=title, url=url,
                        published_at=published or datetime(2026, 1, 5, tzinfo=UTC))
            session.add(item)
            session.flush()
            session.add(ItemTarget(item_id=item.id, target_id=target_id, matched_terms=[]))

    # --- flows ----------------------------------------------------------------------

    def api_subscribe(self, email: str, target: str = SLUG, *, token: str | None = None,
                      **fields: Any) -> Any:
        body = {"email": email, "target": target, "frequency": "daily", **fields}
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return self.client.post("/api/v1/alerts", json=body, headers=headers)

    def confirm_by_mail(self, email: str) -> Any:
        """Open the link of the latest confirmation mail to `email` and press Confirm."""
        mail = [m for m in self.mails(email) if str(m["Subject"]).startswith("Confirm")][-1]
        return self.confirm(relative(link_in(mail, "/confirm?token=")))

    def confirm(self, link: str) -> Any:
        """GET a confirmation link (a page with a button), then POST its form."""
        page = self.client.get(link)
        assert page.status_code == 200, page.text
        return self.client.post(link, data={"csrf_token": csrf_field(page.text)})

    def verified_subscriber(self, email: str, target: str = SLUG) -> None:
        """An address with one active alert, confirmed the way a person does it."""
        assert self.api_subscribe(email, target).status_code == 202
        assert self.confirm_by_mail(email).status_code == 200

    def personal_token(self, email: str) -> str:
        before = len(self.mails(email))
        assert self.client.post("/api/v1/tokens", json={"email": email}).status_code == 202
        mails = self.mails(email)
        assert len(mails) == before + 1
        return token_in(mails[-1])


def csrf_field(html: str) -> str:
    match = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert match, "no CSRF field in the page"
    return match.group(1)


def text_of(mail: EmailMessage) -> str:
    part = mail.get_body(preferencelist=("plain",))
    assert part is not None
    return str(part.get_content())


def html_of(mail: EmailMessage) -> str:
    part = mail.get_body(preferencelist=("html",))
    assert part is not None
    return str(part.get_content())


def link_in(mail: EmailMessage, marker: str) -> str:
    links = re.findall(r"https?://\S+", text_of(mail))
    matching = [link for link in links if marker in link]
    assert matching, f"no link with {marker!r} in {links}"
    return matching[0]


def relative(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.path}?{parts.query}" if parts.query else parts.path


def token_of(url: str) -> str:
    return parse_qs(urlsplit(url).query)["token"][0]


def token_in(mail: EmailMessage) -> str:
    """The line after `Your API token:` in the text part (blank lines skipped)."""
    lines = text_of(mail).splitlines()
    start = lines.index("Your API token:")
    return next(line.strip() for line in lines[start + 1:] if line.strip())


def _running(
    engine: Engine,
    session_factory: sessionmaker[Session],
    smtp_server: SmtpServer,
    tmp_path: Path,
    database_url: str,
) -> Iterator[Harness]:
    settings = make_settings(tmp_path, database_url, admin_token=ADMIN_TOKEN)
    app = create_app(
        settings, engine=engine, session_factory=session_factory,
        mailer=SmtpMailer(host="127.0.0.1", port=smtp_server.port, timeout=5),
    )
    with TestClient(app, base_url="http://alerts.test", follow_redirects=False) as client:
        yield Harness(client, settings, smtp_server, engine, session_factory)


@pytest.fixture
def harness(
    engine: Engine,
    session_factory: sessionmaker[Session],
    template_url: str,
    smtp_server: SmtpServer,
    tmp_path: Path,
) -> Iterator[Harness]:
    """The app inside the test's rolled-back transaction: every request's commit is a
    savepoint, so nothing outlives the test (and no database is created per test)."""
    yield from _running(engine, session_factory, smtp_server, tmp_path, template_url)


@pytest.fixture
def isolated_harness(
    isolated: tuple[Engine, sessionmaker[Session]],
    db_url: str,
    smtp_server: SmtpServer,
    tmp_path: Path,
) -> Iterator[Harness]:
    """The app over a database of the test's own, for tests with concurrent writers."""
    engine, session_factory = isolated
    yield from _running(engine, session_factory, smtp_server, tmp_path, db_url)
