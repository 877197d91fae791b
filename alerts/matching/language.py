"""How biomedical English talks about genes, variants and drugs, for every target.

These are the reading rules a person applies without thinking, written once and shared
by all targets, so that a target's definition holds only its own names:

- a gene name written as a receptor status or expression word ("HER2-positive",
  "HER2-low", "HER2 IHC 3+", "HER2 overexpression", "anti-HER2", "HER2-directed") names
  a protein level, not a variant;
- a gene name written as a drug class ("EGFR/HER2 inhibitor", "HER2-selective TKI")
  names the drug, not the variant a sentence goes on to describe;
- a plain mutation word with the gene ("HER2-mutant", "mutations in ERBB2") names
  *some* variant of the gene, not which one;
- negation cues ("without", "excluding", "other than", "were not detected") take the
  words that follow (or, for trailing cues, precede) them out of the sentence's claims,
  up to a clause boundary; a cue heading a list of gene names negates the whole list,
  an inner parenthesis included ("negative for EGFR, ALK and ERBB2 (including exon 20
  insertions)"), while a cue heading another noun stops at the first "and" ("with no
  prior therapy and HER2 exon 20 insertions");
- a status sign is a status ("HER2-" is HER2-negative); a marker with a cell type names
  a cell population ("CD19+ B cells"), not the protein as a target;
- an abbreviation the text defines with a long form that names no gene ("resistance
  exercise training (RET)", "postnatal day 1 (PD1)") is not the gene it also spells;
- other genes' names decide whose variant a variant term is ("EGFR exon 20").
"""

from __future__ import annotations

import re

# --- Sentences and words ----------------------------------------------------------

#: Abbreviations after which a full stop does not end a sentence.
_ABBREVIATIONS = frozenset((
    "e.g", "i.e", "vs", "v", "al", "fig", "figs", "approx", "ca", "cf", "incl", "no", "nos",
    "p", "pp", "dr", "st", "resp", "ref", "refs", "mg", "kg", "min", "max", "var"
))
_SENTENCE_BREAK = re.compile(r"[.!?](?=\s+[\"'(\[]?[A-Z0-9])|\n")
WORD = re.compile(r"[A-Za-z0-9]+")


def sentences(text: str) -> list[tuple[int, int]]:
    """[start, end) spans of the sentences of a text (a line is never joined to the next)."""
    cuts = [0]
    for found in _SENTENCE_BREAK.finditer(text):
        end = found.end()
        if found.group() == ".":
            before = re.search(r"([A-Za-z.]+)\.$", text[max(0, end - 12) : end])
            if before and before.group(1).lower().rstrip(".") in _ABBREVIATIONS:
                continue
        cuts.append(end)
    cuts = sorted(set(cuts)) + [len(text)]
    spans = []
    for start, end in zip(cuts, cuts[1:], strict=False):
        while start < end and text[start].isspace():
            start += 1
        while end > start and text[end - 1].isspace():
            end -= 1
        if start < end:
            spans.append((start, end))
    return spans


# --- What a gene mention is -------------------------------------------------------

#: A parenthesised synonym or "/neu" right after a gene name: "HER2 (ERBB2)-positive".
APPOSITION = r"(?:\s*\([^()]{1,30}\))?(?:\s*/\s*neu\b)?"
_STATUS_WORDS = (
    r"positiv\w*|negativ\w*|low|ultra-?low|zero|null|equivocal|amplifi\w*|"
    r"over-?express\w*|expression|expressing|expressed|enriched|status|"
    r"ihc|immunohistochemi\w*|fish|ish|sish|copy[\s-]?numbers?|cn|gcn|score[sd]?|"
    r"directed|targeted|targeting|protein\s+expression|heterogene\w*"
)
#: The word written right after a gene name: "ALK-rearranged", "ALK (ALK1)-positive".
NEXT_WORD = re.compile(rf"{APPOSITION}[\s-]+(?P<word>[A-Za-z]+)")
#: A status or expression word written after the gene: "HER2-positive", "HER2 IHC 3+",
#: "HER2 gene amplification", "HER2+", "HER2−", "HER2 (IHC 2+)".
STATUS_AFTER = re.compile(
    rf"{APPOSITION}(?:[\s-]+(?:gene|protein|receptor))?"
    rf"(?:[\s-]*\(?\s*(?P<word>{_STATUS_WORDS})\b"
    r"|\s?(?P<sign>[+\u2212\u2013]|-(?![A-Za-z0-9]))"
    r"|\s*\(?\s*(?P<score>[0-3]\s?\+))",
    re.IGNORECASE,
)
#: A status word written before the gene: "anti-HER2", "amplification of HER2",
#: "HER2 overexpression" is caught by STATUS_AFTER, "overexpressed HER2" here.
STATUS_BEFORE = re.compile(
    r"(?P<word>\banti|\bnon|\b(?:over-?)?expression(?=\s+of)|\bamplification(?=\s+of)"
    r"|\bamplified|\bover-?expressed|\bover-?expressing|\bpositive(?=\s+for)"
    r"|\bnegative(?=\s+for)|\bcopy\s+number(?=\s+of)|\blow)(?:\s+(?:of|for))?"
    r"(?:\s*[-\u2010]\s*|\s+)(?:the\s+)?$",
    re.IGNORECASE,
)
#: Status words that say the protein is not there: "HER2-negative", "HER2-", "HER2-zero".
NEGATIVE_STATUS = re.compile(r"negativ\w*|zero|null|-|\u2212|\u2013|non", re.IGNORECASE)


def status_word(found: re.Match[str]) -> str:
    """The status a STATUS_AFTER match states, a sign read as its word ("HER2+" is
    "positive", "HER2-" "negative")."""
    if found["word"]:
        return found["word"]
    sign = found["sign"]
    if sign:
        return "positive" if sign == "+" else "negative"
    return "positive" if found["score"] and found["score"][0] in "123" else ""

#: The gene as a drug class: "EGFR/HER2 inhibitor", "HER2-selective TKI", "HER2 ADC".
DRUG_CLASS_AFTER = re.compile(
    rf"{APPOSITION}(?:\s*/\s*[A-Za-z0-9-]{{2,10}})*"
    r"[\s-]+(?:(?:selective|specific|sparing|dual|irreversible|reversible|covalent)[\s-]+)?"
    r"(?:inhibit\w*|tkis?\b|tyrosine\s+kinase\s+inhibitors?|blockers?|blockade|antagonists?"
    r"|antibod\w*|adcs?\b|bispecific\w*|vaccines?|car[\s-]?t\b|therap\w*|drugs?\b"
    r"|agents?\b)",
    re.IGNORECASE,
)
#: A plain mutation word after the gene: "HER2-mutant", "ERBB2 (HER2) mutations",
#: "HER2 kinase domain mutations", "HER2 activating mutation".
MUTATION_AFTER = re.compile(
    rf"{APPOSITION}[\s-]+(?:(?:gene|kinase|tyrosine|domain|tkd|activating|oncogenic|"
    r"somatic|germline|driver|sensitizing|sensitising|kinase-domain)[\s-]+){0,3}"
    r"(?P<word>mutant|mutants|mutation|mutations|mutated|variant|variants|mut)\b",
    re.IGNORECASE,
)
MUTATION_BEFORE = re.compile(
    r"\b(?P<word>mutant|mutated|mutations?\s+(?:in|of|within|affecting)(?:\s+the)?"
    r"|variants?\s+(?:in|of)(?:\s+the)?)\s+$",
    re.IGNORECASE,
)

#: A cell population named by its markers: "CD19+ B cells", "CD3+ T cells", "CD19-positive
#: lymphocytes". The marker then sorts cells; it is not the protein as a drug target.
CELL_POPULATION_AFTER = re.compile(
    r"[\s,-]*(?:(?:B|T|NK|NKT|dendritic|memory|naive|regulatory|helper|cytotoxic|myeloid"
    r"|immune|mononuclear)[\s-]+)?(?:cells?|lymphocytes?|monocytes?|subsets?|populations?)\b",
    re.IGNORECASE,
)

# --- Abbreviations ----------------------------------------------------------------

#: A short form defined in parentheses after its long form: "resistance exercise training
#: (RET)", "postnatal day 1 (PD1)", "reactive oxygen species (ROS)".
_DEFINITION = re.compile(r"\(\s*([A-Za-z][A-Za-z0-9-]{1,9})\s*\)")
#: Words that make a long form the name of a gene or protein ("human epidermal growth
#: factor receptor 2 (HER2)", "anaplastic lymphoma kinase (ALK)"), or, after the short
#: form, show it used as one ("(MET) amplification", "(RET) fusions").
_GENE_NAME_WORDS = re.compile(
    r"\b(?:receptors?|kinases?|factors?|proteins?|ligands?|antigens?|(?:proto-?)?oncogenes?"
    r"|homologu?e?s?|genes?|domains?|subunits?|claudins?|cadherins?|nectins?|members?"
    r"|glycoproteins?|molecules?|death|transfection|\w{3,}ases?|mutat\w*|amplif\w*|fusions?"
    r"|rearrange\w*|express\w*|inhibit\w*|positive|negative|altered|alterations?)\b",
    re.IGNORECASE,
)


def _long_form(short: str, before: str) -> str | None:
    """The long form a short form abbreviates, read backwards through the words before
    it (Schwartz and Hearst, PSB 2003): every letter and digit of the short form in order,
    its first at the start of a word. None when the words before do not spell it."""
    letters = [c.lower() for c in short if c.isalnum()]
    words = before.split()
    window = " ".join(words[-min(len(letters) + 5, 2 * len(letters)):])
    text = window.lower()
    at = len(text) - 1
    for index in range(len(letters) - 1, -1, -1):
        char = letters[index]
        while at >= 0 and (text[at] != char or (
                index == 0 and at > 0 and text[at - 1].isalnum())):
            at -= 1
        if at < 0:
            return None
        at -= 1
    return window[text.rfind(" ", 0, at + 2) + 1:]


def defined_abbreviations(text: str) -> dict[str, str]:
    """Short forms a text defines as something other than a gene or protein, with their
    long forms: {"RET": "resistance exercise training"}. A short form then means that
    long form throughout the item, whatever gene it also spells."""
    found: dict[str, str] = {}
    for definition in _DEFINITION.finditer(text):
        short = definition[1]
        if short.islower() or short in found:
            continue
        long = _long_form(short, text[max(0, definition.start() - 150):definition.start()])
        if long is None or _GENE_NAME_WORDS.search(long):
            continue
        after = text[definition.end():definition.end() + 40]
        if _GENE_NAME_WORDS.match(after.strip(" -")):
            continue
        found[short] = long
    return found


# --- Negation ---------------------------------------------------------------------

#: Cues that negate the few words after them (NegEx's pre-negation cues).
_NEGATION_BEFORE = re.compile(
    r"\b(?:without|no|not|none|absence\s+of|absent|lack(?:s|ed|ing)?(?:\s+of)?|free\s+of"
    r"|negative\s+for|neither|nor|wild[\s-]?type(?:\s+for)?|never"
    r"|did\s+not\s+(?:have|harbou?r|carry)|ruled\s+out|outside(?:\s+of)?)\b",
    re.IGNORECASE,
)
#: Cues that set aside everything up to the end of their clause, lists included:
#: "excluding patients with EGFR, ALK or HER2 mutations".
_SETTING_ASIDE = re.compile(
    r"\b(?:excluding|exclude[sd]?|exclusion\s+of|exclusion\s+criteria(?:\s+(?:included|includes"
    r"|include|were|are))?|(?:were|was|are|is)\s+(?:ineligible|not\s+eligible)(?:\s+if)?"
    r"|except(?:\s+for)?|other\s+than|rather\s+than"
    r"|instead\s+of|apart\s+from|besides|irrespective\s+of|regardless\s+of)\b",
    re.IGNORECASE,
)
#: Cues that set one phrase against the sentence's subject, up to the next comma:
#: "distinct from HER2 mutation", "unlike EGFR exon 20 insertions, HER2 ...".
_CONTRAST = re.compile(
    r"\b(?:(?:distinct|differ(?:s|ed|ent|ing)?|separate[d]?)\s+(?:\w+ly\s+(?:and\s+\w+ly\s+)?)?"
    r"from|unlike"
    r"|in\s+contrast\s+(?:to|with)|as\s+opposed\s+to|independent(?:ly)?\s+of)\b",
    re.IGNORECASE,
)
#: "non-small cell": "non" takes back the one word it is joined to.
_NON = re.compile(r"\bnon[\s-]+(?=[A-Za-z0-9])", re.IGNORECASE)
#: Cues that negate something else: "not only X but also Y", "including but not limited
#: to X", "median PFS was not reached in X", "no significant difference between X",
#: "with or without X".
_NOT_NEGATING = re.compile(
    r"\b(?:not\s+(?:only|just|merely|limited\s+to|reached|yet|estimable|evaluable|assessable"
    r"|available|mature|significant\w*|statistically|different|differ)"
    r"|no\s+(?:significant\w*|statistical\w*|difference|differences|prior|previous|further"
    r"|new|change|changes|longer|more|less|other)"
    r"|without\s+(?:significant\w*|prior|previous))\b"
    r"|(?<=\bor\s)without\b|(?<=\bwith\sor\s)no\b",
    re.IGNORECASE,
)
#: Where a negation's reach ends: the clause changes. "with" ends it too, except after
#: the noun a cue is about ("excluding patients with ...").
_SCOPE_END = re.compile(
    r"[.;:()\[\]]|\b(?:but|however|although|though|whereas|while|yet|who|which|that"
    r"|and\s+(?:with|had|who|were|was|have|has)|with)\b",
    re.IGNORECASE,
)
_HOLDER = re.compile(
    r"(?:patients|those|tumou?rs|cases|participants|subjects|people|individuals|cancers?"
    r"|disease|nsclc)\s+$",
    re.IGNORECASE,
)
#: Predicates that take back their subject: "patients with X were excluded".
_TAKEN_BACK = re.compile(
    r"\b(?:was|were|are|is|being|been)\s+(?:\w+ly\s+)?(?:excluded|ineligible|not\s+eligible"
    r"|not\s+allowed|not\s+permitted|not\s+included|removed|ruled\s+out|not\s+detected"
    r"|not\s+found|not\s+identified|absent)\b",
    re.IGNORECASE,
)
#: Where such a subject starts, at the latest.
_SUBJECT_START = re.compile(
    r"[.;:]|\b(?:but|however|although|though|whereas|while|yet|and\s+(?:that|those))\b",
    re.IGNORECASE,
)
_NEGATION_WORDS = 6
_SETTING_ASIDE_WORDS = 15
#: Cues after the words they negate: "HER2 exon 20 insertions were not detected".
NEGATION_AFTER = re.compile(
    r"[\s,-]*(?:\([^()]{0,30}\)\s*)?(?:(?:was|were|is|are|be|been|remained|tested)\s+)?"
    r"(?:not\s+(?:detected|found|present|identified|observed|seen|harbou?red|allowed"
    r"|permitted|eligible)|absent|excluded|ruled\s+out|wild[\s-]?type|negative\b)",
    re.IGNORECASE,
)


#: A parenthesis inside a noun phrase, that a negation reaches into: "ERBB2 (including exon
#: 20 insertions)", "HER2 (ERBB2)". Other parentheses end a negation's reach.
_INNER_PARENTHESIS = re.compile(
    r"\(\s*(?:(?:including|incl|e\.g|i\.e|such\s+as|especially|notably|particularly"
    r"|namely|for\s+example)\b[^()]*|(?:[^()\s]+\s*){1,3})\)",
    re.IGNORECASE,
)
#: What joins the members of a list: "EGFR, ALK, ROS1, and/or HER2".
_CONJUNCTION = re.compile(r",\s*(?:and/or|and|or|nor)?\b|\b(?:and/or|and|or|nor)\b",
                          re.IGNORECASE)
#: A word that names a gene or a variant ("EGFR", "HER2", "ROS1", "V600E", "c-MET").
_GENE_LIKE = re.compile(r"(?<![A-Za-z0-9])(?:[A-Za-z]*[A-Z][A-Za-z]*\d[A-Za-z0-9]*"
                        r"|[A-Z][A-Z0-9]*[A-Z][A-Z0-9]*)(?![a-z])")


#: A verb that makes a list member a clause of its own.
_CLAUSE_VERB = re.compile(
    r"\b(?:is|are|was|were|be|been|has|have|had|did|does|do|showed|shows|found|received"
    r"|achieved|occurred|remained|responded|developed|harbou?red)\b", re.IGNORECASE)


def _masked(text: str) -> str:
    """The text with inner parentheses blanked out, one character for one."""
    return _INNER_PARENTHESIS.sub(lambda m: " " * len(m.group()), text)


def _negated_list(text: str, masked: str, start: int, end: int, reach: int) -> int:
    """Where a negation cue's reach ends: the noun phrase it heads. A list of gene and
    variant names is negated as a whole ("no EGFR, ALK or HER2 mutations", "negative for
    EGFR and ERBB2 (including exon 20 insertions)"); a list whose first member names no
    gene is a list of the clause, not of the negated phrase, so the cue reaches to the
    first conjunction only ("with no prior therapy and HER2 exon 20 insertions")."""
    cuts = [(m.start(), m.end()) for m in _CONJUNCTION.finditer(masked, start, end)]
    members = []
    joined_by_comma = []
    begin = start
    for cut_start, cut_end in cuts:
        members.append((begin, cut_start))
        joined_by_comma.append(text[cut_start:cut_end].strip() == ",")
        begin = cut_end
    members.append((begin, end))
    first_end = members[0][1]
    words = list(WORD.finditer(text, start, first_end))
    if len(words) > reach:
        return words[reach - 1].end()
    if not _GENE_LIKE.search(text, start, first_end):
        return first_end
    last = first_end
    for (member_start, member_end), comma in zip(members[1:], joined_by_comma, strict=True):
        if not _GENE_LIKE.search(text, member_start, member_end):
            break
        verb = _CLAUSE_VERB.search(text, member_start, member_end)
        if verb and comma:
            break  # a new clause: "..., HER2 exon 20 insertions were found"
        if verb:  # the list's last member, then the sentence's own verb
            last = verb.start()
            break
        last = member_end
    words = list(WORD.finditer(text, start, last))
    if len(words) > _SETTING_ASIDE_WORDS:
        last = words[_SETTING_ASIDE_WORDS - 1].end()
    return last


#: A name joined to "-free" says it is absent: "chemotherapy-free", "niraparib-free".
ABSENT_AFTER = re.compile(r"-free\b", re.IGNORECASE)


def negated_spans(text: str) -> list[tuple[int, int]]:
    """Character spans of a sentence that a preceding negation cue takes back."""
    spans = []
    masked = _masked(text)
    for cue in _NON.finditer(text):
        word = WORD.match(text, cue.end())
        if word:
            spans.append((cue.end(), word.end()))
    for pattern, reach in ((_NEGATION_BEFORE, _NEGATION_WORDS),
                           (_SETTING_ASIDE, _SETTING_ASIDE_WORDS),
                           (_CONTRAST, _SETTING_ASIDE_WORDS)):
        for cue in pattern.finditer(text):
            if _NOT_NEGATING.match(text, cue.start()):
                continue
            start = end = cue.end()
            comma = text.find(",", start) if pattern is _CONTRAST else -1
            for stop in _SCOPE_END.finditer(masked, start, comma if comma >= 0 else len(text)):
                end = stop.start()
                if stop.group().lower() != "with" or not _HOLDER.search(text, start, end):
                    break
            else:
                end = comma if comma >= 0 else len(text)
            if pattern is _NEGATION_BEFORE:
                end = _negated_list(text, masked, start, end, reach)
            else:
                words = list(WORD.finditer(text, start, end))
                if len(words) > reach:
                    end = words[reach - 1].end()
            if end > start:
                spans.append((start, end))
    for predicate in _TAKEN_BACK.finditer(text):
        start = 0
        for boundary in _SUBJECT_START.finditer(text, 0, predicate.start()):
            start = boundary.end()
        words = list(WORD.finditer(text, start, predicate.start()))
        if len(words) > _SETTING_ASIDE_WORDS:
            start = words[-_SETTING_ASIDE_WORDS].start()
        spans.append((start, predicate.start()))
    return spans


# --- Other genes, and variants that are not the target's -------------------------

#: Genes other than the target's, as written in oncology text. Used to decide whose
#: variant a variant term is; a catalogue adds the genes of all its targets.
COMMON_GENES = frozenset((
    "EGFR", "HER1", "ERBB1", "ERBB2", "HER2", "ERBB3", "HER3", "ERBB4", "HER4", "KRAS", "NRAS",
    "HRAS", "BRAF",
    "MET", "ALK", "ROS1", "RET", "NTRK", "NTRK1", "NTRK2", "NTRK3", "NRG1", "FGFR", "FGFR1",
    "FGFR2", "FGFR3", "FGFR4", "PIK3CA", "PIK3CB", "PTEN", "AKT1", "BRCA", "BRCA1", "BRCA2",
    "PALB2", "ESR1", "PGR", "TP53", "KIT", "PDGFRA", "IDH1", "IDH2", "MAP2K1", "MEK1", "STK11",
    "KEAP1", "CDKN2A", "CDK4", "CDK6", "CCND1", "MYC", "MYCN", "NF1", "NF2", "ARID1A", "ATM",
    "ATR", "MTOR", "TSC1", "TSC2", "FLT3", "NPM1", "JAK2", "CALR", "MPL", "BTK", "BCL2",
    "SMAD4", "APC", "CTNNB1", "POLE", "MLH1", "MSH2", "MSH6", "PMS2", "TROP2", "TACSTD2",
    "CLDN18", "DLL3", "BCMA", "GPRC5D", "CD19", "CD20", "CD22", "CD33", "CD38", "CD123",
    "PD-L1", "PDL1", "PD-1", "CTLA4", "CTLA-4", "VEGF", "VEGFR", "VEGFR2", "KDR", "AXL",
    "MERTK", "DDR2", "RAF1", "ARAF", "SHP2", "PTPN11", "SOS1", "RIT1", "NOTCH1", "FBXW7", "RB1",
    "ERCC1", "TOP2A", "ESR2", "AR", "MDM2", "SMARCA4", "SMARCB1", "EZH2", "DNMT3A", "TET2",
    "KMT2A", "B7-H3", "B7H3", "CD276", "NECTIN4", "FOLR1", "CEACAM5", "MUC16", "MSLN", "TROP-2",
    "EPHA2", "LRP1B", "CDH1", "GNAS", "GNAQ", "GNA11", "MAP2K2", "ROS", "NUTM1"
))

_ONE = "ACDEFGHIKLMNPQRSTVWY"
_THREE = "Ala|Arg|Asn|Asp|Cys|Gln|Glu|Gly|His|Ile|Leu|Lys|Met|Phe|Pro|Ser|Thr|Trp|Tyr|Val"
AMINO_ACID = rf"(?:{_THREE}|[{_ONE}])"
#: A protein change in HGVS-like notation (one- or three-letter codes, with or without
#: "p."): "L755S", "p.Val777Leu", "S310F", "A775_G776insYVMA", "Y772_A775dup".
PROTEIN_CHANGE = re.compile(
    rf"(?<![A-Za-z0-9])(?:p\.\s?\(?)?{AMINO_ACID}\d{{2,4}}"
    rf"(?:_{AMINO_ACID}\d{{2,4}})?(?:{AMINO_ACID}|\*|fs|del|ins|dup|delins|X)"
    rf"(?:{AMINO_ACID}|\*)*\)?(?![A-Za-z0-9])"
)
#: Words naming a variant class or location: "exon 19", "point mutation", "S310F".
OTHER_VARIANT_WORDS = re.compile(
    r"(?<![A-Za-z0-9])(?:exon|ex)[\s-]?\d{1,2}(?![0-9])|\bpoint[\s-]+muta\w+"
    r"|\bnon[\s-]*insertion\w*"
    r"|\bmissense\b|\bsubstitutions?\b|\b(?:extracellular|transmembrane|juxtamembrane)"
    r"\s+domain\b",
    re.IGNORECASE,
)
#: Exons named together: "exon 19 or 20", "exons 19/20", "exons 18, 19 and 20".
EXON_LIST = re.compile(
    r"(?<![A-Za-z0-9])exons?[\s-]?(?P<numbers>\d{1,2}(?:\s*(?:,|/|&|or|and|,\s*and|,\s*or)\s*\d{1,2}"
    r"(?![0-9]))+)",
    re.IGNORECASE,
)

#: A location term ("exon 20") written as another kind of change than an insertion or
#: fusion: "exon 20 point mutation", "exon 20 V777L", "missense mutations in exon 20".
LOCATION_ONLY = re.compile(r"(?:exons?|ex|e)[\s-]?\d{1,2}(?:\s*(?:,|/|&|or|and)\s*\d{1,2})*",
                           re.IGNORECASE)
_CHANGE_WORDS = (
    r"point[\s-]*mut\w*|missense|substitution\w*|deletion\w*|skipping|skipped|splice\w*"
    r"|single[\s-]nucleotide"
)
OTHER_CHANGE_AFTER = re.compile(
    rf"[\s,]*\(?\s*(?:(?:{_CHANGE_WORDS})\b|(?:p\.)?[A-Z]\d{{2,4}}[A-Z](?![A-Za-z0-9]))"
)
OTHER_CHANGE_BEFORE = re.compile(
    rf"(?:{_CHANGE_WORDS})(?:\s+mutations?)?\s+(?:in|of|within|at)\s+(?:the\s+)?$",
    re.IGNORECASE,
)

#: What may stand between coordinated gene names: "EGFR and HER2", "EGFR/HER2".
COORDINATION = re.compile(r"^\s*(?:,|/|&|and|or|and/or|,\s*and|,\s*or)?\s*$", re.IGNORECASE)
#: What links a variant to a gene written after it: "exon 20 insertions in HER2".
LINK_TO_GENE_AFTER = re.compile(
    r"^[\s,]*(?:mutations?\s+|variants?\s+)?(?:in|of|within|affecting)\s+(?:the\s+)?$",
    re.IGNORECASE,
)

#: Where a trial's eligibility criteria stop describing who may enter.
EXCLUSION_HEADING = re.compile(r"\b(?:key\s+)?exclusion\s+criteria\b", re.IGNORECASE)


def inclusion_part(eligibility: str) -> str:
    """The inclusion criteria of a trial's eligibility text: everything before the
    exclusion criteria heading (a trial excludes many things it is not about)."""
    heading = EXCLUSION_HEADING.search(eligibility)
    return eligibility[: heading.start()] if heading else eligibility
