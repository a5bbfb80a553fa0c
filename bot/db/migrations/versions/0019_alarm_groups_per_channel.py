"""alarm groups: one open group per route name and channel, not per route name

Revision ID: 0019
Revises: 0018
Create Date: 2026-12-08
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0019"
down_revision: str | Sequence[str] | None = "0018"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Every open group is unique by route name already, so by route name and channel too.
    op.create_index(
        "uq_alarm_groups_open_route_channel",
        "alarm_groups",
        ["route_name", "channel"],
        unique=True,
        sqlite_where=sa.text("closed_at IS NULL"),
        postgresql_where=sa.text("closed_at IS NULL"),
    )
    op.drop_index("uq_alarm_groups_open_route", table_name="alarm_groups")


def downgrade() -> None:
    # The narrower index allows one open group per route name: the others of a name
    # (in other channels) are closed, as if quiet, and their next alarm forms a new one.
    op.execute(
        sa.text(
            "UPDATE alarm_groups SET closed_at = last_joined_at"
            " WHERE closed_at IS NULL AND id NOT IN ("
            " SELECT min(id) FROM alarm_groups WHERE closed_at IS NULL GROUP BY route_name)"
        )
    )
    op.create_index(
        "uq_alarm_groups_open_route",
        "alarm_groups",
        ["route_name"],
        unique=True,
        sqlite_where=sa.text("closed_at IS NULL"),
        postgresql_where=sa.text("closed_at IS NULL"),
    )
    op.drop_index("uq_alarm_groups_open_route_channel", table_name="alarm_groups")
