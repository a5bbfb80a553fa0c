"""Only deployers reach production: a user outside the allowed groups is refused, a member is not.

The date is before the configured Black Friday freeze (the tests' clock), so the
only thing deciding is the user's rights.
"""

from __future__ import annotations

import sqlalchemy as sa

from bot.approvals.models import PendingAction
from bot.audit.models import AuditRecord
from bot.deploys.models import Deployment
from sandbox.slack import SlackEmulator
from tests.deploys.conftest import DEPLOYERS_GROUP
from tests.deploys.test_slack import answered, command
from tests.deploys.world import World
from tests.support import LiveService


def test_a_user_outside_the_allowed_groups_cannot_deploy_to_production(
    live: LiveService, releases: SlackEmulator, world: World
) -> None:
    releases.add_user("U0MALLORY", "mallory", email="mallory@example.com")
    releases.add_usergroup("S0OTHERS", "everyone-else", ["U0MALLORY", "U0CAROL"])
    before = world.service_task_definition("prod")
    for user in ("U0MALLORY", "U0CAROL"):
        _, url = command(live, releases, "/deploy", "api prod 1.0.2", user=user)
        assert answered(releases, url).startswith("You may not deploy to `api/prod`.")
        assert f"<!subteam^{DEPLOYERS_GROUP}>" in answered(releases, url)
    _, url = command(live, releases, "/rollback", "api prod", user="U0MALLORY")
    assert answered(releases, url).startswith("You may not")
    assert world.service_task_definition("prod") == before
    with live.runtime.sessions() as db:
        assert db.scalars(sa.select(Deployment)).all() == []
        assert db.scalars(sa.select(PendingAction)).all() == []
        refusals = db.scalars(sa.select(AuditRecord).where(AuditRecord.outcome == "refused")).all()
        assert {r.actor for r in refusals} == {"U0MALLORY", "U0CAROL"}


def test_a_member_of_the_deployers_group_gets_the_confirmation(
    live: LiveService, releases: SlackEmulator, world: World
) -> None:
    _, url = command(live, releases, "/deploy", "api prod 1.0.2", user="U0BOB")  # in S0DEPLOYERS
    assert not answered(releases, url).startswith("You may not")
    with live.runtime.sessions() as db:
        [request] = db.scalars(sa.select(PendingAction)).all()
        assert request.requested_by == "U0BOB"
