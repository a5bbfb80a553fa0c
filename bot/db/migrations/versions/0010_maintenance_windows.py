"""maintenance windows, and who has opened App Home (for its refreshes)

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-04
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from bot.db.types import UTCDateTime

revision: str = "0010"
down_revision: str | Sequence[str] | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "maintenance_windows",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=20), nullable=False),
        sa.Column("pattern", sa.String(length=255), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("created_by", sa.String(length=32), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("starts_at", UTCDateTime(), nullable=False),
        sa.Column("ends_at", UTCDateTime(), nullable=False),
        sa.Column("ended_at", UTCDateTime(), nullable=True),
        sa.Column("ended_by", sa.String(length=32), nullable=True),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_maintenance_windows_open", "maintenance_windows", ["ended_at", "starts_at"])
    op.create_table(
        "home_views",
        sa.Column("user_id", sa.String(length=32), nullable=False),
        sa.Column("opened_at", UTCDateTime(), nullable=False),
        sa.Column("published_at", UTCDateTime(), nullable=True),
        sa.Column("published_state", sa.String(length=64), nullable=True),
        sa.PrimaryKeyConstraint("user_id"),
    )
    op.create_index("ix_home_views_opened_at", "home_views", ["opened_at"])


def downgrade() -> None:
    op.drop_index("ix_home_views_opened_at", table_name="home_views")
    op.drop_table("home_views")
    op.drop_index("ix_maintenance_windows_open", table_name="maintenance_windows")
    op.drop_table("maintenance_windows")
