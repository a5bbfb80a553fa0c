"""A hosted version that was written and never deployed is never shipped under another change.

StartDeployment can fail after CreateHostedConfigurationVersion succeeded
(throttling, access denied on the strategy, a console deployment started in
between): the newest hosted version is then not what the environment holds.
A change is made from the DEPLOYED version; the request, the answer, `/flag
list` and the audit name the undeployed version and what it holds.

The failure is real: the deployment strategy is gone from the AppConfig
stand-in, which answers StartDeployment with ResourceNotFoundException, as
AppConfig does.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import pytest
import sqlalchemy as sa

from bot.approvals import flows as approvals
from bot.approvals.models import PendingAction
from bot.clock import ManualClock
from bot.flags import flows
from bot.flags.document import FlagDocument, differences
from bot.flags.errors import FlagRefused
from bot.runtime import Runtime
from tests.flags.conftest import FlagWorld
from tests.flags.test_appconfig import audits, change, tick


@contextmanager
def strategy_gone(fw: FlagWorld) -> Iterator[None]:
    """StartDeployment is refused (ResourceNotFoundException) while the strategy is gone."""
    with fw.gaps.lock:
        strategy = fw.gaps.strategies.pop(fw.strategy)
    try:
        yield
    finally:
        with fw.gaps.lock:
            fw.gaps.strategies[fw.strategy] = strategy


def deploy_version(fw: FlagWorld, clock: ManualClock, number: int = 1) -> None:
    """What Terraform does with the version it writes: deploy it (all at once, 10 min bake)."""
    fw.aws("appconfig").start_deployment(
        ApplicationId=fw.application,
        EnvironmentId=fw.environment,
        DeploymentStrategyId="AppConfig.AllAtOnce",
        ConfigurationProfileId=fw.profile,
        ConfigurationVersion=str(number),
        Description="Terraform",
    )
    clock.advance(minutes=11)


def newest_request(runtime: Runtime) -> PendingAction:
    with runtime.sessions() as db:
        return db.scalars(sa.select(PendingAction).order_by(PendingAction.id.desc())).first()


def confirm_newest(runtime: Runtime) -> str:
    action = newest_request(runtime)
    return approvals.click(runtime, action_id=action.id, user_id="U0ALICE", decision="confirm").text


def deployed_versions(fw: FlagWorld) -> list[str]:
    return [d["ConfigurationVersion"] for d in reversed(fw.deployments())]


def fail_to_deploy_apple_pay(runtime: Runtime, fw: FlagWorld) -> str:
    flows.submit(runtime, change("on", "apple_pay"))
    with strategy_gone(fw):
        return confirm_newest(runtime)


def test_a_failed_start_says_written_not_deployed_and_the_next_change_leaves_it_out(
    runtime: Runtime, flag_world: FlagWorld, clock: ManualClock
) -> None:
    deploy_version(flag_world, clock)
    answer = fail_to_deploy_apple_pay(runtime, flag_world)
    assert "`apple_pay` of `api/prod`: version 2 written, not deployed" in answer
    assert "ResourceNotFoundException" in answer
    assert "Nothing changed in `api/prod`: it still holds version 1." in answer
    assert flag_world.versions() == [1, 2]
    assert deployed_versions(flag_world) == ["1"]
    [failed] = audits(runtime, "flag.change")
    assert failed.outcome == "failed" and failed.detail["version"] == 2

    # /flag list speaks of what is deployed, and names what is not.
    listing = flows.list_flags(runtime, app="api", env="prod")
    assert ":white_circle: `apple_pay` (Apple Pay) *off*" in listing
    assert "Deployed version 1: Terraform" in listing
    assert (
        ":warning: Hosted version 2 (opsbot for U0ALICE: apple_pay on) was written after the "
        "deployed version 1 and is not deployed: `apple_pay` off → on." in listing
    )

    # Another change: the request shows version 2 is left out; what ships is only banner.
    asked = flows.submit(runtime, change("on", "banner"))
    assert "waits for your confirmation" in asked
    details = newest_request(runtime).details
    assert "*AppConfig* a new version made from the deployed version 1" in details[2]
    assert details[3] == (
        "*Not shipped* Hosted version 2 (opsbot for U0ALICE: apple_pay on) was written after "
        "the deployed version 1 and is not deployed: `apple_pay` off → on. It is left out of "
        "this change."
    )
    result = confirm_newest(runtime)
    assert "version 3 written, AppConfig deployment 2 started" in result
    assert "Hosted version 2 (opsbot for U0ALICE: apple_pay on)" in result
    assert "it is left out of this change." in result
    assert deployed_versions(flag_world) == ["1", "3"]
    shipped = FlagDocument(flag_world.document(3))
    assert shipped.raw["values"]["apple_pay"] == {"enabled": False}
    assert [d["flag"] for d in differences(FlagDocument(flag_world.document(1)), shipped)] == [
        "banner"
    ]
    described = flag_world.aws("appconfig").get_hosted_configuration_version(
        **flag_world.ids(), VersionNumber=3
    )["Description"]
    assert described == (
        "opsbot for U0ALICE: banner on (made from the deployed version 1; version 2 is not "
        "deployed)"
    )
    done = audits(runtime, "flag.change")[-1]
    assert done.outcome == "ok" and done.detail["flag"] == "banner"
    assert done.detail["deployed_version"] == 1 and done.detail["previous_version"] == 2
    assert done.detail["undeployed"] == {
        "version": 2,
        "description": "opsbot for U0ALICE: apple_pay on",
        "deployed_version": 1,
        "differences": [{"flag": "apple_pay", "from": {"enabled": False}, "to": {"enabled": True}}],
    }


def test_asking_again_after_a_failed_start_deploys_the_change(
    runtime: Runtime, flag_world: FlagWorld, clock: ManualClock
) -> None:
    deploy_version(flag_world, clock)
    fail_to_deploy_apple_pay(runtime, flag_world)
    # Not "already on": it is off where it counts.
    assert "waits for your confirmation" in flows.submit(runtime, change("on", "apple_pay"))
    assert "version 3 written, AppConfig deployment 2 started" in confirm_newest(runtime)
    assert flag_world.document(3)["values"]["apple_pay"] == {"enabled": True}
    assert deployed_versions(flag_world) == ["1", "3"]
    for _ in range(20):
        tick(runtime, clock)
    # Deployed: nothing more to change, said of the deployed version.
    with pytest.raises(FlagRefused) as refused:
        flows.submit(runtime, change("on", "apple_pay"))
    assert str(refused.value) == (
        "`apple_pay` of `api/prod` is already on in the deployed version 3: nothing to change."
    )


def test_never_deployed_with_an_undeployed_version_refuses_rather_than_guess(
    runtime: Runtime, flag_world: FlagWorld
) -> None:
    """The reviewer's probe as it was: version 1 was never deployed either."""
    answer = fail_to_deploy_apple_pay(runtime, flag_world)
    assert "version 2 written, not deployed" in answer
    assert (
        "Nothing is deployed to `api/prod` yet: deploy version 2 (this change) or version 1 in "
        "AppConfig first." in answer
    )
    for asked in (change("on", "apple_pay"), change("on", "banner")):
        with pytest.raises(FlagRefused) as refused:
            flows.submit(runtime, asked)
        assert str(refused.value).startswith(
            "Nothing of the flags of `api/prod` is deployed yet, and AppConfig holds 2 hosted "
            "versions (the newest is version 2: opsbot for U0ALICE: apple_pay on)"
        )
    assert flag_world.versions() == [1, 2]
    assert flag_world.deployments() == []
    assert [a.outcome for a in audits(runtime, "flag.change")] == ["failed", "refused", "refused"]


def test_a_version_rolled_back_before_the_confirmation_refuses_it(
    runtime: Runtime, flag_world: FlagWorld, clock: ManualClock
) -> None:
    deploy_version(flag_world, clock)
    flows.submit(runtime, change("on", "apple_pay"))
    confirm_newest(runtime)  # version 2, AppConfig deployment 2 under way
    flows.submit(runtime, change("on", "banner"))  # asked while version 2 is being deployed
    assert "made from the deployed version 2" in newest_request(runtime).details[2]
    flag_world.aws("appconfig").stop_deployment(
        ApplicationId=flag_world.application,
        EnvironmentId=flag_world.environment,
        DeploymentNumber=2,
    )
    result = confirm_newest(runtime)
    assert result.startswith(
        "The flags deployed to `api/prod` changed since this was asked: version 1 is deployed "
        "now, not version 2."
    )
    assert flag_world.versions() == [1, 2]
    # Asked again, it is made from version 1: the rolled-back apple_pay stays off.
    flows.submit(runtime, change("on", "banner"))
    assert "version 3 written" in confirm_newest(runtime)
    assert flag_world.document(3)["values"]["apple_pay"] == {"enabled": False}
    assert flag_world.document(3)["values"]["banner"]["enabled"] is True
