"""sns_certificates: SNS signing certificates fetched before, kept across restarts

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-06
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import bot.db.types

revision: str = "0014"
down_revision: str | Sequence[str] | None = "0013"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "sns_certificates",
        sa.Column("url", sa.String(length=2048), nullable=False),
        sa.Column("pem", sa.Text(), nullable=False),
        sa.Column("fetched_at", bot.db.types.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("url", name=op.f("pk_sns_certificates")),
    )


def downgrade() -> None:
    op.drop_table("sns_certificates")
