"""The reading rules every catalogue target shares, one short case each, on small
definitions written here (the shipped catalogue is measured by `make eval`)."""

from __future__ import annotations

from typing import Any

import pytest

from alerts.matching import MatchInput, compile_rule

HER2_PROTEIN = {"kind": "protein", "genes": ["HER2", "ERBB2"], "positive_status_counts": True}
ALK = {"kind": "fusion", "genes": ["ALK"], "positive_status_counts": True,
       "variant_terms": ["fusion", "rearrangement", "EML4-ALK"],
       "variant_patterns": [r"(?-i:\b[A-Z][A-Z0-9]{1,9}(?:-|::)ALK\b)"]}
HER2_EX20 = {"kind": "variant", "genes": ["HER2", "ERBB2"],
             "variant_terms": ["exon 20 insertion", "exon 20"]}
CMET = {"kind": "protein", "genes": ["MET", "c-Met"], "positive_status_counts": True,
        "variant_terms": ["amplification", "overexpression"]}
MENIN = {"kind": "pathway", "genes": ["menin", "MEN1"],
         "variant_terms": ["menin inhibitor", "inhibitor", "leukaemia"]}
CD19 = {"kind": "protein", "genes": ["CD19"], "positive_status_counts": True,
        "drugs": [{"name": "tisagenlecleucel"}]}
PD1 = {"kind": "protein", "genes": ["PD-1", "PD1"], "positive_status_counts": True}
RET = {"kind": "fusion", "genes": ["RET"], "variant_terms": ["fusion", "mutation"]}
C797S = {"kind": "variant", "genes": ["EGFR"], "variant_terms": ["C797S", "exon 20"]}
BRAF = {"kind": "variant", "genes": ["BRAF", "BRAFV600E"], "variant_terms": ["V600E", "BRAFV600E"]}
PARP = {"kind": "variant", "genes": ["BRCA1"], "variant_terms": ["mutation"],
        "drugs": [{"name": "niraparib"}]}


def matched(definition: dict[str, Any], text: str, summary: str = "") -> bool:
    item = MatchInput("pubmed", title=text, summary=summary)
    return compile_rule(definition).match(item).matched


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("HER2-positive gastric cancer", True),
        ("HR+/HER2- metastatic breast cancer", False),  # a minus sign is a negative status
        ("HER2-zero breast cancer", False),
        ("anti-HER2 therapy", True),
    ],
)
def test_a_protein_target_reads_the_sign_of_its_status(text: str, expected: bool) -> None:
    assert matched(HER2_PROTEIN, text) is expected


def test_a_protein_targets_drug_class_names_it() -> None:
    assert matched(HER2_PROTEIN, "HER2 inhibitors in breast cancer")
    assert not matched(HER2_EX20, "HER2 inhibitors in breast cancer")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("ALK-positive anaplastic large-cell lymphoma", True),  # positive_status_counts
        ("ALK+ lung cancer", True),
        ("EML4-ALK variant 3 and outcome", True),  # the partner names the fusion
        ("ALK fusion-negative tumours", False),
        ("EGFR/ALK testing in NSCLC", False),  # coordinated genes are not a fusion
    ],
)
def test_a_fusion_target_reads_status_words_and_partners(text: str, expected: bool) -> None:
    assert matched(ALK, text) is expected


def test_a_protein_target_with_variant_terms_needs_one_with_the_gene() -> None:
    assert matched(CMET, "MET amplification after osimertinib")
    assert matched(CMET, "c-Met overexpression in gastric cancer")
    assert not matched(CMET, "MET exon 14 skipping in NSCLC")


def test_a_term_holding_the_genes_class_word_counts() -> None:
    assert matched(MENIN, "Differentiation syndrome with menin inhibitors")
    assert not matched(MENIN, "Germline MEN1 mutations in pancreatic tumours")


def test_a_negation_reaches_over_a_list_of_genes_and_into_an_inner_parenthesis() -> None:
    assert not matched(HER2_EX20, "Negative for EGFR, ALK, ROS1, KRAS, BRAF, MET and ERBB2 "
                                  "(including exon 20 insertions) alterations")
    assert not matched(HER2_EX20, "Patients wild-type for EGFR, KRAS, BRAF, ALK, ROS1 and "
                                  "HER2 exon 20 insertions")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # The cue heads "brain metastases"; "and" then joins a new member of the clause.
        ("Patients with no brain metastases and HER2 exon 20 insertions", True),
        # The cue heads a list of genes: the coordination is negated as a whole.
        ("Tumours with no EGFR and HER2 exon 20 insertions", False),
        ("No evidence of EGFR, ALK, or HER2 exon 20 insertion", False),
    ],
)
def test_a_short_negation_across_and_negates_the_phrase_it_heads(
    text: str, expected: bool
) -> None:
    assert matched(HER2_EX20, text) is expected


def test_a_marker_of_a_cell_population_is_not_the_protein_target() -> None:
    assert not matched(CD19, "Ocrelizumab depletes CD19+ B cells in multiple sclerosis")
    assert matched(CD19, "CD19-positive B-cell lymphoma after tisagenlecleucel")
    assert matched(CD19, "CD19 expression on leukaemic blasts")


def test_an_abbreviation_defined_as_something_else_is_not_the_gene() -> None:
    assert not matched(PD1, "Microglia from embryonic day 14 to postnatal day 1 (PD1)",
                       "By PD1, microglia populated the retina.")
    assert matched(PD1, "Programmed cell death protein 1 (PD-1) blockade in melanoma")
    assert not matched(RET, "Resistance exercise training (RET) in sarcopenia",
                       "RET reduced the mutation burden of sedentary life.")


def test_a_drug_class_gene_owns_a_residue_change_but_not_an_exon() -> None:
    assert matched(C797S, "Fourth-generation EGFR inhibitors race to tackle C797S")
    assert not matched(C797S, "EGFR inhibitors after exon 20")


def test_a_variant_spelled_in_one_word_with_the_gene_survives_a_mutation_word() -> None:
    assert matched(BRAF, "BRAFV600E-mutant hairy cell leukaemia")


def test_a_drug_joined_to_free_is_absent() -> None:
    assert not matched(PARP, "Niraparib-free maintenance in ovarian cancer")
    assert matched(PARP, "Niraparib maintenance in ovarian cancer")


def test_a_negated_list_ends_where_a_new_clause_begins() -> None:
    assert matched(HER2_EX20, "Among patients not harbouring EGFR mutations, HER2 exon 20 "
                              "insertions were found in 2%")
    assert not matched(HER2_EX20, "Patients without EGFR mutations, ALK rearrangements, or "
                                  "ERBB2 exon 20 insertions")
    assert not matched(HER2_EX20, "Patients negative for EGFR, ALK and HER2 exon 20 "
                                  "insertions received durvalumab")


def test_a_gene_form_that_carries_the_variant_counts_with_any_status() -> None:
    isoform = {"kind": "protein", "genes": ["FGFR2", "FGFR2b"],
               "variant_terms": ["FGFR2b", "overexpression"]}
    assert matched(isoform, "FGFR2b-positive gastric cancer")
    assert matched(isoform, "FGFR2 overexpression in gastric cancer")
    assert not matched(isoform, "FGFR2-amplified gastric cancer")
