"""One scan of an item serves every target: the catalogue matches what each target's own
rule matches, reads only the targets an item names, and knows every target's genes."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from alerts.matching import DefinitionError, MatchInput, compile_catalogue, compile_rule
from alerts.matching.catalogue import CATALOGUE_FILE, load_definitions
from alerts.matching.rule import Document

EVAL = Path(__file__).resolve().parents[1] / "data" / "eval" / "her2-exon20.jsonl"
OTHERS: dict[str, dict[str, Any]] = {
    "alk": {"kind": "fusion", "genes": ["ALK"], "variant_terms": ["fusion"],
            "status_terms": ["positive", "rearranged"],
            "drugs": [{"name": "lorlatinib", "codes": ["PF-06463922"]}]},
    "egfr-exon20": {"genes": ["EGFR"], "variant_terms": ["exon 20 insertion", "ex20ins"],
                    "drugs": [{"name": "sunvozertinib", "codes": ["DZD9008"]}]},
    "trop2": {"kind": "protein", "genes": ["TROP2", "TACSTD2"]},
}


@pytest.fixture(scope="module")
def definitions(her2_definition: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {"her2-exon20": her2_definition, **OTHERS}


def eval_items() -> list[MatchInput]:
    return [MatchInput.from_json(json.loads(line))
            for line in EVAL.read_text().splitlines() if line.strip()]


def test_the_catalogue_matches_what_each_rule_matches(
    definitions: dict[str, dict[str, Any]],
) -> None:
    catalogue = compile_catalogue(definitions)
    rules = {slug: compile_rule(d) for slug, d in definitions.items()}
    items = eval_items() + [
        MatchInput("rss", title="Lorlatinib in ALK-positive NSCLC"),
        MatchInput("pubmed", title="EGFR exon 20 insertion and HER2 exon 20 insertion NSCLC"),
        MatchInput("ctgov", title="TROP2 ADC", interventions=("Drug: DZD9008",)),
    ]
    matched_somewhere = 0
    for item in items:
        expected = {slug: r.match(item) for slug, r in rules.items()}
        expected = {slug: m for slug, m in expected.items() if m.matched}
        assert catalogue.match(item) == expected, item.title
        matched_somewhere += bool(expected)
    assert matched_somewhere > 100


def test_an_item_belongs_to_every_target_it_matches(
    definitions: dict[str, dict[str, Any]],
) -> None:
    catalogue = compile_catalogue(definitions)
    both = MatchInput("pubmed", title="EGFR ex20ins and HER2 exon 20 insertions")
    assert set(catalogue.match(both)) == {"egfr-exon20", "her2-exon20"}


def test_only_targets_named_in_the_item_are_candidates(
    definitions: dict[str, dict[str, Any]],
) -> None:
    catalogue = compile_catalogue(definitions)

    def candidates(**fields: Any) -> set[str]:
        return catalogue.candidates(Document(MatchInput("ctgov", **fields)))

    assert candidates(title="Exon 20 insertion in lung cancer") == set()
    assert candidates(title="A trial", interventions=("Drug: PF 06463922",)) == {"alk"}
    assert candidates(title="TACSTD2 and ERBB2", summary="No EGFR.") == {
        "trop2", "her2-exon20", "egfr-exon20"}
    assert candidates(title="KIT, METRIC and ALKALINE") == set()


def test_every_targets_genes_are_other_genes_to_the_rest() -> None:
    # FOO1 is no gene a single rule knows; in the catalogue it owns its exon 20 insertion.
    her2 = {"genes": ["HER2"], "variant_terms": ["exon 20 insertion"]}
    foo = {"genes": ["FOO1"], "variant_terms": ["fusion"]}
    text = MatchInput("pubmed", title="HER2 with FOO1 exon 20 insertion")
    assert compile_rule(her2).match(text).matched
    assert compile_catalogue({"her2": her2, "foo": foo}).match(text) == {}


def test_a_catalogue_takes_entries_with_slugs_and_names_a_bad_one() -> None:
    catalogue = compile_catalogue([{"slug": "trop2", **OTHERS["trop2"]}])
    assert catalogue.slugs == ("trop2",)
    with pytest.raises(DefinitionError, match="^broken: genes: expected a list$"):
        compile_catalogue({"trop2": OTHERS["trop2"], "broken": {"genes": "X"}})


def test_the_shipped_catalogue_loads_and_compiles() -> None:
    definitions = load_definitions(CATALOGUE_FILE)
    assert "her2-exon20" in definitions
    assert compile_catalogue(definitions).slugs == tuple(definitions)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("[[targets]]\nname = 'x'\n", "slug: required key missing"),
        ("[[targets]\n", "Expected"),
    ],
)
def test_a_bad_catalogue_file_is_refused_with_its_name(
    tmp_path: Path, content: str, message: str
) -> None:
    path = tmp_path / "catalogue.toml"
    path.write_text(content)
    with pytest.raises(DefinitionError, match=message):
        load_definitions(path)
    assert load_definitions(tmp_path / "missing.toml") == {}
