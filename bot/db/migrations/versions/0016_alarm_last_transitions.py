"""alarm_last_transitions: an alarm's newest transition while it has no incident

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-06
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import bot.db.types

revision: str = "0016"
down_revision: str | Sequence[str] | None = "0015"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "alarm_last_transitions",
        sa.Column("alarm_arn", sa.String(length=2048), nullable=False),
        sa.Column("state", sa.String(length=32), nullable=False),
        sa.Column("state_changed_at", bot.db.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("recorded_at", bot.db.types.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("alarm_arn", name=op.f("pk_alarm_last_transitions")),
    )


def downgrade() -> None:
    op.drop_table("alarm_last_transitions")
