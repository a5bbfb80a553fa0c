"""A failed newest deploy leaves the Roll back button on the deploy ECS still runs."""

from __future__ import annotations

from bot.clock import ManualClock
from bot.deploys.plans import Request
from bot.deploys.requests import submit
from sandbox.slack import SlackEmulator
from sandbox.sns import SnsSigner
from tests.changes.conftest import CLAIMED
from tests.changes.test_changes import alarm, deploy, latest, message_text, press, undo_buttons
from tests.deploys.world import World
from tests.flags.conftest import FlagWorld
from tests.support import LiveService, wait_for


def test_a_failed_newest_deploy_leaves_the_rollback_of_the_deploy_that_runs(
    live: LiveService,
    world: World,
    flag_world: FlagWorld,
    clock: ManualClock,
    releases: SlackEmulator,
    sns_signer: SnsSigner,
) -> None:
    runtime = live.runtime
    deploy(runtime, world, clock, "1.0.1", actor="U0ALICE")
    first_revision = world.service_task_definition("prod")
    clock.advance(minutes=30)
    deploy(runtime, world, clock, "1.0.2", actor="U0ALICE")
    running = world.service_task_definition("prod")
    clock.advance(minutes=10)
    accepted = submit(runtime, Request(app="api", env="prod", actor="U0ALICE", tag="1.0.4"))
    assert accepted.deployment_id is not None, accepted.text
    world.rollouts.fail("prod", reasons=["Essential container exited"])
    for _ in range(20):
        clock.advance(seconds=10)
        runtime.scheduler.run_due(clock.now())
    assert world.service_task_definition("prod") == running  # ECS put 1.0.2 back
    clock.advance(minutes=2)

    incident, _ = alarm(live, sns_signer, releases, CLAIMED)
    runtime.scheduler.run_due(clock.now())  # the look at ECS
    message = wait_for(
        lambda: (
            found
            if "Looking at ECS" not in message_text(found := latest(releases, incident))
            else None
        )
    )
    text = message_text(message)
    # ECS's circuit breaker put 1.0.2's own revision back: not a deploy made outside
    # opsbot that replaced it.
    assert "outside opsbot" not in text, text
    buttons = undo_buttons(message)
    assert list(buttons) == ["Roll back to 1.0.1"], text

    answer = press(live, releases, buttons["Roll back to 1.0.1"], user="U0ALICE")
    assert "Rollback" in answer, answer
    world.rollouts.complete("prod")
    assert world.service_task_definition("prod") == first_revision
