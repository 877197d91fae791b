"""The her2-exon20 rule read as a person reads: one test per reading rule, relevant
phrasings kept and each decoy family rejected."""

from __future__ import annotations

import pytest

from alerts.matching import Match, MatchInput, TargetRule


def read(rule: TargetRule, text: str, source: str = "pubmed") -> Match:
    return rule.match(MatchInput(source, title=text))


@pytest.mark.parametrize(
    ("text", "terms"),
    [
        ("ERBB2 ex20ins in lung adenocarcinoma", ("ERBB2", "ex20ins")),
        ("HER2 YVMA NSCLC responds to afatinib", ("HER2", "YVMA")),
        ("HER2 insertion mutations in lung cancer", ("HER2", "insertion")),
        ("HER2 exon-20 insertions", ("HER2", "exon-20 insertions")),
        ("HER2 exon20 mutation", ("HER2", "exon20")),
        ("HER2 20ins lung cancer", ("HER2", "20ins")),
        ("HER-2 E20 insertion", ("HER-2", "E20", "insertion")),
        ("Outcomes of HER2ex20ins NSCLC", ("HER2ex20ins",)),
        ("ErbB-2 exon 20 insertions", ("ErbB-2", "exon 20 insertions")),
        ("Exon 20 insertions in HER2 define a subset", ("Exon 20 insertions", "HER2")),
        ("Insertions in exon 20 of the ERBB2 gene", ("Insertions", "exon 20", "ERBB2")),
        ("HER2 mutations in NSCLC are mostly exon 20 insertions",
         ("HER2 mutations", "exon 20 insertions")),
        ("HER2-mutant NSCLC with exon 19 or 20 mutations", ("HER2-mutant", "exon 19 or 20")),
        ("ERBB2 (HER2) exon 20 insertion-positive lung cancer", ("HER2", "exon 20 insertion")),
    ],
)
def test_a_variant_term_with_its_gene_matches(her2: TargetRule, text: str, terms: tuple) -> None:
    result = read(her2, text)
    assert result.matched
    assert result.terms == terms


@pytest.mark.parametrize(
    "text",
    [
        "ERBB2 A775_G776insYVMA",
        "ERBB2 p.A775_G776insYVMA",
        "ERBB2 p.(Ala775_Gly776insTyrValMetAla)",
        "HER2 G776delinsVC",
        "HER2 p.Gly776delinsValCys",
        "HER2 P780_Y781insGSP",
        "ERBB2 Y772_A775dup",
        "ERBB2 G778_P780dup",
        "HER2 E770_A771insAYVM",
        "ERBB2 c.2313_2324dup",
        "ERBB2 c.2313_2324dupATACGTGATGGC",
    ],
)
def test_hgvs_insertions_in_the_exon_20_codons_match(her2: TargetRule, text: str) -> None:
    assert read(her2, text).matched


@pytest.mark.parametrize(
    "text",
    [
        "HER2 L755S in breast cancer",  # exon 19
        "HER2 S310F in bladder cancer",  # exon 8
        "ERBB2 V842I in NSCLC",  # exon 21
        "HER2 D769Y mutation",
        "HER2 p.Val777Leu point mutation",  # exon 20, but a substitution
        "HER2 V777L in lung cancer",
        "ERBB2 A1232_G1233insYVMA",  # outside the exon 20 codons
        "ERBB2 c.2263_2264delinsTT",  # exon 19
        "HER2-mutant breast cancer with L755S treated with neratinib",
        "HER2 V777L, an exon 20 point mutation, in breast cancer",
        "HER2 exon 20 V777L",
        "Missense mutations in exon 20 of HER2",
    ],
)
def test_mutations_outside_the_target_do_not_match(her2: TargetRule, text: str) -> None:
    assert not read(her2, text).matched


@pytest.mark.parametrize(
    "text",
    [
        "HER2-positive breast cancer with a PIK3CA mutation",
        "HER2-low breast cancer: ESR1 mutations and T-DXd",
        "HER2-negative breast cancer with PIK3CA exon 20 mutation H1047R",
        "HER2-ultralow breast cancer",
        "HER2-amplified gastric cancer with exon 20 insertions of PIK3CA",
        "HER2 overexpression and exon 20 changes",
        "anti-HER2 therapy after exon 20 insertion",
        "HER2-directed ADC in exon 20 insertion NSCLC",
        "HER2 IHC 3+ tumours with exon 20 insertion",
        "HER2+ gastric cancer; exon 20 insertion",
        "HER2 (IHC 2+) and exon 20 insertion",
        "HER2 gene amplification and exon 20 insertion",
        "Amplification of HER2 with exon 20 insertion",
        "Triple-negative (ER-, PR-, HER2-) breast cancer with BRCA1 mutation",
    ],
)
def test_a_receptor_status_word_is_not_a_variant_of_the_gene(
    her2: TargetRule, text: str
) -> None:
    assert not read(her2, text).matched


@pytest.mark.parametrize(
    "text",
    [
        "EGFR exon 20 insertion NSCLC with HER2 amplification",
        "HER2 amplification as a resistance mechanism in EGFR exon 20 insertion NSCLC",
        "Poziotinib, an EGFR/HER2 inhibitor, in exon 20 insertion NSCLC",
        "HER2-selective TKIs in EGFR ex20ins lung cancer",
        "BRAF exon 20 mutations",
        "HER2 mutations and EGFR exon 20 insertions",
        "EGFR exon 20 insertion NSCLC: HER2 co-mutations",
    ],
)
def test_a_variant_term_of_another_gene_does_not_match(her2: TargetRule, text: str) -> None:
    assert not read(her2, text).matched


@pytest.mark.parametrize(
    "text",
    [
        "EGFR and HER2 exon 20 insertions: shared biology",
        "HER2 or EGFR exon 20 insertions",
        "HER2/EGFR exon 20 insertions",
    ],
)
def test_a_gene_coordinated_with_another_shares_its_variant(
    her2: TargetRule, text: str
) -> None:
    assert read(her2, text).matched


@pytest.mark.parametrize(
    "text",
    [
        "Patients without HER2 exon 20 insertions were enrolled",
        "Excluding patients with EGFR, ALK or HER2 exon 20 insertions",
        "NSCLC other than HER2 exon 20 insertion",
        "HER2 exon 20 insertions were not detected in this cohort",
        "HER2 exon 20 insertion-negative cohort",
        "No HER2 exon 20 insertion was found",
        "HER2 amplification, distinct from HER2 exon 20 insertion, occurs in 2% of NSCLC",
        "Activating ERBB2 mutations were rare and none was an insertion",
        "HER2 wild-type tumours and exon 20 insertions",
        "Patients with ERBB2 exon 20 insertions or other HER2 mutations were excluded",
        "Key exclusion criteria included EGFR exon 20 insertions and HER2 exon 20 insertions",
        "Patients were ineligible if they had HER2 exon 20 insertions",
        "HER2 point-mutant NSCLC differs clinically and genomically from insertion-mutant disease",
    ],
)
def test_negated_mentions_do_not_match(her2: TargetRule, text: str) -> None:
    assert not read(her2, text).matched


@pytest.mark.parametrize(
    "text",
    [
        "Unlike EGFR exon 20 insertions, HER2 exon 20 insertions respond to afatinib",
        "Patients without brain metastases with HER2 exon 20 insertion",
        "Not only HER2 exon 20 insertions but also EGFR mutations",
        "HER2 mutations including but not limited to exon 20 insertions",
        "Non-small cell lung cancer with HER2 exon 20 insertion",
        "EGFR mutations were excluded, but HER2 exon 20 insertions were allowed",
        "Median PFS was not reached in HER2 exon 20 insertion NSCLC",
        "There was no significant difference between HER2 exon 20 insertion subtypes",
        "Patients with or without HER2 exon 20 insertions",
        "Patients without prior HER2 exon 20 insertion-directed therapy",
    ],
)
def test_negation_reaches_only_its_own_phrase(her2: TargetRule, text: str) -> None:
    assert read(her2, text).matched


def test_testing_for_a_gene_is_not_a_receptor_status(her2: TargetRule) -> None:
    assert read(her2, "Reflex HER2 testing found exon 20 insertions in 3% of cases").matched
    assert not read(her2, "HER2 score 2+ with exon 20 insertions").matched


def test_gene_and_variant_count_only_within_one_sentence(her2: TargetRule) -> None:
    apart = "HER2 is amplified in breast cancer. Exon 20 insertions of EGFR are rare."
    assert not her2.match(MatchInput("pubmed", title="Review", summary=apart)).matched
    together = "Background. We studied HER2 exon 20 insertions. Results follow."
    result = her2.match(MatchInput("pubmed", title="Review", summary=together))
    assert (result.field, result.evidence) == ("summary", "We studied HER2 exon 20 insertions.")


def test_far_apart_a_gene_and_variant_count_only_in_a_sentence_about_one_gene(
    her2: TargetRule,
) -> None:
    filler = " ".join(["word"] * 25)
    assert read(her2, f"HER2 {filler} exon 20 insertion").matched
    assert not read(her2, f"HER2 {filler} exon 20 insertion, unlike KRAS").matched
    assert read(her2, f"HER2 {' '.join(['word'] * 10)} exon 20 insertion, unlike KRAS").matched


def test_a_variant_in_a_sentence_without_gene_belongs_to_the_items_gene(
    her2: TargetRule,
) -> None:
    summary = "HER2-mutant lung cancer is rare. Exon 20 insertions made up 70% of cases."
    assert her2.match(MatchInput("pubmed", title="A cohort", summary=summary)).matched
    egfr = ("EGFR exon 20 insertion NSCLC and HER2 mutations were studied. "
            "Exon 20 insertions made up 70% of cases.")
    assert not her2.match(MatchInput("pubmed", title="A cohort", summary=egfr)).matched


@pytest.mark.parametrize(
    "text",
    [
        "Zongertinib in HER2-positive breast cancer",
        "ZONGERTINIB approved",
        "Hernexeos approval in the EU",
        "BI 1810631 phase 1",
        "BI-1810631 phase 1",
        "BI1810631 dose escalation",
        "BAY2927088 in NSCLC",
        "Hyrnuo label update",
    ],
)
def test_a_target_drug_counts_alone_in_every_spelling(her2: TargetRule, text: str) -> None:
    assert read(her2, text).matched


@pytest.mark.parametrize(
    "text",
    [
        "Pyrotinib in HER2-amplified breast cancer",
        "Trastuzumab deruxtecan in HER2-low breast cancer",
        "Mobocertinib in EGFR exon 20 insertion NSCLC",
        "Poziotinib in HER2-mutant breast cancer",
    ],
)
def test_a_related_drug_never_counts_alone(her2: TargetRule, text: str) -> None:
    assert not read(her2, text).matched


def test_a_plain_mutation_mention_is_not_evidence_of_exon_20(her2: TargetRule) -> None:
    # Without mutation_contexts, "HER2-mutant NSCLC" does not say which mutation.
    assert not read(her2, "Trastuzumab deruxtecan in HER2-mutant NSCLC").matched


def test_evidence_is_the_deciding_sentence_with_the_words_highlighted(
    her2: TargetRule,
) -> None:
    summary = ("HER2-positive disease was excluded. Patients had ERBB2 A775_G776insYVMA "
               "and received zongertinib.")
    result = her2.match(MatchInput("pubmed", title="A report", summary=summary))
    assert result.field == "summary"
    assert result.evidence == "Patients had ERBB2 A775_G776insYVMA and received zongertinib."
    assert [result.evidence[s:e] for s, e in result.highlights] == [
        "ERBB2", "A775_G776insYVMA", "zongertinib",
    ]
    assert result.terms == ("ERBB2", "A775_G776insYVMA", "zongertinib")


def test_evidence_prefers_the_title(her2: TargetRule) -> None:
    result = her2.match(MatchInput("rss", title="Zongertinib news",
                                   summary="HER2 exon 20 insertion NSCLC."))
    assert (result.field, result.evidence, result.highlights) == (
        "title", "Zongertinib news", ((0, 11),))


def test_trials_read_only_the_inclusion_criteria(her2: TargetRule) -> None:
    eligibility = ("Inclusion Criteria:\n- Metastatic NSCLC\n- EGFR exon 20 insertion\n"
                   "Exclusion Criteria:\n- HER2 exon 20 insertion\n- Prior zongertinib")
    trial = MatchInput("ctgov", title="A trial", eligibility=eligibility)
    assert not her2.match(trial).matched
    included = eligibility.replace("- EGFR exon 20", "- ERBB2 exon 20")
    result = her2.match(MatchInput("ctgov", title="A trial", eligibility=included))
    assert (result.field, result.evidence) == ("eligibility", "- ERBB2 exon 20 insertion")


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("conditions", ("Non-small Cell Lung Cancer", "HER2 Exon 20 Insertion")),
        ("keywords", ("HER2", "exon 20 insertion", "NSCLC")),
        ("interventions", ("Drug: BAY 2927088",)),
    ],
)
def test_trial_list_fields_are_read(her2: TargetRule, field: str, value: tuple) -> None:
    result = her2.match(MatchInput("ctgov", title="A study", **{field: value}))
    assert (result.matched, result.field, result.evidence) == (True, field, "; ".join(value))


def test_official_title_is_read(her2: TargetRule) -> None:
    item = MatchInput("ctgov", title="A study", official_title="Study of HER2 ex20ins NSCLC")
    assert her2.match(item).field == "official_title"


def test_mesh_counts_for_drugs_but_has_no_sentence_for_variants(her2: TargetRule) -> None:
    bag = ("Receptor, ErbB-2/genetics", "Mutagenesis, Insertional", "Lung Neoplasms")
    assert not her2.match(MatchInput("pubmed", title="A study", mesh=bag)).matched
    assert her2.match(MatchInput("pubmed", title="A study", mesh=("zongertinib",))).matched


def test_short_symbols_match_only_in_their_case(her2: TargetRule) -> None:
    assert read(her2, "NEU exon 20 insertion").matched
    assert not read(her2, "neu exon 20 insertion").matched


def test_a_gene_name_inside_a_longer_word_is_not_the_gene(her2: TargetRule) -> None:
    assert not read(her2, "HER20 exon 20 insertion").matched
