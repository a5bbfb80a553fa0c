"""opsbot's own operation: the instances running, the episodes of its failures

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-03
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

import bot.db.types

revision: str = "0007"
down_revision: str | Sequence[str] | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "ops_instances",
        sa.Column("id", sa.String(length=80), nullable=False),
        sa.Column("host", sa.String(length=255), nullable=False),
        sa.Column("version", sa.String(length=64), nullable=False),
        sa.Column("commit", sa.String(length=64), nullable=False),
        sa.Column("config_version", sa.String(length=80), nullable=False),
        sa.Column("leader", sa.Boolean(), nullable=False),
        sa.Column("slack_auth_ok", sa.Boolean(), nullable=False),
        sa.Column("last_slack_ok_at", bot.db.types.UTCDateTime(timezone=True), nullable=True),
        sa.Column("last_pagerduty_ok_at", bot.db.types.UTCDateTime(timezone=True), nullable=True),
        sa.Column("started_at", bot.db.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("seen_at", bot.db.types.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ops_instances")),
    )
    op.create_table(
        "ops_notices",
        sa.Column("key", sa.String(length=40), nullable=False),
        sa.Column("episode", sa.Integer(), nullable=False),
        sa.Column("count", sa.Integer(), nullable=False),
        sa.Column("opened_at", bot.db.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("last_at", bot.db.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("closed_at", bot.db.types.UTCDateTime(timezone=True), nullable=True),
        sa.Column(
            "detail",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.PrimaryKeyConstraint("key", name=op.f("pk_ops_notices")),
    )


def downgrade() -> None:
    op.drop_table("ops_notices")
    op.drop_table("ops_instances")
