"""Catalogue-wide polling: a source state and feeds that belong to no single target, and
the window of fetched records that matched no target.

`source_states.target_id` and `feeds.target_id` become nullable: the row without a
target is the source's catalogue-wide poll (one per source, a partial unique index),
and a feed without a target is fetched once per cycle and matched against every target
(its URL unique among such feeds). `unmatched_items` keeps what a catalogue-wide poll
fetched and no target matched, for ALERTS_UNMATCHED_RETENTION_DAYS, so a new or edited
target is back-filled from it without refetching.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-08
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

import db.types

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")
NO_TARGET = sa.text("target_id IS NULL")


def upgrade() -> None:
    with op.batch_alter_table("source_states", schema=None) as batch_op:
        batch_op.alter_column("target_id", existing_type=BigId, nullable=True)
        batch_op.create_index(
            "uq_source_states_catalogue_source", ["source"], unique=True,
            sqlite_where=NO_TARGET, postgresql_where=NO_TARGET,
        )
    with op.batch_alter_table("feeds", schema=None) as batch_op:
        batch_op.alter_column("target_id", existing_type=BigId, nullable=True)
        batch_op.create_index(
            "uq_feeds_catalogue_url", ["url"], unique=True,
            sqlite_where=NO_TARGET, postgresql_where=NO_TARGET,
        )
    op.create_table(
        "unmatched_items",
        sa.Column("id", BigId, nullable=False),
        sa.Column("source", sa.String(length=16), nullable=False),
        sa.Column("external_id", sa.String(length=512), nullable=False),
        sa.Column("payload", JSON, nullable=False),
        sa.Column("seen_at", db.types.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_unmatched_items")),
        sa.UniqueConstraint(
            "source", "external_id", name=op.f("uq_unmatched_items_source_external_id")
        ),
    )
    with op.batch_alter_table("unmatched_items", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_unmatched_items_seen_at"), ["seen_at"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("unmatched_items", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_unmatched_items_seen_at"))
    op.drop_table("unmatched_items")
    op.execute("DELETE FROM feeds WHERE target_id IS NULL")
    op.execute("DELETE FROM source_states WHERE target_id IS NULL")
    with op.batch_alter_table("feeds", schema=None) as batch_op:
        batch_op.drop_index("uq_feeds_catalogue_url")
        batch_op.alter_column("target_id", existing_type=BigId, nullable=False)
    with op.batch_alter_table("source_states", schema=None) as batch_op:
        batch_op.drop_index("uq_source_states_catalogue_source")
        batch_op.alter_column("target_id", existing_type=BigId, nullable=False)
