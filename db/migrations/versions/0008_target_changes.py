"""Targets changed by the command line and the admin API: who changed what
(target_changes), and what the catalogue file last said of each target (origin,
file_entry) so that a sync neither undoes a local edit nor ignores the file.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-08
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import db.types

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("targets", schema=None) as batch_op:
        batch_op.add_column(sa.Column("sources", db.types.JSONType, nullable=False,
                                      server_default="[]"))
        batch_op.add_column(sa.Column("origin", sa.String(length=8), nullable=False,
                                      server_default="file"))
        batch_op.add_column(sa.Column("file_entry", db.types.JSONType, nullable=True))
    with op.batch_alter_table("targets", schema=None) as batch_op:
        batch_op.alter_column("sources", server_default=None)
    op.create_table(
        "target_changes",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("target_slug", sa.String(length=64), nullable=False),
        sa.Column("action", sa.String(length=8), nullable=False),
        sa.Column("changed_by", sa.String(length=200), nullable=False),
        sa.Column("changed_at", db.types.UTCDateTime(), nullable=False),
        sa.Column("before", db.types.JSONType, nullable=True),
        sa.Column("after", db.types.JSONType, nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_target_changes")),
    )
    with op.batch_alter_table("target_changes", schema=None) as batch_op:
        batch_op.create_index("ix_target_changes_slug_id", ["target_slug", "id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("target_changes", schema=None) as batch_op:
        batch_op.drop_index("ix_target_changes_slug_id")
    op.drop_table("target_changes")
    with op.batch_alter_table("targets", schema=None) as batch_op:
        batch_op.drop_column("file_entry")
        batch_op.drop_column("origin")
        batch_op.drop_column("sources")
