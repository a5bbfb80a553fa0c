"""A name longer than the audit trail's columns is still refused with an audit line."""

from __future__ import annotations

import sqlalchemy as sa

from bot.audit.models import TARGET_LENGTH, AuditRecord
from sandbox.slack import SlackEmulator
from tests.deploys.test_slack import answered, command
from tests.flags.conftest import FlagWorld
from tests.support import LiveService


def test_a_typed_app_name_longer_than_the_audit_column_is_refused_and_audited(
    live: LiveService, releases: SlackEmulator, flag_world: FlagWorld
) -> None:
    app = "x" * 600
    _, url = command(live, releases, "/flag", f"on {app} prod apple_pay")
    assert "x" * 20 in answered(releases, url)  # a refusal naming the app, not an error
    with live.runtime.sessions() as db:
        [row] = db.scalars(sa.select(AuditRecord).where(AuditRecord.action == "flag.change"))
    assert row.outcome == "refused"
    assert len(row.target) == TARGET_LENGTH and row.target.endswith("…")
    assert row.detail["whole_target"] == f"flag:{app}/prod"
    assert flag_world.versions() == [1]
