"""An incident's Undo of a flag change whose own AppConfig rollout still runs: AppConfig
deploys one at a time, so /flag stops that deployment, and AppConfig rolls the
environment back to the version before it, which is exactly the undo."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from bot.audit.models import AuditRecord
from bot.clock import ManualClock
from sandbox.slack import SlackEmulator
from sandbox.sns import SnsSigner
from tests.changes.conftest import (  # noqa: F401  # the incident's fixtures
    CLAIMED,
    app_config,
    protected,
)
from tests.changes.test_changes import alarm, flip, press, undo_buttons
from tests.flags.conftest import FlagWorld
from tests.support import LiveService


def _rollout(flag_world: FlagWorld, number: int) -> dict[str, object]:
    found = flag_world.aws("appconfig").get_deployment(
        ApplicationId=flag_world.application,
        EnvironmentId=flag_world.environment,
        DeploymentNumber=number,
    )
    return dict(found)


# The strategy deploys over 2 minutes and bakes 1 more: AWS stops a rollout in its bake
# time only when asked with AllowRevert (the emulator refuses it otherwise, as AWS does).
@pytest.mark.parametrize(("after_s", "state"), [(60, "DEPLOYING"), (150, "BAKING")])
def test_the_undo_of_a_flag_still_rolling_out_stops_its_deployment(
    after_s: int,
    state: str,
    live: LiveService,
    flag_world: FlagWorld,
    clock: ManualClock,
    releases: SlackEmulator,
    sns_signer: SnsSigner,
) -> None:
    runtime = live.runtime
    # Version 1 is deployed and complete: what stopping the next deployment rolls back to.
    flag_world.aws("appconfig").start_deployment(
        ApplicationId=flag_world.application,
        EnvironmentId=flag_world.environment,
        DeploymentStrategyId=flag_world.strategy,
        ConfigurationProfileId=flag_world.profile,
        ConfigurationVersion="1",
    )
    clock.advance(minutes=5)
    assert _rollout(flag_world, 1)["State"] == "COMPLETE"
    assert "AppConfig deployment 2 started" in flip(runtime, "on", "apple_pay", actor="U0ALICE")
    assert flag_world.document()["values"]["apple_pay"] == {"enabled": True}
    clock.advance(seconds=after_s)  # the alarm fires while AppConfig still rolls it out
    runtime.scheduler.run_due(clock.now())
    _, message = alarm(live, sns_signer, releases, CLAIMED)
    assert _rollout(flag_world, 2)["State"] == state

    button = undo_buttons(message)["Turn apple_pay off again"]
    answer = press(live, releases, button, user="U0ALICE")
    assert "stopped deployment 2" in answer, answer
    assert "AppConfig rolls back to version 1" in answer, answer

    # AppConfig rolled back to the version before it: the flag is off, nothing else started.
    assert _rollout(flag_world, 2)["State"] == "ROLLED_BACK"
    deployed = flag_world.aws("appconfig").list_deployments(
        ApplicationId=flag_world.application, EnvironmentId=flag_world.environment
    )["Items"]
    assert sorted(int(d["DeploymentNumber"]) for d in deployed) == [1, 2]
    held = flag_world.gaps.deployed_version(flag_world.application, flag_world.environment)
    assert held == "1", held
    assert flag_world.document(1)["values"]["apple_pay"] == {"enabled": False}
    with runtime.sessions() as db:
        lines = db.scalars(
            sa.select(AuditRecord)
            .where(AuditRecord.action == "flag.change")
            .order_by(AuditRecord.id)
        ).all()
        stopped = lines[-1]
        assert stopped.outcome == "ok", (stopped.outcome, stopped.detail)
        assert stopped.actor == "U0ALICE"
        assert stopped.detail["stopped_deployment"] == 2
        assert stopped.detail["after"] == {"enabled": False}

    # The change's own watch records its end: rolled back.
    for _ in range(3):
        clock.advance(seconds=10)
        runtime.scheduler.run_due(clock.now())
    with runtime.sessions() as db:
        ended = db.scalars(
            sa.select(AuditRecord).where(AuditRecord.action == "flag.deployment")
        ).all()
        assert [(e.outcome, (e.detail or {}).get("deployment")) for e in ended] == [
            ("rolled_back", 2)
        ], [(e.outcome, e.detail) for e in ended]
