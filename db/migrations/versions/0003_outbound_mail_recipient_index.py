"""Index outbound mails by recipient, kind and time, for the per-address rate limit
(the table keeps every mail sent, so an unindexed count grows slower with it).

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-26
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("outbound_mails", schema=None) as batch_op:
        batch_op.create_index(
            "ix_outbound_mails_recipient_kind_created",
            ["recipient", "kind", "created_at"],
            unique=False,
        )


def downgrade() -> None:
    with op.batch_alter_table("outbound_mails", schema=None) as batch_op:
        batch_op.drop_index("ix_outbound_mails_recipient_kind_created")
