"""the work owed behind Slack acknowledgements, so that a crash does not lose it unsaid

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-02
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import bot.db.types

revision: str = "0006"
down_revision: str | Sequence[str] | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "after_ack_work",
        sa.Column("key", sa.String(length=32), nullable=False),
        sa.Column("what", sa.String(length=120), nullable=False),
        sa.Column("response_url", sa.Text(), nullable=True),
        sa.Column("owner", sa.String(length=64), nullable=False),
        sa.Column("lease_until", bot.db.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("received_at", bot.db.types.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("key", name=op.f("pk_after_ack_work")),
    )
    with op.batch_alter_table("after_ack_work", schema=None) as batch_op:
        batch_op.create_index("ix_after_ack_work_owner", ["owner"], unique=False)
        batch_op.create_index("ix_after_ack_work_lease_until", ["lease_until"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("after_ack_work", schema=None) as batch_op:
        batch_op.drop_index("ix_after_ack_work_lease_until")
        batch_op.drop_index("ix_after_ack_work_owner")
    op.drop_table("after_ack_work")
