"""The shared reading helpers: sentences, the inclusion part of eligibility criteria, and
the spellings a name is looked for in."""

from __future__ import annotations

import pytest

from alerts.matching.language import inclusion_part, sentences
from alerts.matching.lexicon import GENE, VARIANT, Lexicon, spellings


def split(text: str) -> list[str]:
    return [text[s:e] for s, e in sentences(text)]


def test_sentences_end_at_full_stops_and_lines_not_at_abbreviations_or_colons() -> None:
    text = ("BACKGROUND: HER2 (e.g. ERBB2) vs. EGFR in Fig. 2. Two cohorts, i.e. A and B. "
            "METHODS: We used p. A775_G776insYVMA et al. 3.5 mg.\n- Line two")
    assert split(text) == [
        "BACKGROUND: HER2 (e.g. ERBB2) vs. EGFR in Fig. 2.",
        "Two cohorts, i.e. A and B.",
        "METHODS: We used p. A775_G776insYVMA et al. 3.5 mg.",
        "- Line two",
    ]
    assert split("Exon 20 insertions in NSCLC: the HER2 story") == [
        "Exon 20 insertions in NSCLC: the HER2 story"]


@pytest.mark.parametrize(
    "heading",
    ["Exclusion Criteria:", "Key Exclusion Criteria:", "EXCLUSION CRITERIA",
     "exclusion criteria -"],
)
def test_the_inclusion_part_stops_at_the_exclusion_heading(heading: str) -> None:
    text = f"Inclusion Criteria:\n- HER2 exon 20\n{heading}\n- EGFR"
    assert inclusion_part(text) == "Inclusion Criteria:\n- HER2 exon 20\n"
    assert inclusion_part("- NSCLC\n- ECOG 0-1") == "- NSCLC\n- ECOG 0-1"


def test_a_name_is_looked_for_in_its_spellings() -> None:
    assert spellings("BI 1810631") == {"bi 1810631", "bi-1810631", "bi1810631"}
    assert spellings("exon 20") == {"exon 20", "exon-20", "exon20"}
    assert {"her2", "her-2", "her 2"} == spellings("HER2")
    assert len(spellings("a b c d e f g h")) == 3  # too many gaps: uniform spellings only


def test_hits_respect_word_boundaries_plurals_case_and_dashes() -> None:
    lexicon = Lexicon()
    exon = lexicon.add(VARIANT, "exon 20 insertion")
    met = lexicon.add(GENE, "MET")
    lexicon.build()
    text = "MET exon 20 insertions, met, METro, exon\u201120 insertion, xexon 20 insertion"
    found = [(text[h.start:h.end], h.term) for h in lexicon.find(text)]
    assert found == [("MET", met), ("exon 20 insertions", exon),
                     ("exon\u201120 insertion", exon)]
