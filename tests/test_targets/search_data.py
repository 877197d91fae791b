"""Targets for the search tests, with `match_terms` in the catalogue's shape (rule keys,
drugs as tables), cut down from alerts/targets/catalogue.toml; and the first shape
({"genes", "mutations", "drugs": [str]}) the seeded her2-exon20 still has."""

from __future__ import annotations

from typing import Any

from sqlalchemy import delete
from sqlalchemy.orm import Session

from db.models import Target


def drug(name: str, codes: tuple[str, ...] = (), brands: tuple[str, ...] = (),
         shared_with: tuple[str, ...] = ()) -> dict[str, Any]:
    return {"name": name, "codes": list(codes), "brands": list(brands),
            "shared_with": list(shared_with)}


def rule(genes: list[str], variant_terms: list[str], drugs: list[dict[str, Any]],
         related_drugs: list[str] | None = None, kind: str = "variant") -> dict[str, Any]:
    return {"kind": kind, "genes": genes, "variant_terms": variant_terms,
            "variant_patterns": [r"\bG12C\b"], "positive_status_counts": False,
            "drugs": drugs, "related_drugs": related_drugs or []}


ZONGERTINIB = drug("zongertinib", ("BI 1810631",), ("Hernexeos",), ("her2",))

#: slug -> (name, description, match_terms)
TARGETS: dict[str, tuple[str, str, dict[str, Any]]] = {
    "her2-exon20": ("HER2 (ERBB2) exon 20", "ERBB2 exon 20 insertion mutations.", rule(
        ["ERBB2", "HER2", "NEU", "CD340"],
        ["exon 20 insertion", "exon 20", "ex20ins", "20ins", "YVMA", "HER2ex20ins"],
        [ZONGERTINIB, drug("sevabertinib", ("BAY 2927088",), ("Hyrnuo",), ("her2",))],
        ["poziotinib", "trastuzumab deruxtecan"],
    )),
    "her2": ("HER2 (ERBB2) as a protein", "HER2 the receptor.", rule(
        ["ERBB2", "HER2", "HER-2", "c-erbB-2"], [],
        [drug("trastuzumab", (), ("Herceptin",)),
         drug("trastuzumab deruxtecan", ("T-DXd", "DS-8201"), ("Enhertu",)),
         {**ZONGERTINIB, "shared_with": ["her2-exon20"]}],
        ["poziotinib"], kind="protein",
    )),
    "egfr-exon20": ("EGFR exon 20 insertions", "EGFR exon 20 insertion mutations.", rule(
        ["EGFR", "ERBB1", "HER1"], ["exon 20 insertion", "exon20ins", "ex20ins"],
        [drug("sunvozertinib", ("DZD9008",), ("Zegfrovy",)),
         drug("mobocertinib", ("TAK-788",), ("Exkivity",))],
        ["amivantamab", "poziotinib"],
    )),
    "kras-g12c": ("KRAS G12C", "KRAS G12C and its covalent inhibitors.", rule(
        ["KRAS", "K-RAS", "Ki-ras", "KRASG12C"], ["G12C", "p.G12C", "Gly12Cys"],
        [drug("sotorasib", ("AMG 510",), ("Lumakras",)),
         drug("adagrasib", ("MRTX849",), ("Krazati",))],
    )),
    "kras-g12d": ("KRAS G12D", "KRAS G12D and its inhibitors.", rule(
        ["KRAS", "K-RAS", "Ki-ras", "KRASG12D"], ["G12D", "p.G12D", "Gly12Asp"],
        [drug("zoldonrasib", ("RMC-9805",)), drug("MRTX1133")],
    )),
    "kras-pan": ("KRAS other alleles and pan-RAS inhibition", "Beyond G12C/G12D.", rule(
        ["KRAS", "K-RAS"], ["G12V", "G13D", "pan-KRAS", "pan-RAS"],
        [drug("daraxonrasib", ("RMC-6236",))],
    )),
}


def add_targets(session: Session, slugs: list[str] | None = None) -> dict[str, Target]:
    """Replace the catalogue by `slugs` of TARGETS (all by default)."""
    session.execute(delete(Target))
    rows = {}
    for slug in slugs or list(TARGETS):
        name, description, match_terms = TARGETS[slug]
        rows[slug] = Target(slug=slug, name=name, description=description,
                            match_terms=match_terms)
        session.add(rows[slug])
    session.flush()
    return rows


def synthetic_targets(session: Session, count: int, *, start: int = 0) -> None:
    """`count` targets more, each with a gene, a variant and a drug of its own."""
    session.add_all(
        Target(slug=f"synthetic-{n:05d}", name=f"Synthetic target {n:05d}",
               description=f"Gene SYN{n} and its drug synthib{n}.",
               match_terms=rule([f"SYN{n}"], [f"V{n}X"], [drug(f"synthib{n}", (f"SY-{n}",))]))
        for n in range(start, start + count)
    )
    session.flush()
