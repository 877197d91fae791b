"""Index item links by (target, created_at, item_id): the item list's whole ORDER BY, so
a page is read from the index at its cursor, however deep, without sorting. It replaces
(target, created_at), which is its prefix.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-07
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("item_targets", schema=None) as batch_op:
        batch_op.create_index(
            "ix_item_targets_target_created_item",
            ["target_id", "created_at", "item_id"],
            unique=False,
        )
        batch_op.drop_index("ix_item_targets_target_created")


def downgrade() -> None:
    with op.batch_alter_table("item_targets", schema=None) as batch_op:
        batch_op.create_index(
            "ix_item_targets_target_created", ["target_id", "created_at"], unique=False
        )
        batch_op.drop_index("ix_item_targets_target_created_item")
