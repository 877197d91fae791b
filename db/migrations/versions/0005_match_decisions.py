"""Match decisions: the evidence of every matched link, and the rejected items kept.

`item_targets` stays the "matched" link that every reader follows; it gains the
evidence (sentence or field value), its field, the highlight spans and when the rule
decided. `item_rejections` holds the items seen for a target that its rule rejected, so
a changed rule can decide them again (`alerts targets rematch`) without refetching.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-07
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

import db.types

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")


def upgrade() -> None:
    with op.batch_alter_table("item_targets", schema=None) as batch_op:
        batch_op.add_column(sa.Column("evidence", sa.Text(), nullable=False, server_default=""))
        batch_op.add_column(
            sa.Column("evidence_field", sa.String(length=32), nullable=False, server_default="")
        )
        batch_op.add_column(sa.Column("highlights", JSON, nullable=False, server_default="[]"))
        batch_op.add_column(
            sa.Column("decided_at", db.types.UTCDateTime(timezone=True), nullable=True)
        )
    # A link made before decisions were recorded was decided when it was made.
    op.execute("UPDATE item_targets SET decided_at = created_at")
    with op.batch_alter_table("item_targets", schema=None) as batch_op:
        batch_op.alter_column(
            "decided_at", existing_type=db.types.UTCDateTime(timezone=True), nullable=False
        )

    op.create_table(
        "item_rejections",
        sa.Column("id", BigId, nullable=False),
        sa.Column("item_id", BigId, nullable=False),
        sa.Column("target_id", BigId, nullable=False),
        sa.Column("created_at", db.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("decided_at", db.types.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["item_id"], ["items.id"], name=op.f("fk_item_rejections_item_id_items"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["target_id"], ["targets.id"], name=op.f("fk_item_rejections_target_id_targets"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_item_rejections")),
        sa.UniqueConstraint(
            "item_id", "target_id", name=op.f("uq_item_rejections_item_id_target_id")
        ),
    )
    with op.batch_alter_table("item_rejections", schema=None) as batch_op:
        batch_op.create_index("ix_item_rejections_target_id", ["target_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("item_rejections", schema=None) as batch_op:
        batch_op.drop_index("ix_item_rejections_target_id")
    op.drop_table("item_rejections")
    with op.batch_alter_table("item_targets", schema=None) as batch_op:
        batch_op.drop_column("decided_at")
        batch_op.drop_column("highlights")
        batch_op.drop_column("evidence_field")
        batch_op.drop_column("evidence")
