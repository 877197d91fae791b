"""/dev/mailbox: the development mailbox in the browser, only without SMTP."""

from __future__ import annotations

import html
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from alerts.app import create_app
from alerts.config import Settings
from tests.conftest import make_settings
from tests.test_subscriptions.harness import SLUG


@pytest.fixture
def local(
    engine: Engine, session_factory: sessionmaker[Session], template_url: str, tmp_path: Path
) -> Iterator[tuple[TestClient, Settings]]:
    """The app of a laptop: no SMTP host, so mail lands in var/mailbox/."""
    settings = make_settings(tmp_path, template_url)
    app = create_app(settings, engine=engine, session_factory=session_factory)
    with TestClient(app, base_url="http://alerts.test") as client:
        yield client, settings


def _subscribe(client: TestClient, email: str) -> None:
    response = client.post("/api/v1/alerts",
                           json={"email": email, "target": SLUG, "frequency": "daily"})
    assert response.status_code == 202


def test_the_mailbox_lists_messages_newest_first(local: tuple[TestClient, Settings]) -> None:
    client, settings = local
    _subscribe(client, "first@example.org")
    _subscribe(client, "second@example.org")

    page = client.get("/dev/mailbox")

    assert page.status_code == 200
    assert len(list(settings.mailbox_dir.glob("*.eml"))) == 2
    assert page.text.index("second@example.org") < page.text.index("first@example.org")
    assert page.text.count("Confirm your alert: HER2 (ERBB2) exon 20") == 2


def test_a_message_is_shown_safely_and_its_link_can_be_followed(
    local: tuple[TestClient, Settings],
) -> None:
    client, settings = local
    _subscribe(client, "ann@example.org")
    [name] = [p.name for p in settings.mailbox_dir.glob("*.eml")]

    page = client.get(f"/dev/mailbox/{name}")

    assert page.status_code == 200
    srcdoc = re.search(r'<iframe [^>]*sandbox="[^"]*"[^>]*srcdoc="([^"]*)"', page.text)
    assert srcdoc, "the HTML part is not in a sandboxed iframe"
    assert srcdoc.group(1).startswith("&lt;!DOCTYPE html&gt;")  # escaped, not injected
    assert "<th scope=\"row\">Subject</th>" in page.text
    link = re.search(r'<a href="(http://alerts\.test/confirm\?token=[^"]+)">', page.text)
    assert link, "the confirmation link in the text part is not clickable"
    button = client.get(html.unescape(link.group(1)).removeprefix("http://alerts.test"))
    assert button.status_code == 200 and "<button type=\"submit\">Confirm</button>" in button.text


@pytest.mark.parametrize(
    "name",
    ["..", "..%2Fsecret.eml", "%2e%2e%2fsecret.eml", "..%5Csecret.eml", "secret.txt",
     ".hidden.eml", "missing.eml", "link.eml"],
)
def test_only_files_in_the_mailbox_are_shown(
    local: tuple[TestClient, Settings], name: str
) -> None:
    client, settings = local
    settings.mailbox_dir.mkdir(parents=True)
    secret = settings.var_dir / "secret.eml"
    secret.write_text("Subject: outside the mailbox\n\nsecret")
    (settings.mailbox_dir / ".hidden.eml").write_text("Subject: hidden\n\nhidden")
    (settings.mailbox_dir / "link.eml").symlink_to(secret)

    response = client.get(f"/dev/mailbox/{name}")

    assert response.status_code == 404
    assert "secret" not in response.text.replace("secret.eml", "")


@pytest.mark.parametrize("path", ["/dev/mailbox", "/dev/mailbox/anything.eml"])
def test_there_is_no_mailbox_with_smtp(
    engine: Engine, session_factory: sessionmaker[Session], template_url: str, tmp_path: Path,
    path: str,
) -> None:
    settings = make_settings(tmp_path, template_url, smtp_host="127.0.0.1")
    settings.mailbox_dir.mkdir(parents=True)
    (settings.mailbox_dir / "anything.eml").write_text("Subject: old\n\nold")
    app = create_app(settings, engine=engine, session_factory=session_factory)
    with TestClient(app) as client:
        assert client.get(path).status_code == 404
