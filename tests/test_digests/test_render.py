"""How a digest reads: golden text and HTML for a fixed dataset, escaping, headers, and
the message structure. Regenerate the golden files (and docs/sample-digest.*) with
`UPDATE_GOLDEN=1 pytest tests/test_digests/test_render.py` and review the diff."""

from __future__ import annotations

import os
import re
from datetime import UTC, datetime
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from alerts.config import Settings
from alerts.digests.delivery.render import render_digest
from alerts.digests.views import load_views
from db.clock import frozen_clock
from db.models import Digest, Target
from tests.planning import plan_due
from tests.test_digests.factories import Factory

ROOT = Path(__file__).resolve().parents[2]
GOLDEN = ROOT / "tests" / "data" / "golden"
DOCS = ROOT / "docs"
UPDATE = os.environ.get("UPDATE_GOLDEN") == "1"

ACTIVATED = datetime(2026, 4, 27, 9, 0, tzinfo=UTC)
SLOT = datetime(2026, 5, 4, 8, 0, tzinfo=UTC)  # a Monday
RENDERED_AT = datetime(2026, 5, 4, 8, 0, 7, tzinfo=UTC)
SUBSCRIBER_ID = 4242
NEWS_TITLE = 'FDA grants <script>alert("x")</script> priority review & breakthrough status'
NEWS_SUMMARY = ("The agency accepted the <b>application</b> for zongertinib in previously "
                "treated HER2-mutant & advanced NSCLC.")
HEADERS = ("From", "To", "Subject", "Date", "Message-ID", "List-Unsubscribe",
           "List-Unsubscribe-Post")


def d(text: str) -> datetime:
    return datetime.fromisoformat(text).astimezone(UTC)


def marked(field_name: str, text: str, *words: str) -> tuple[str, str, list[list[int]]]:
    """Evidence as the match rule records it: (field, text, spans of `words` in it)."""
    spans = []
    for word in words:
        start = text.index(word)
        spans.append([start, start + len(word)])
    return field_name, text, sorted(spans)


BEAMION_LUNG_1_ABSTRACT = (
    "Background: HER2 (ERBB2) mutations occur in 2 to 4% of non-small-cell lung cancers. "
    "Methods: In this phase 1b study, patients with previously treated advanced NSCLC "
    "received oral therapy once daily. Results: Among 75 patients with HER2 tyrosine "
    "kinase domain mutations, most of them exon 20 insertions such as A775_G776insYVMA, "
    "zongertinib at 120 mg achieved an objective response in 71%. Grade 3 or higher "
    "treatment-related adverse events occurred in 17%."
)


def sample_dataset(make: Factory) -> None:
    """Two targets in one weekly digest: HER2 exon 20 with a new trial, a trial update,
    publications and a news item whose title carries markup; KRAS G12C capped at two."""
    her2 = make.session.scalars(select(Target).where(Target.slug == "her2-exon20")).one()
    kras = make.target("kras-g12c", "KRAS G12C")
    reader = make.subscriber("reader@example.org", id=SUBSCRIBER_ID)
    make.alert(reader, her2, frequency="weekly", weekday="monday", send_hour=10,
               timezone="Europe/Berlin", activated_at=ACTIVATED)
    make.alert(reader, kras, frequency="weekly", weekday="monday", send_hour=8,
               activated_at=ACTIVATED, max_items=2)

    beamion_lung_2 = ("Zongertinib vs standard of care as first-line treatment of HER2 "
                      "exon 20 insertion NSCLC (Beamion LUNG-2)")
    trial = make.item(
        "trial", external_id="NCT06151574", published_at=d("2026-04-29T00:00:00Z"),
        title=beamion_lung_2,
        data={"phases": ["PHASE3"], "overall_status": "RECRUITING",
              "lead_sponsor": "Boehringer Ingelheim"})
    make.event(trial, her2, at=d("2026-04-29T06:10:00Z"),
               matched=["Zongertinib", "HER2 exon 20 insertion"],
               evidence=marked("title", beamion_lung_2, "Zongertinib", "HER2 exon 20 insertion"))
    updated = make.item(
        "trial", external_id="NCT05099172", published_at=d("2021-11-03T00:00:00Z"),
        title="Sevabertinib (BAY 2927088) in advanced NSCLC with HER2 mutations (SOHO-01)",
        data={"phases": ["PHASE1", "PHASE2"], "overall_status": "ACTIVE_NOT_RECRUITING",
              "lead_sponsor": "Bayer", "interventions": ["BAY 2927088", "Placebo"]})
    make.event(updated, her2, at=d("2026-05-01T06:10:00Z"), kind="updated",
               matched=["HER2", "exon 20 insertions", "BAY 2927088"],
               evidence=marked(
                   "eligibility", "Documented activating HER2 mutation, including exon 20 "
                   "insertions, in tumour tissue or blood", "HER2", "exon 20 insertions"),
               changes=[
                   {"field": "overall_status", "old": "RECRUITING",
                    "new": "ACTIVE_NOT_RECRUITING"},
                   {"field": "phases", "old": ["PHASE1"], "new": ["PHASE1", "PHASE2"]},
               ])
    structural = ("Structural basis of HER2 exon 20 YVMA insertion sensitivity to covalent "
                  "inhibitors")
    for pmid, day, title, authors, journal, evidence in (
        ("40211001", "2026-04-30", "Zongertinib in HER2-mutant NSCLC: updated Beamion LUNG-1 "
         "results", ["Heymach JV", "Opdam F", "Ruiter G"], "N Engl J Med",
         marked("summary", BEAMION_LUNG_1_ABSTRACT, "exon 20 insertions",
                "A775_G776insYVMA", "zongertinib")),
        ("40211002", "2026-05-02", structural, ["Okafor E"], "Nat Commun",
         marked("title", structural, "HER2 exon 20 YVMA insertion")),
    ):
        make.event(make.item("publication", external_id=pmid, title=title,
                             published_at=d(f"{day}T00:00:00Z"),
                             data={"authors": authors, "journal": journal,
                                   "journal_abbrev": journal, "pub_date": day[:4]}),
                   her2, at=d(f"{day}T05:00:00Z"), matched=["HER2", "exon 20"],
                   evidence=evidence)
    news = make.item("news", external_id="urn:news:1", title=NEWS_TITLE,
                     url="https://news.example.org/2026/05/fda-her2?a=1&b=2",
                     published_at=d("2026-05-03T14:00:00Z"),
                     data={"feed_title": "Oncology Wire"})
    make.event(news, her2, at=d("2026-05-03T15:00:00Z"), matched=["zongertinib"],
               evidence=marked("summary", NEWS_SUMMARY, "zongertinib"))

    for n in range(4):
        make.event(make.item("publication", external_id=f"4030000{n}",
                             title=f"KRAS G12C inhibitor resistance study {n + 1}",
                             published_at=d(f"2026-04-2{8 + n % 2}T00:00:00Z")),
                   kras, at=d(f"2026-05-0{n + 1}T04:00:00Z"), matched=["KRAS", "G12C"])

    make.source_state(her2, "pubmed", last_success_at=d("2026-05-04T06:00:00Z"),
                      warnings=["PubMed dropped phrase not found: 'BAY2927088'"])
    make.source_state(her2, "ctgov", last_success_at=d("2026-05-04T06:05:00Z"))
    make.source_state(her2, "rss", last_success_at=d("2026-05-01T06:00:00Z"),
                      consecutive_failures=4, last_error="HTTP 503 from news.example.org")
    make.source_state(kras, "pubmed", last_success_at=d("2026-05-04T06:00:00Z"))


def empty_dataset(make: Factory) -> None:
    her2 = make.session.scalars(select(Target).where(Target.slug == "her2-exon20")).one()
    reader = make.subscriber("quiet@example.org", id=SUBSCRIBER_ID)
    make.alert(reader, her2, frequency="weekly", weekday="monday", activated_at=ACTIVATED,
               send_when_empty=True)
    make.source_state(her2, "pubmed", last_success_at=d("2026-05-04T06:00:00Z"))


def render_sample(
    session: Session, session_factory: sessionmaker[Session], settings: Settings, build: object
) -> EmailMessage:
    build(Factory(session))  # type: ignore[operator]
    with frozen_clock(SLOT):
        plan_due(session_factory, settings, now=SLOT)
    digest_id = session.scalars(select(Digest.id).where(
        Digest.subscriber_id == SUBSCRIBER_ID)).one()
    [view] = load_views(session, settings, [digest_id])
    rendered = render_digest(view, settings, date=RENDERED_AT)
    return message_from_bytes(rendered.data, policy=policy.default)  # type: ignore[return-value]


def normalised(text: str) -> str:
    # Signed tokens carry a timestamp, and event ids depend on what the database handed
    # out before (PostgreSQL's sequences outlive rolled-back tests): each event is
    # numbered by where it first appears instead.
    text = re.sub(r"token=[\w.\-]+", "token=TOKEN", text.replace("\r\n", "\n"))
    events: dict[str, int] = {}
    return re.sub(r"event=(\d+)",
                  lambda m: f"event={events.setdefault(m.group(1), len(events) + 1)}", text)


def golden_text(mail: EmailMessage) -> str:
    head = "".join(f"{name}: {mail[name]}\n" for name in HEADERS)
    body = mail.get_body(preferencelist=("plain",))
    assert body is not None
    return normalised(head + "\n" + body.get_content())


def golden_html(mail: EmailMessage) -> str:
    body = mail.get_body(preferencelist=("html",))
    assert body is not None
    return normalised(body.get_content())


def check_golden(name: str, actual: str) -> None:
    path = GOLDEN / name
    if UPDATE:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(actual)
    assert path.read_text() == actual, f"{name} differs; UPDATE_GOLDEN=1 to regenerate"


@pytest.mark.parametrize(
    ("name", "build"),
    [("digest_two_targets", sample_dataset), ("digest_nothing_new", empty_dataset)],
)
def test_golden_digests(
    session: Session, session_factory: sessionmaker[Session], settings: Settings,
    name: str, build: object,
) -> None:
    mail = render_sample(session, session_factory, settings, build)
    text, html = golden_text(mail), golden_html(mail)
    check_golden(f"{name}.txt", text)
    check_golden(f"{name}.html", html)
    if name == "digest_two_targets":
        if UPDATE:
            (DOCS / "sample-digest.txt").write_text(text)
            (DOCS / "sample-digest.html").write_text(html)
        assert (DOCS / "sample-digest.txt").read_text() == text
        assert (DOCS / "sample-digest.html").read_text() == html


@pytest.fixture
def sample(
    session: Session, session_factory: sessionmaker[Session], settings: Settings
) -> EmailMessage:
    return render_sample(session, session_factory, settings, sample_dataset)


def test_untrusted_text_is_escaped_in_html_and_plain_in_text(sample: EmailMessage) -> None:
    html, text = golden_html(sample), golden_text(sample)
    assert NEWS_TITLE in text
    assert "<script>" not in html
    assert ("FDA grants &lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt; priority review "
            "&amp; breakthrough status") in html
    assert 'href="https://news.example.org/2026/05/fda-her2?a=1&amp;b=2"' in html
    # The evidence is escaped too, and only the matched words are marked.
    assert ("The agency accepted the &lt;b&gt;application&lt;/b&gt; for <strong style="
            '"background-color:#fff1a8;color:#1f2933;">zongertinib</strong> in previously '
            "treated HER2-mutant &amp; advanced NSCLC.") in html
    assert "The agency accepted the <b>application</b> for **zongertinib**" in text


def test_the_digest_has_the_parts_a_reader_expects(sample: EmailMessage) -> None:
    text = golden_text(sample)
    assert str(sample["Subject"]) == (
        "Target Alerts: 9 new items for HER2 (ERBB2) exon 20, KRAS G12C")
    assert "Overall status: RECRUITING -> ACTIVE_NOT_RECRUITING" in text
    assert "https://clinicaltrials.gov/study/NCT06151574" in text
    assert "https://pubmed.ncbi.nlm.nih.gov/40211001/" in text
    # Each item shows the evidence that matched, its words marked, and what it is.
    assert ('  Eligibility: "Documented activating **HER2** mutation, including **exon 20\n'
            '    insertions**, in tumour tissue or blood"') in text
    assert "  Heymach JV et al. | N Engl J Med | 2026" in text
    assert "  Phase 1/2 | Active, not recruiting | Bayer" in text
    assert "Matched: KRAS, G12C" in text  # a link recorded before evidence was
    assert ("2 more items for KRAS G12C:\n"
            "http://alerts.test/targets/kras-g12c/items?since=2026-05-01T04:00:00Z") in text
    assert "    RSS feeds: WARNING: failing, 4 checks in a row" in text
    assert "    PubMed: WARNING: PubMed dropped phrase not found: 'BAY2927088'" in text
    assert "Manage your alerts: http://alerts.test/manage?token=TOKEN" in text
    assert sample["Message-ID"] == f"<digest.{SUBSCRIBER_ID}.weekly.20260504T0800Z@alerts.test>"
    assert [p.get_content_type() for p in sample.iter_parts()] == ["text/plain", "text/html"]
