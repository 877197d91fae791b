"""The same reading rules serve every kind of target: fusions named by a status word,
protein targets named by the gene alone, and definitions the rule cannot use."""

from __future__ import annotations

from typing import Any

import pytest

from alerts.matching import DefinitionError, MatchInput, compile_rule

ALK = {
    "kind": "fusion",
    "genes": ["ALK"],
    "variant_terms": ["fusion", "rearrangement", "EML4-ALK"],
    "status_terms": ["positive", "rearranged"],
    "drugs": [{"name": "lorlatinib", "codes": ["PF-06463922"], "brands": ["Lorbrena"]}],
}
TROP2 = {"kind": "protein", "genes": ["TROP2", "TACSTD2"],
         "drugs": [{"name": "datopotamab deruxtecan", "codes": ["DS-1062"]}]}
KRAS_G12C = {"kind": "variant", "genes": ["KRAS"], "variant_terms": ["G12C"]}


def matched(definition: dict[str, Any], text: str) -> bool:
    return compile_rule(definition).match(MatchInput("pubmed", title=text)).matched


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("ALK-positive NSCLC treated with chemotherapy", True),
        ("ALK-rearranged lung cancer", True),
        ("ALK fusion in NSCLC", True),
        ("ALK-negative NSCLC", False),
        ("ALK expression in neuroblastoma", False),
        ("PF 06463922 in NSCLC", True),
    ],
)
def test_a_fusion_target_counts_its_status_words(text: str, expected: bool) -> None:
    assert matched(ALK, text) is expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("TROP2 expression in triple-negative breast cancer", True),
        ("TROP2-directed ADCs", True),
        ("Tumours without TROP2 expression", False),
        ("DS1062 in NSCLC", True),
    ],
)
def test_a_protein_target_counts_the_gene_alone(text: str, expected: bool) -> None:
    assert matched(TROP2, text) is expected


def test_protein_targets_read_mesh_headings() -> None:
    item = MatchInput("pubmed", title="An ADC", mesh=("TACSTD2 protein, human",))
    assert compile_rule(TROP2).match(item).matched


def test_another_variant_target_keeps_its_neighbours_apart() -> None:
    assert matched(KRAS_G12C, "KRAS G12C inhibitors in NSCLC")
    assert not matched(KRAS_G12C, "NRAS G12C and KRAS G12D")
    assert not matched(KRAS_G12C, "KRAS wild-type tumours and G12C")


def test_mutation_contexts_let_a_plain_mutation_of_the_subject_count() -> None:
    definition = {"genes": ["HER2"], "variant_terms": ["exon 20"],
                  "mutation_contexts": ["NSCLC", "lung"]}
    rule = compile_rule(definition)

    def read(title: str, summary: str = "") -> bool:
        return rule.match(MatchInput("pubmed", title=title, summary=summary)).matched

    assert read("T-DXd in HER2-mutant NSCLC")
    assert read("Outcomes in lung cancer", "HER2 mutations were found. HER2-mutant cases.")
    assert not read("T-DXd in HER2-mutant breast cancer")
    assert not read("Profiling of NSCLC", "Mutations: EGFR (18%), HER2 mutations (3%).")
    assert not read("HER2-mutant NSCLC", "All had HER2 L755S.")
    assert not read("HER2-mutant NSCLC without exon 20 insertions")


@pytest.mark.parametrize(
    ("definition", "message"),
    [
        ({"genes": []}, "genes: a target needs at least one gene or drug name"),
        ({"genes": "HER2"}, "genes: expected a list"),
        ({"genes": ["HER2"], "kind": "enzyme"}, "kind: 'enzyme' is not one of"),
        ({"genes": ["HER2"], "variant_patterns": ["(unclosed"]}, "variant_patterns:"),
        ({"genes": ["HER2"], "drugs": [{"codes": ["X-1"]}]}, "drugs: each drug is a name"),
        ({"genes": ["HER2"], "related_drugs": [1]}, "related_drugs: expected a list of strings"),
    ],
)
def test_a_definition_the_rule_cannot_use_is_refused_by_key(
    definition: dict[str, Any], message: str
) -> None:
    with pytest.raises(DefinitionError, match=message.replace("(", r"\(")):
        compile_rule(definition)
