"""A flag roll on an incident's environment: it restarts a revision, it never puts one in place.

`api/prod` keeps its flags as SSM parameters here, so `/flag on` writes one
and restarts the service (a `flag-roll` row in `deployments`, of the revision
running). The one-click rollback never goes back to a flag roll, and a flag
roll over a revision deployed outside opsbot leaves that deploy outside opsbot.
"""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from bot.clock import ManualClock
from bot.config import Config, parse_config
from bot.deploys.models import FLAG_ROLL, Deployment
from bot.runtime import Runtime
from sandbox.slack import SlackEmulator
from sandbox.sns import SnsSigner
from tests.changes.conftest import CLAIMED, changes_config
from tests.changes.test_changes import alarm, deploy, flip, latest, press, undo_buttons
from tests.changes.test_outside import deploy_outside_opsbot, text_with
from tests.deploys.world import World
from tests.flags.conftest import SERVICE_NAME, FlagWorld
from tests.incidents.helpers import command, message_text, responses_to
from tests.support import LiveService, wait_for


@pytest.fixture
def app_config(flag_world: FlagWorld) -> Config:
    config = changes_config(flag_world)
    prod = config["apps"]["api"]["environments"]["prod"]
    prod["flags"] = {"backend": "ssm", "service_name": SERVICE_NAME}
    return parse_config(config)


def short(arn: str) -> str:
    return arn.rsplit("/", 1)[-1]


def roll_flag(runtime: Runtime, world: World, clock: ManualClock, verb: str, flag: str) -> int:
    """`/flag` on an SSM flag, its restart rolled out to the end; the flag roll's id."""
    answer = flip(runtime, verb, flag, actor="U0ALICE")
    assert "is now" in answer, answer
    world.rollouts.complete("prod")
    clock.advance(seconds=10)
    runtime.scheduler.run_due(clock.now())
    with runtime.sessions() as db:
        roll = db.scalars(
            sa.select(Deployment).where(Deployment.kind == FLAG_ROLL).order_by(Deployment.id)
        ).all()[-1]
        assert roll.status == "completed"
        return roll.id


def test_the_undo_rolls_back_to_the_deploy_before_never_to_a_flag_roll(
    live: LiveService,
    world: World,
    flag_world: FlagWorld,
    clock: ManualClock,
    releases: SlackEmulator,
    sns_signer: SnsSigner,
) -> None:
    runtime = live.runtime
    first = deploy(runtime, world, clock, "1.0.1", actor="U0ALICE")
    roll = roll_flag(runtime, world, clock, "on", "apple_pay")  # restarts 1.0.1's revision
    second = deploy(runtime, world, clock, "1.0.2", actor="U0ALICE")
    clock.advance(minutes=5)

    _, message = alarm(live, sns_signer, releases, CLAIMED)
    buttons = undo_buttons(message)
    assert "Roll back to 1.0.1" in buttons, list(buttons)
    assert not [label for label in buttons if "FF_" in label]
    assert "FF_" not in message_text(message)

    answer = press(live, releases, buttons["Roll back to 1.0.1"], user="U0BOB")
    assert answer.startswith("Rollback #4 of `api` `1.0.1` to `api/prod` started"), answer
    with runtime.sessions() as db:
        back = db.get(Deployment, 4)
        assert back is not None
        assert (back.rollback_of, back.tag, back.kind) == (first, "1.0.1", "rollback")
        assert back.rollback_of not in (roll, second)


def test_a_flag_roll_over_a_deploy_made_outside_opsbot_leaves_it_outside(
    live: LiveService,
    world: World,
    flag_world: FlagWorld,
    clock: ManualClock,
    releases: SlackEmulator,
    sns_signer: SnsSigner,
) -> None:
    runtime = live.runtime
    deploy(runtime, world, clock, "1.0.1", actor="U0ALICE")
    deploy(runtime, world, clock, "1.0.2", actor="U0ALICE")
    clock.advance(minutes=5)
    outside = deploy_outside_opsbot(world, clock, "1.0.3")  # CI, not opsbot
    clock.advance(minutes=5)
    incident, _ = alarm(live, sns_signer, releases, CLAIMED)
    runtime.scheduler.run_due(clock.now())  # the look at ECS sees the outside deploy
    replaced = f"replaced by `{short(outside)}`, deployed outside opsbot"
    text_with(releases, incident, replaced)

    # A flag is turned on: opsbot restarts the revision CI put in place.
    roll = roll_flag(runtime, world, clock, "on", "apple_pay")
    with runtime.sessions() as db:
        restarted = db.get(Deployment, roll)
        assert restarted is not None and restarted.task_definition == outside

    # Any re-render of the message (here: an acknowledgement) still knows whose it is.
    url = releases.response_url()
    command(live, "/incident", f"ack {incident.id}", user_id="U0ALICE", response_url=url)
    wait_for(lambda: responses_to(releases, url))
    text = text_with(releases, incident, "acknowledged by")
    assert replaced in text
    assert f":eyes: Task definition `{short(outside)}` (image `1.0.3`)" in text
    assert "Roll back to" not in str(undo_buttons(latest(releases, incident)))
