"""What an earlier look at ECS saw stays: a newer look, which ECS no longer shows the
older deployment to, does not take a deploy made outside opsbot off an earlier message."""

from __future__ import annotations

from bot.clock import ManualClock
from sandbox.slack import SlackEmulator
from sandbox.sns import SnsSigner
from tests.changes.conftest import CLAIMED
from tests.changes.test_changes import alarm, deploy
from tests.changes.test_outside import deploy_outside_opsbot, looks, text_with
from tests.deploys.world import World
from tests.incidents.helpers import command, responses_to
from tests.support import LiveService, wait_for


def test_a_newer_look_keeps_the_outside_deploy_an_earlier_incident_lists(
    live: LiveService,
    world: World,
    clock: ManualClock,
    releases: SlackEmulator,
    sns_signer: SnsSigner,
) -> None:
    runtime = live.runtime
    deploy(runtime, world, clock, "1.0.1", actor="U0ALICE")
    clock.advance(minutes=20)
    revision = deploy_outside_opsbot(world, clock, "1.0.3").rsplit("/", 1)[-1]
    clock.advance(minutes=5)
    incident, _ = alarm(live, sns_signer, releases, CLAIMED)
    runtime.scheduler.run_due(clock.now())
    seen = f":eyes: Task definition `{revision}` (image `1.0.3`)"
    text_with(releases, incident, seen)

    # Fixed forward with opsbot; a later alarm's look sees only opsbot's deploy on ECS.
    clock.advance(minutes=10)
    deploy(runtime, world, clock, "1.0.4", actor="U0ALICE")
    clock.advance(minutes=5)
    alarm(live, sns_signer, releases, "prod-api-latency")
    runtime.scheduler.run_due(clock.now())
    assert looks(live, "ok") == 2

    # Any re-render of the first incident (here: an acknowledgement) still lists it.
    url = releases.response_url()
    command(live, "/incident", f"ack {incident.id}", user_id="U0ALICE", response_url=url)
    wait_for(lambda: responses_to(releases, url))
    text = text_with(releases, incident, "acknowledged by")
    assert seen in text
    assert "Deploy `1.0.1` (from `1.0.0`) by <@U0ALICE>" in text


def test_a_look_that_fails_keeps_what_earlier_looks_saw_for_the_rollback_button(
    live: LiveService,
    world: World,
    clock: ManualClock,
    releases: SlackEmulator,
    sns_signer: SnsSigner,
) -> None:
    runtime = live.runtime
    deploy(runtime, world, clock, "1.0.1", actor="U0ALICE")
    deploy(runtime, world, clock, "1.0.2", actor="U0ALICE")
    clock.advance(minutes=5)
    revision = deploy_outside_opsbot(world, clock, "1.0.3").rsplit("/", 1)[-1]
    clock.advance(minutes=5)
    incident, _ = alarm(live, sns_signer, releases, CLAIMED)
    runtime.scheduler.run_due(clock.now())
    replaced = f"replaced by `{revision}`, deployed outside opsbot"
    text_with(releases, incident, replaced)

    # ECS cannot be read for a later alarm's look: what the earlier one saw still holds.
    world.aws("ecs").delete_service(cluster="prod", service="api", force=True)
    clock.advance(minutes=2)
    later, _ = alarm(live, sns_signer, releases, "prod-api-latency")
    runtime.scheduler.run_due(clock.now())
    assert looks(live, "failed") == 1
    text = text_with(releases, later, "(`ServiceNotFound`)")
    assert replaced in text
    assert "Roll back to" not in text
