"""Each digest item carries its reader's "not relevant" link: followed from the mail as
it arrives, it records the label for that item and target, once, for that reader."""

from __future__ import annotations

import re
from datetime import timedelta

from fastapi.testclient import TestClient
from sqlalchemy import select

from alerts.app import create_app
from db.models import ReaderLabel
from tests.test_digests.conftest import Post, readers_with_news
from tests.test_digests.factories import T0


def _feedback_links(text: str) -> list[str]:
    return re.findall(r"http://alerts\.test(/feedback\?token=[\w.-]+&event=\d+)", text)


def test_the_link_in_each_mailed_item_records_that_readers_label(post: Post) -> None:
    readers_with_news(post, ["ann@example.org", "bob@example.org"])
    post.send(T0 + timedelta(hours=8))
    ann, bob = (post.mails(a)[0] for a in ("ann@example.org", "bob@example.org"))
    text_part = ann.get_body(preferencelist=("plain",))
    html_part = ann.get_body(preferencelist=("html",))
    assert text_part is not None and html_part is not None
    [link] = _feedback_links(str(text_part.get_content()))
    assert link.replace("&", "&amp;") in str(html_part.get_content())
    [bobs] = _feedback_links(str(bob.get_body(preferencelist=("plain",)).get_content()))
    assert bobs != link  # each reader's own token

    client = TestClient(create_app(post.settings, engine=post.engine,
                                   session_factory=post.session_factory))
    assert "Not relevant</button>" in client.get(link).text
    assert client.post(link).status_code == 200
    assert client.post(link).status_code == 200

    labels = post.query(lambda s: s.scalars(select(ReaderLabel)).all())
    assert [(label.label, label.subscriber_id is not None) for label in labels] == [
        ("not_relevant", True)]
