"""What the adapters parse for the match rule: PubMed keywords, MeSH headings and
substances; ClinicalTrials.gov keywords, interventions' other names and eligibility
(asked for in the `fields=` projection); a feed entry's teaser beside its content."""

from __future__ import annotations

import json
from pathlib import Path

from alerts.items.match_fields import match_input
from alerts.sources.ctgov import STUDY_FIELDS, parse_study
from alerts.sources.feedparse import parse_feed
from alerts.sources.pubmed import parse_efetch

DATA = Path(__file__).resolve().parents[1] / "data"


def test_pubmed_keeps_keywords_mesh_headings_and_substances() -> None:
    [item] = parse_efetch((DATA / "upstream/pubmed/efetch_her2_tdxd_32306807.xml").read_bytes())
    assert item.data["keywords"][:3] == ["Antibody–drug conjugate (ADC)", "DS-8201a", "DXd"]
    assert item.data["mesh"][:2] == ["Ado-Trastuzumab Emtansine", "Animals"]
    assert "trastuzumab deruxtecan" in item.data["substances"]
    read = match_input(item)
    assert "DS-8201a" in read.keywords
    assert {"Camptothecin", "trastuzumab deruxtecan"} <= set(read.mesh)  # headings + substances


def test_a_record_without_subject_terms_has_empty_lists() -> None:
    items = parse_efetch((DATA / "upstream/pubmed/efetch_2articles.xml").read_bytes())
    chromatium = [i for i in items if i.external_id == "9997"][0]
    assert chromatium.data["keywords"] == []
    assert chromatium.data["substances"] == ["Cytochrome c Group", "Flavins", "Heme", "Iron"]


def test_ctgov_asks_for_and_keeps_keywords_other_names_and_eligibility() -> None:
    assert {"Keyword", "InterventionOtherName", "EligibilityCriteria", "OfficialTitle",
            "Phase", "OverallStatus", "LeadSponsorName"} <= set(STUDY_FIELDS)
    study = json.loads(
        (DATA / "upstream/ctgov/study_NCT02210780_full_with_results.json").read_text())
    item = parse_study(study)
    assert item is not None
    assert item.data["intervention_other_names"] == ["REGN668", "SAR231893", "Dupixent"]
    assert item.data["eligibility"].startswith("Key Inclusion Criteria:")
    read = match_input(item)
    assert read.interventions == ("Dupilumab", "Placebo", "REGN668", "SAR231893", "Dupixent")
    assert read.eligibility == item.data["eligibility"]
    assert read.conditions == ("Atopic Dermatitis",)


def test_a_feed_entry_keeps_its_teaser_when_the_content_says_more() -> None:
    body = (b'<?xml version="1.0"?><rss version="2.0" '
            b'xmlns:content="http://purl.org/rss/1.0/modules/content/"><channel><title>N'
            b"</title><link>https://n.example/</link><item><title>T</title>"
            b"<link>https://n.example/1</link><description>Short teaser.</description>"
            b"<content:encoded><![CDATA[<p>The full text.</p>]]></content:encoded></item>"
            b"<item><title>U</title><link>https://n.example/2</link>"
            b"<description>Only a summary.</description></item></channel></rss>")
    first, second = parse_feed(body, "https://n.example/feed").items
    assert (first.summary, first.data["teaser"]) == ("The full text.", "Short teaser.")
    assert match_input(first).summary == "The full text.\n\nShort teaser."
    assert "teaser" not in second.data and match_input(second).summary == "Only a summary."
