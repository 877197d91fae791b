"""Seed the catalogue with HER2 (ERBB2) exon 20, which ships with the product.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-26
"""

from collections.abc import Sequence
from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

import db.types

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SLUG = "her2-exon20"

# PubMed: HER2/ERBB2 with an exon 20 / insertion / mutation term, or a HER2-selective
# drug. High-volume drugs of HER2-amplified disease (pyrotinib, T-DXd, poziotinib,
# mobocertinib) are reached only through the mutation clause.
PUBMED_QUERY = (
    '(("ERBB2"[tiab] OR "HER2"[tiab] OR "HER-2"[tiab]) AND ("exon 20"[tiab] OR "exon20"[tiab]'
    ' OR "ex20ins"[tiab] OR insertion*[tiab] OR "YVMA"[tiab] OR "A775_G776insYVMA"[tiab]'
    ' OR mutant*[tiab] OR mutation*[tiab] OR mutated[tiab]))'
    ' OR zongertinib[tiab] OR "BI 1810631"[tiab] OR sevabertinib[tiab] OR "BAY 2927088"[tiab]'
)
CTGOV_TERM = "(HER2 OR ERBB2) AND (exon 20 OR insertion OR mutation OR mutant)"
CTGOV_INTR = 'zongertinib OR sevabertinib OR "BI 1810631" OR "BAY 2927088"'
MATCH_TERMS = {
    "genes": ["HER2", "ERBB2", "HER-2"],
    "mutations": [
        "exon 20", "exon20", "ex20ins", "insertion", "YVMA", "A775_G776insYVMA",
        "tyrosine kinase domain", "TKD", "mutant", "mutation", "mutated",
    ],
    "drugs": ["zongertinib", "BI 1810631", "sevabertinib", "BAY 2927088"],
}

targets = sa.table(
    "targets",
    sa.column("slug", sa.String),
    sa.column("name", sa.String),
    sa.column("description", sa.Text),
    sa.column("pubmed_query", sa.Text),
    sa.column("ctgov_term", sa.Text),
    sa.column("ctgov_intr", sa.Text),
    sa.column("match_terms", db.types.JSONType),
    sa.column("created_at", db.types.UTCDateTime()),
)


def upgrade() -> None:
    op.bulk_insert(
        targets,
        [
            {
                "slug": SLUG,
                "name": "HER2 (ERBB2) exon 20",
                "description": (
                    "ERBB2 exon 20 insertion mutations (such as A775_G776insYVMA) and the "
                    "HER2-selective drugs aimed at them: zongertinib, sevabertinib."
                ),
                "pubmed_query": PUBMED_QUERY,
                "ctgov_term": CTGOV_TERM,
                "ctgov_intr": CTGOV_INTR,
                "match_terms": MATCH_TERMS,
                "created_at": datetime.now(UTC),
            }
        ],
    )


def downgrade() -> None:
    op.execute(targets.delete().where(targets.c.slug == SLUG))
