"""Sending digests exactly once, against a real SMTP server (aiosmtpd) and a database of
the test's own: due slots, no second digest for a period, temporary and permanent
refusals, dropped connections, expired leases, and two senders at once."""

from __future__ import annotations

import re
import threading
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select, update

from alerts.app import create_app
from alerts.digests import planning
from alerts.digests import repository as repo
from alerts.digests.delivery.send import send_due
from alerts.mail.base import MailConnection
from alerts.mail.smtp import SmtpMailer
from alerts.subscriptions.tokens import Purpose, read_token
from db.clock import frozen_clock
from db.models import Alert, Digest, Subscriber, Target
from db.session import make_engine, make_sessionmaker
from tests.fakes.smtp import free_port
from tests.planning import plan_due
from tests.test_digests.conftest import ADMIN_TOKEN, Post
from tests.test_digests.factories import T0

DAY = timedelta(days=1)
SLOT1 = datetime(2026, 5, 1, 8, 0, tzinfo=UTC)  # the first daily slot after T0


def at(hours: float) -> datetime:
    return T0 + timedelta(hours=hours)


def reader_with_news(post: Post, email: str = "reader@example.org", *, events: int = 1,
                     **alert: Any) -> int:
    """A subscriber with one daily 08:00 UTC alert and `events` publications found two
    hours after activation. Returns the alert id."""
    with post.seed() as make:
        target = make.target("her2-x", "HER2 exon 20")
        subscriber = make.subscriber(email)
        created = make.alert(subscriber, target, **alert)
        for n in range(events):
            make.event(make.item("publication", title=f"Paper {n}"), target, at=at(2 + n / 60))
        return created.id


def text_of(mail: EmailMessage) -> str:
    part = mail.get_body(preferencelist=("plain",))
    assert part is not None
    return part.get_content()  # type: ignore[no-any-return]


def html_of(mail: EmailMessage) -> str:
    part = mail.get_body(preferencelist=("html",))
    assert part is not None
    return part.get_content()  # type: ignore[no-any-return]


def test_a_due_digest_goes_out_once(post: Post) -> None:
    reader_with_news(post, events=2)
    first = post.send(SLOT1 + timedelta(minutes=5))
    assert (first.planned, first.sent, first.addresses, first.pending) == (1, 1, 1, 0)
    [mail] = post.mails("reader@example.org")
    assert str(mail["Subject"]) == "HER2 exon 20: 2 publications"

    # The same moment again, and later in the same period: nothing more.
    for now in (SLOT1 + timedelta(minutes=5), SLOT1 + timedelta(hours=12)):
        again = post.send(now)
        assert (again.planned, again.sent) == (0, 0)
    assert len(post.mails()) == 1
    [digest] = post.digests()
    assert (digest.status, digest.item_count) == ("sent", 2)
    assert digest.key == "1:daily:2026-05-01T08:00Z"


def test_nothing_is_delivered_twice_across_two_periods(post: Post) -> None:
    reader_with_news(post)
    post.send(SLOT1)
    with post.seed() as make:
        her2 = make.session.scalars(select(Target).where(Target.slug == "her2-x")).one()
        make.event(make.item("publication", title="Second day paper"), her2,
                   at=SLOT1 + timedelta(hours=3))
    post.send(SLOT1 + DAY)
    first, second = post.mails()
    assert "Paper 0" in text_of(first)
    assert "Paper 0" not in text_of(second)
    assert "Second day paper" in text_of(second)


def test_missed_slots_make_one_digest_with_everything_since_the_last(post: Post) -> None:
    with post.seed() as make:
        target = make.target("her2-x", "HER2 exon 20")
        make.alert(make.subscriber("reader@example.org"), target)
        for day in range(3):
            make.event(make.item("publication", title=f"Day {day} paper"), target,
                       at=SLOT1 + day * DAY + timedelta(hours=1))
    # Down for three days: back on day four, one digest, not three.
    report = post.send(SLOT1 + 3 * DAY + timedelta(hours=1))
    assert (report.planned, report.sent) == (1, 1)
    [mail] = post.mails()
    assert all(f"Day {day} paper" in text_of(mail) for day in range(3))
    assert [d.slot_at for d in post.digests()] == [SLOT1 + 3 * DAY]


def test_a_slot_before_activation_is_not_sent(post: Post) -> None:
    # Activated at 09:00, an hour after that day's slot: its first slot is the next day.
    reader_with_news(post, activated_at=SLOT1 - DAY + timedelta(hours=1))
    assert post.send(SLOT1 - DAY + timedelta(hours=2)).planned == 0
    assert post.mails() == []
    assert post.send(SLOT1).sent == 1


def test_alerts_sharing_a_slot_come_in_one_email_per_frequency(post: Post) -> None:
    with post.seed() as make:
        her2 = make.target("her2-x", "HER2 exon 20")
        kras = make.target("kras-g12c", "KRAS G12C")
        reader = make.subscriber("reader@example.org")
        # 08:00 UTC and 09:00 in London (summer time) are the same instant.
        make.alert(reader, her2)
        make.alert(reader, kras, send_hour=9, timezone="Europe/London")
        make.event(make.item("trial"), her2, at=at(2))
        make.event(make.item("publication"), her2, at=at(3))
        make.event(make.item("news"), kras, at=at(4))
        weekly = make.target("egfr", "EGFR exon 20")
        make.alert(reader, weekly, frequency="weekly", weekday="friday")
        make.event(make.item("publication"), weekly, at=at(5))
    report = post.send(SLOT1 + timedelta(hours=1))
    assert (report.planned, report.sent, report.addresses) == (2, 2, 1)
    subjects = sorted(str(m["Subject"]) for m in post.mails())
    assert subjects == [
        "EGFR exon 20: 1 publication",
        "Target Alerts: 3 new items for HER2 exon 20, KRAS G12C",
    ]
    combined = next(m for m in post.mails() if "KRAS" in str(m["Subject"]))
    text = text_of(combined)
    assert text.index("== HER2 exon 20 ==") < text.index("== KRAS G12C ==")


def test_empty_digests_are_recorded_not_sent_unless_asked(post: Post) -> None:
    with post.seed() as make:
        target = make.target("her2-x", "HER2 exon 20")
        make.alert(make.subscriber("quiet@example.org"), target)
        make.alert(make.subscriber("heartbeat@example.org"), target, send_when_empty=True)
    report = post.send(SLOT1)
    assert (report.planned, report.empty, report.sent) == (1, 1, 1)
    [mail] = post.mails()
    assert str(mail["To"]) == "heartbeat@example.org"
    assert str(mail["Subject"]) == "HER2 exon 20: nothing new today"
    assert "Nothing new since the last digest." in text_of(mail)
    assert sorted(d.status for d in post.digests()) == ["empty", "sent"]
    # The empty slot is done: not planned again.
    assert post.send(SLOT1 + timedelta(hours=2)).planned == 0


@pytest.mark.parametrize(
    "refuse",
    [
        pytest.param(lambda smtp: smtp.handler.fail_data.append("451 4.3.0 try again later"),
                     id="451 at DATA"),
        pytest.param(lambda smtp: smtp.handler.refuse_rcpt.update(
            {"reader@example.org": "451 4.2.0 mailbox busy"}), id="451 at RCPT"),
    ],
)
def test_a_temporary_refusal_is_delivered_exactly_once_on_the_next_run(
    post: Post, refuse: Any
) -> None:
    reader_with_news(post)
    refuse(post.smtp)
    first = post.send(SLOT1)
    assert (first.sent, first.deferred, first.pending, first.failed) == (0, 1, 1, 0)
    [digest] = post.digests()
    assert (digest.status, digest.attempts, digest.lease_owner) == ("pending", 1, None)
    assert "451" in (digest.last_error or "")

    post.smtp.handler.refuse_rcpt.clear()
    second = post.send(SLOT1 + timedelta(minutes=5))
    assert (second.planned, second.sent, second.pending) == (0, 1, 0)
    assert post.send(SLOT1 + timedelta(minutes=10)).sent == 0
    assert len(post.mails("reader@example.org")) == 1


class SpyMailer:
    """Records every message handed to the connection, accepted or not."""

    def __init__(self, inner: SmtpMailer) -> None:
        self.inner = inner
        self.attempts: list[bytes] = []

    def connect(self) -> Any:
        spy = self

        class _Connection:
            def __init__(self, connection: MailConnection) -> None:
                self.connection = connection

            def send(self, message: EmailMessage) -> None:  # pragma: no cover - unused
                self.connection.send(message)

            def send_raw(self, sender: str, recipients: list[str], data: bytes) -> None:
                spy.attempts.append(data)
                self.connection.send_raw(sender, recipients, data)

        @contextmanager
        def opened() -> Any:
            with self.inner.connect() as connection:
                yield _Connection(connection)

        return opened()


def _header(data: bytes, name: str) -> str:
    match = re.search(rf"^{name}: (.*)$", data.decode("ascii"), re.MULTILINE)
    assert match, name
    return match.group(1).rstrip("\r")


def test_a_retry_carries_the_same_message_id(post: Post) -> None:
    reader_with_news(post)
    spy = SpyMailer(post.mailer())
    post.smtp.handler.fail_data.append("451 4.3.0 try again later")
    post.send(SLOT1, mailer=spy)
    post.send(SLOT1 + timedelta(minutes=5), mailer=spy)
    first, second = spy.attempts
    assert _header(first, "Message-ID") == _header(second, "Message-ID") == (
        "<digest.1.daily.20260501T0800Z@alerts.test>"
    )
    assert str(post.mails()[0]["Message-ID"]) == _header(first, "Message-ID")


def test_a_permanent_refusal_fails_the_digest_and_bounces_the_address(post: Post) -> None:
    reader_with_news(post, "gone@example.org")
    with post.seed() as make:

        target = make.session.scalars(select(Target).where(Target.slug == "her2-x")).one()
        make.alert(make.subscriber("fine@example.org"), target)
    post.smtp.handler.refuse_rcpt["gone@example.org"] = "550 5.1.1 no such user"

    report = post.send(SLOT1)
    assert (report.sent, report.failed, report.pending) == (1, 1, 0)
    assert [str(m["To"]) for m in post.mails()] == ["fine@example.org"]
    gone = post.query(lambda s: s.scalars(
        select(Subscriber).where(Subscriber.email == "gone@example.org")).one())
    assert gone.mail_status == "bounced"
    assert "550" in (gone.mail_error or "")

    app = create_app(post.settings, engine=post.engine, session_factory=post.session_factory)
    with TestClient(app) as client:
        listed = client.get("/api/v1/digests", params={"status": "failed"},
                            headers={"Authorization": f"Bearer {ADMIN_TOKEN}"})
        assert listed.status_code == 200, listed.text
        [failed] = listed.json()["data"]
        assert (failed["email"], failed["status"], failed["mail_status"]) == (
            "gone@example.org", "failed", "bounced")
        assert "550" in failed["last_error"]
        assert client.get("/api/v1/digests").status_code == 401

    # Nothing more goes to a bounced address, the next day either.
    post.smtp.handler.refuse_rcpt.clear()
    post.send(SLOT1 + DAY)
    assert post.mails("gone@example.org") == []


def test_a_dropped_connection_loses_one_message_for_now_and_none_for_good(post: Post) -> None:
    with post.seed() as make:
        target = make.target("her2-x", "HER2 exon 20")
        for n in range(4):
            make.alert(make.subscriber(f"reader{n}@example.org"), target)
        make.event(make.item("publication"), target, at=at(2))
    post.smtp.handler.drop_data = 1  # the first message's connection dies at DATA
    first = post.send(SLOT1)
    assert (first.sent, first.deferred, first.pending) == (3, 1, 1)
    second = post.send(SLOT1 + timedelta(minutes=5))
    assert (second.sent, second.pending) == (1, 0)
    assert sorted(str(m["To"]) for m in post.mails()) == [
        f"reader{n}@example.org" for n in range(4)
    ]


def test_an_unreachable_server_stops_the_run_and_keeps_everything(post: Post) -> None:
    with post.seed() as make:
        target = make.target("her2-x", "HER2 exon 20")
        for n in range(8):
            make.alert(make.subscriber(f"reader{n}@example.org"), target)
        make.event(make.item("publication"), target, at=at(2))
    down = SmtpMailer(host="127.0.0.1", port=free_port(), timeout=2)
    report = post.send(SLOT1, mailer=down)
    assert report.error is not None and "took none of 5 messages in a row" in report.error
    assert (report.sent, report.pending) == (0, 8)
    assert all(d.lease_owner is None for d in post.digests())
    assert post.send(SLOT1 + timedelta(minutes=5)).sent == 8


def test_an_expired_lease_is_taken_over_and_a_sent_digest_never(post: Post) -> None:
    reader_with_news(post, "stuck@example.org")
    with post.seed() as make:

        target = make.session.scalars(select(Target).where(Target.slug == "her2-x")).one()
        make.alert(make.subscriber("done@example.org"), target)
    plan_due(post.session_factory, post.settings, now=SLOT1)
    lease = timedelta(seconds=post.settings.lease_seconds)
    with post.seed() as make:
        stuck, done = make.session.scalars(select(Digest.id).order_by(Digest.id)).all()
        # A sender claimed both and was killed after sending one of them.
        make.session.execute(update(Digest).values(lease_owner="killed",
                                                   lease_expires_at=SLOT1 + lease))
        make.session.execute(update(Digest).where(Digest.id == done).values(status="sent"))

    with frozen_clock(SLOT1 + lease / 2):
        assert post.send(SLOT1).sent == 0  # still held
    with frozen_clock(SLOT1 + lease + timedelta(seconds=1)):
        report = post.send(SLOT1)
    assert (report.sent, report.pending) == (1, 0)
    assert [str(m["To"]) for m in post.mails()] == ["stuck@example.org"]


def test_nothing_goes_to_an_alert_unsubscribed_after_planning(post: Post) -> None:
    with post.seed() as make:
        her2 = make.target("her2-x", "HER2 exon 20")
        kras = make.target("kras-g12c", "KRAS G12C")
        reader = make.subscriber("reader@example.org")
        kept = make.alert(reader, her2)
        ended = make.alert(reader, kras)
        make.event(make.item("publication", title="HER2 paper"), her2, at=at(2))
        make.event(make.item("publication", title="KRAS paper"), kras, at=at(2))
        only = make.alert(make.subscriber("only@example.org"), kras)
        kept_id, ended_id, only_id = kept.id, ended.id, only.id
    plan_due(post.session_factory, post.settings, now=SLOT1)
    with post.seed() as make:
        make.session.execute(update(Alert).where(Alert.id.in_([ended_id, only_id]))
                             .values(status="unsubscribed"))
    report = post.send(SLOT1)
    assert (report.sent, report.cancelled) == (1, 1)
    [mail] = post.mails()
    assert str(mail["Subject"]) == "HER2 exon 20: 1 publication"
    assert "KRAS" not in text_of(mail)
    assert kept_id in read_token(post.settings, Purpose.unsubscribe, _unsubscribe_token(mail))["a"]


def _unsubscribe_token(mail: EmailMessage) -> str:
    link = str(mail["List-Unsubscribe"]).strip("<>")
    return parse_qs(urlsplit(link).query)["token"][0]


def test_list_unsubscribe_is_one_line_and_ends_every_alert_of_the_digest(post: Post) -> None:
    with post.seed() as make:
        reader = make.subscriber("reader@example.org")
        alert_ids = []
        for slug in ("her2-x", "kras-g12c", "egfr"):
            target = make.target(slug, slug.upper())
            alert_ids.append(make.alert(reader, target).id)
            make.event(make.item("publication"), target, at=at(2))
    post.send(SLOT1)
    [received] = post.smtp.handler.received
    raw = received.data.decode("ascii")
    [line] = [ln for ln in raw.splitlines() if ln.startswith("List-Unsubscribe:")]
    assert re.fullmatch(r"List-Unsubscribe: <http://alerts\.test/unsubscribe\?token=[\w.\-]+>",
                        line)
    assert "List-Unsubscribe-Post: List-Unsubscribe=One-Click" in raw.splitlines()
    mail = received.message
    assert read_token(post.settings, Purpose.unsubscribe, _unsubscribe_token(mail)) == {
        "a": sorted(alert_ids)
    }
    # The body offers one link per alert, each ending only that one.
    links = re.findall(r"Unsubscribe from .*: (http\S+)", text_of(mail))
    decoded = sorted(
        read_token(post.settings, Purpose.unsubscribe,
                   parse_qs(urlsplit(link).query)["token"][0])["a"]
        for link in links
    )
    assert decoded == [[alert_id] for alert_id in sorted(alert_ids)]
    assert str(mail["From"]) == post.settings.mail_from
    assert mail["Date"] is not None

    # One-click (RFC 8058): what a mail client does with the header ends them all.
    link = urlsplit(str(mail["List-Unsubscribe"]).strip("<>"))
    app = create_app(post.settings, engine=post.engine, session_factory=post.session_factory)
    with TestClient(app) as client:
        response = client.post(f"{link.path}?{link.query}",
                               content="List-Unsubscribe=One-Click",
                               headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert response.status_code == 200
    statuses = post.query(lambda s: s.scalars(select(Alert.status)).all())
    assert statuses == ["unsubscribed"] * 3


def test_rendering_in_worker_processes_sends_the_same_mail(post: Post) -> None:
    with post.seed() as make:
        target = make.target("her2-x", "HER2 exon 20")
        for n in range(3):
            make.alert(make.subscriber(f"reader{n}@example.org"), target)
        make.event(make.item("trial", title="Pooled <trial> & co"), target, at=at(2))
    report = post.send(SLOT1, render_workers=1)
    assert (report.sent, report.addresses) == (3, 3)
    for mail in post.mails():
        assert "Pooled <trial> & co" in text_of(mail)
        assert "Pooled &lt;trial&gt; &amp; co" in html_of(mail)


@pytest.mark.parametrize("render_workers", [0, 1], ids=["inline", "worker process"])
def test_planning_in_chunks_interleaved_with_sending_misses_no_one(
    post: Post, monkeypatch: pytest.MonkeyPatch, render_workers: int
) -> None:
    """The first chunk is planned before sending starts, the others meanwhile (by the
    worker process when there is one): every subscriber still gets one digest."""
    monkeypatch.setattr(planning, "PLAN_CHUNK", 2)
    with post.seed() as make:
        target = make.target("her2-x", "HER2 exon 20")
        for n in range(5):
            make.alert(make.subscriber(f"reader{n}@example.org"), target)
        make.event(make.item("publication"), target, at=at(2))
    report = post.send(SLOT1, render_workers=render_workers)
    assert (report.planned, report.sent, report.pending) == (5, 5, 0)
    assert sorted(str(m["To"]) for m in post.mails()) == [
        f"reader{n}@example.org" for n in range(5)
    ]


def test_two_senders_at_once_send_every_digest_exactly_once(post: Post) -> None:
    with post.seed() as make:
        target = make.target("her2-x", "HER2 exon 20")
        for n in range(30):
            make.alert(make.subscriber(f"reader{n:02d}@example.org"), target)
        make.event(make.item("publication"), target, at=at(2))
    url = post.settings.database_url
    reports: list[Any] = []
    errors: list[BaseException] = []
    start = threading.Barrier(2)

    def sender(owner: str) -> None:
        engine = make_engine(url)
        try:
            start.wait()
            reports.append(send_due(make_sessionmaker(engine), post.settings, post.mailer(),
                                    now=SLOT1, owner=owner, render_workers=0))
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)
        finally:
            engine.dispose()

    threads = [threading.Thread(target=sender, args=(f"sender-{n}",)) for n in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert errors == []
    assert sum(r.sent for r in reports) == 30
    assert sum(r.planned for r in reports) == 30
    recipients = sorted(str(m["To"]) for m in post.mails())
    assert recipients == [f"reader{n:02d}@example.org" for n in range(30)]
    assert {d.status for d in post.digests()} == {"sent"}


def test_planning_the_same_slot_twice_makes_one_row(post: Post) -> None:
    reader_with_news(post)
    first = plan_due(post.session_factory, post.settings, now=SLOT1)
    second = plan_due(post.session_factory, post.settings, now=SLOT1 + timedelta(hours=1))
    assert (first.planned, second.planned) == (1, 0)
    assert len(post.digests()) == 1
    assert post.query(lambda s: repo.count_pending(s, None)) == 1
