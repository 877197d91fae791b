"""Requests to routes that send mail, counted per client and overall by the throttles
that hold across API processes.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-07
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import db.types

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "mail_requests",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("client", sa.String(length=64), nullable=False),
        sa.Column("created_at", db.types.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_mail_requests")),
    )
    with op.batch_alter_table("mail_requests", schema=None) as batch_op:
        batch_op.create_index(
            "ix_mail_requests_client_created", ["client", "created_at"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_mail_requests_created_at"), ["created_at"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("mail_requests", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_mail_requests_created_at"))
        batch_op.drop_index("ix_mail_requests_client_created")
    op.drop_table("mail_requests")
