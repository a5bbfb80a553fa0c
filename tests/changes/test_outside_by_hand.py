"""A revision opsbot once deployed, put back by hand on ECS: a deploy made outside opsbot.

Whose revision it is does not say who rolled it out: only an ECS deployment
opsbot started (its recorded id, or its start within a couple of minutes) is
opsbot's.
"""

from __future__ import annotations

from bot.clock import ManualClock
from sandbox.slack import SlackEmulator
from sandbox.sns import SnsSigner
from tests.changes.conftest import CLAIMED
from tests.changes.test_changes import alarm, deploy, latest, undo_buttons
from tests.changes.test_outside import text_with
from tests.deploys.world import World
from tests.support import LiveService


def test_a_console_rollback_to_a_revision_opsbot_deployed_is_listed_and_offers_no_rollback(
    live: LiveService,
    world: World,
    clock: ManualClock,
    releases: SlackEmulator,
    sns_signer: SnsSigner,
) -> None:
    runtime = live.runtime
    deploy(runtime, world, clock, "1.0.1", actor="U0ALICE")
    first_revision = world.service_task_definition("prod")
    clock.advance(minutes=30)
    deploy(runtime, world, clock, "1.0.2", actor="U0ALICE")
    clock.advance(minutes=10)
    # An operator rolls back in the console, to the revision opsbot deployed for 1.0.1.
    world.aws("ecs").update_service(cluster="prod", service="api", taskDefinition=first_revision)
    world.rollouts.primary("prod")["createdAt"] = clock.now()
    world.rollouts.complete("prod")
    clock.advance(minutes=5)

    incident, message = alarm(live, sns_signer, releases, CLAIMED)
    assert "Roll back to 1.0.1" in undo_buttons(message)  # before the look: what opsbot knows
    runtime.scheduler.run_due(clock.now())
    revision = first_revision.rsplit("/", 1)[-1]
    # opsbot pins images by digest: the revision names one.
    text = text_with(releases, incident, f":eyes: Task definition `{revision}` (image `sha256:")
    assert "seen on ECS, not made by opsbot" in text
    assert f"replaced by `{revision}`, deployed outside opsbot" in text
    assert not undo_buttons(latest(releases, incident))
