"""deploys: deployments, deploy locks, pending actions (confirmations and approvals)

Revision ID: 0004
Revises: 0002
Create Date: 2026-11-25
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

import bot.db.types

revision: str = "0004"
down_revision: str | Sequence[str] | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _json() -> sa.types.TypeEngine[Any]:
    return sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")


def upgrade() -> None:
    op.create_table(
        "deployments",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("app", sa.String(length=63), nullable=False),
        sa.Column("env", sa.String(length=63), nullable=False),
        sa.Column("kind", sa.String(length=20), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("actor", sa.String(length=255), nullable=False),
        sa.Column("approved_by", _json(), nullable=False),
        sa.Column("tag", sa.String(length=300), nullable=True),
        sa.Column("image", sa.String(length=1024), nullable=False),
        sa.Column("digest", sa.String(length=100), nullable=False),
        sa.Column("previous_image", sa.String(length=1024), nullable=True),
        sa.Column("previous_tag", sa.String(length=300), nullable=True),
        sa.Column("previous_task_definition", sa.String(length=2048), nullable=True),
        sa.Column("task_definition", sa.String(length=2048), nullable=True),
        sa.Column("rollback_of", sa.Integer(), nullable=True),
        sa.Column("ecs_deployment_id", sa.String(length=255), nullable=True),
        sa.Column("channel", sa.String(length=80), nullable=True),
        sa.Column("force_reason", sa.Text(), nullable=True),
        sa.Column("forced", _json(), nullable=False),
        sa.Column("scan", _json(), nullable=False),
        sa.Column("observed", _json(), nullable=False),
        sa.Column("observations", sa.Integer(), nullable=False),
        sa.Column("watch_job", sa.String(length=191), nullable=True),
        sa.Column("outcome", sa.Text(), nullable=True),
        sa.Column("created_at", bot.db.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("started_at", bot.db.types.UTCDateTime(timezone=True), nullable=True),
        sa.Column("last_checked_at", bot.db.types.UTCDateTime(timezone=True), nullable=True),
        sa.Column("last_progress_at", bot.db.types.UTCDateTime(timezone=True), nullable=True),
        sa.Column("stuck_at", bot.db.types.UTCDateTime(timezone=True), nullable=True),
        sa.Column("finished_at", bot.db.types.UTCDateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_deployments")),
    )
    with op.batch_alter_table("deployments", schema=None) as batch_op:
        batch_op.create_index("ix_deployments_app_env_id", ["app", "env", "id"], unique=False)
        batch_op.create_index("ix_deployments_status", ["status"], unique=False)

    op.create_table(
        "deploy_locks",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("app", sa.String(length=63), nullable=False),
        sa.Column("env", sa.String(length=63), nullable=False),
        sa.Column("kind", sa.String(length=20), nullable=False),
        sa.Column("holder", sa.String(length=255), nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("deployment_id", sa.Integer(), nullable=True),
        sa.Column("acquired_at", bot.db.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("reminded_at", bot.db.types.UTCDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["deployment_id"],
            ["deployments.id"],
            name=op.f("fk_deploy_locks_deployment_id_deployments"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_deploy_locks")),
        sa.UniqueConstraint("app", "env", "kind", name="uq_deploy_locks_app_env_kind"),
    )

    op.create_table(
        "pending_actions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=40), nullable=False),
        sa.Column("target", sa.String(length=512), nullable=False),
        sa.Column("summary", sa.String(length=1000), nullable=False),
        sa.Column("details", _json(), nullable=False),
        sa.Column("payload", _json(), nullable=False),
        sa.Column("requested_by", sa.String(length=255), nullable=False),
        sa.Column("requested_at", bot.db.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("channel", sa.String(length=80), nullable=False),
        sa.Column("needs_confirmation", sa.Boolean(), nullable=False),
        sa.Column("confirmed_by", sa.String(length=255), nullable=True),
        sa.Column("confirmed_at", bot.db.types.UTCDateTime(timezone=True), nullable=True),
        sa.Column("required_approvals", sa.Integer(), nullable=False),
        sa.Column("approvals", _json(), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("decided_by", sa.String(length=255), nullable=True),
        sa.Column("decided_at", bot.db.types.UTCDateTime(timezone=True), nullable=True),
        sa.Column("expires_at", bot.db.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("result", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_pending_actions")),
    )
    with op.batch_alter_table("pending_actions", schema=None) as batch_op:
        batch_op.create_index(
            "ix_pending_actions_status_expires_at", ["status", "expires_at"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("pending_actions", schema=None) as batch_op:
        batch_op.drop_index("ix_pending_actions_status_expires_at")

    op.drop_table("pending_actions")
    op.drop_table("deploy_locks")
    with op.batch_alter_table("deployments", schema=None) as batch_op:
        batch_op.drop_index("ix_deployments_status")
        batch_op.drop_index("ix_deployments_app_env_id")

    op.drop_table("deployments")
