"""a channel per incident: the incident's own Slack channel, its mirror cursor, its archive

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-04
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import bot.db.types

revision: str = "0009"
down_revision: str | Sequence[str] | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

COLUMNS = (
    ("slack_channel_id", sa.String(32)),
    ("slack_channel_name", sa.String(80)),
    ("channel_requested_by", sa.String(255)),
    ("channel_requested_at", bot.db.types.UTCDateTime(timezone=True)),
    ("channel_event_id", sa.Integer()),
    ("channel_archive_after_days", sa.Float()),
    ("channel_archive_at", bot.db.types.UTCDateTime(timezone=True)),
    ("channel_archived_at", bot.db.types.UTCDateTime(timezone=True)),
)


def upgrade() -> None:
    with op.batch_alter_table("incidents", schema=None) as batch_op:
        for name, kind in COLUMNS:
            batch_op.add_column(sa.Column(name, kind, nullable=True))
        batch_op.create_index("ix_incidents_slack_channel_id", ["slack_channel_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("incidents", schema=None) as batch_op:
        batch_op.drop_index("ix_incidents_slack_channel_id")
        for name, _kind in reversed(COLUMNS):
            batch_op.drop_column(name)
