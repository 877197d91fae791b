"""Reader labels: "not relevant" verdicts from the links in digests.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-07
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import db.types

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "reader_labels",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("item_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("target_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("subscriber_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True),
        sa.Column("label", sa.String(length=16), nullable=False),
        sa.Column("created_at", db.types.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(["item_id"], ["items.id"], name=op.f("fk_reader_labels_item_id_items"), ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["subscriber_id"], ["subscribers.id"], name=op.f("fk_reader_labels_subscriber_id_subscribers"), ondelete="SET NULL"),
        sa.ForeignKeyConstraint(["target_id"], ["targets.id"], name=op.f("fk_reader_labels_target_id_targets"), ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_reader_labels")),
        sa.UniqueConstraint("item_id", "target_id", "subscriber_id", name=op.f("uq_reader_labels_item_id_target_id_subscriber_id")),
    )
    with op.batch_alter_table("reader_labels", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_reader_labels_target_id"), ["target_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("reader_labels", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_reader_labels_target_id"))
    op.drop_table("reader_labels")
