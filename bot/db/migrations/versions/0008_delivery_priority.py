"""delivery lanes: a person's click goes before bulk work (deliveries.priority)

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-04
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | Sequence[str] | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("deliveries", schema=None) as batch_op:
        # Deliveries already waiting are bulk (1): nobody's click is known to wait on them.
        batch_op.add_column(
            sa.Column("priority", sa.Integer(), server_default=sa.text("1"), nullable=False)
        )
        batch_op.create_index(
            "ix_deliveries_pending_priority_id",
            ["priority", "id"],
            unique=False,
            sqlite_where=sa.text("status = 'pending'"),
            postgresql_where=sa.text("status = 'pending'"),
        )


def downgrade() -> None:
    with op.batch_alter_table("deliveries", schema=None) as batch_op:
        batch_op.drop_index("ix_deliveries_pending_priority_id")
        batch_op.drop_column("priority")
