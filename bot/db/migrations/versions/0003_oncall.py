"""on-call: PagerDuty user links, inbound receipts, what incidents know of PagerDuty

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-25
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

import bot.db.types

revision: str = "0003"
down_revision: str | Sequence[str] | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "inbound_receipts",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("source", sa.String(length=40), nullable=False),
        sa.Column("key", sa.String(length=255), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("lease_until", bot.db.types.UTCDateTime(timezone=True), nullable=True),
        sa.Column("received_at", bot.db.types.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_inbound_receipts")),
        sa.UniqueConstraint("source", "key", name="uq_inbound_receipts_source_key"),
    )
    op.create_table(
        "pagerduty_user_links",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("slack_user_id", sa.String(length=32), nullable=False),
        sa.Column("pagerduty_user_id", sa.String(length=32), nullable=False),
        sa.Column("pagerduty_email", sa.String(length=320), nullable=False),
        sa.Column("pagerduty_name", sa.String(length=255), nullable=False),
        sa.Column("linked", sa.Boolean(), nullable=False),
        sa.Column("checked_at", bot.db.types.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_pagerduty_user_links")),
        sa.UniqueConstraint("slack_user_id", name=op.f("uq_pagerduty_user_links_slack_user_id")),
    )
    with op.batch_alter_table("pagerduty_user_links", schema=None) as batch_op:
        batch_op.create_index(
            "ix_pagerduty_user_links_pagerduty_user_id", ["pagerduty_user_id"], unique=False
        )

    with op.batch_alter_table("incidents", schema=None) as batch_op:
        batch_op.add_column(sa.Column("silenced_by", sa.String(length=255), nullable=True))
        batch_op.add_column(sa.Column("opened_by", sa.String(length=255), nullable=True))
        batch_op.add_column(sa.Column("pagerduty_number", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("pagerduty_url", sa.String(length=1024), nullable=True))
        batch_op.add_column(sa.Column("pagerduty_status", sa.String(length=20), nullable=True))
        batch_op.add_column(sa.Column("escalation_level", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("priority", sa.String(length=80), nullable=True))
        batch_op.add_column(
            sa.Column(
                "assignees",
                sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
                nullable=False,
                server_default=sa.text("'[]'"),  # for the incidents that exist already
            )
        )
        batch_op.add_column(
            sa.Column("pagerduty_synced_at", bot.db.types.UTCDateTime(timezone=True), nullable=True)
        )
        batch_op.add_column(sa.Column("remind_after_min", sa.Float(), nullable=True))
        batch_op.add_column(sa.Column("escalate_after_min", sa.Float(), nullable=True))
        batch_op.add_column(
            sa.Column("remind_at", bot.db.types.UTCDateTime(timezone=True), nullable=True)
        )
        batch_op.add_column(
            sa.Column("escalate_at", bot.db.types.UTCDateTime(timezone=True), nullable=True)
        )
        batch_op.create_index(
            "ix_incidents_pagerduty_incident_id", ["pagerduty_incident_id"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("incidents", schema=None) as batch_op:
        batch_op.drop_index("ix_incidents_pagerduty_incident_id")
        batch_op.drop_column("escalate_at")
        batch_op.drop_column("remind_at")
        batch_op.drop_column("escalate_after_min")
        batch_op.drop_column("remind_after_min")
        batch_op.drop_column("pagerduty_synced_at")
        batch_op.drop_column("assignees")
        batch_op.drop_column("priority")
        batch_op.drop_column("escalation_level")
        batch_op.drop_column("pagerduty_status")
        batch_op.drop_column("pagerduty_url")
        batch_op.drop_column("pagerduty_number")
        batch_op.drop_column("opened_by")
        batch_op.drop_column("silenced_by")

    with op.batch_alter_table("pagerduty_user_links", schema=None) as batch_op:
        batch_op.drop_index("ix_pagerduty_user_links_pagerduty_user_id")

    op.drop_table("pagerduty_user_links")
    op.drop_table("inbound_receipts")
