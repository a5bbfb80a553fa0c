"""/flag on AWS AppConfig (api/prod, protected): list, change, confirm, deploy, watch.

moto keeps the hosted configuration versions; AppConfig environments,
strategies, deployments and LatestVersionNumber come from the sandbox's
`AppConfigGaps` behind `AwsFrontDoor` (the small emulator the issue allows),
on the test clock: the strategy deploys over 2 minutes (50% steps) and bakes 1.
StopDeployment through the real API is how a deployment gets rolled back here,
as an alarm monitor or an operator would.
"""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from bot.approvals import flows as approvals
from bot.approvals.errors import ClickRefused
from bot.approvals.models import PendingAction
from bot.apps.errors import NotAllowed
from bot.audit.models import AuditRecord
from bot.clock import ManualClock
from bot.flags import appconfig, flows
from bot.flags.document import FlagDocument
from bot.flags.errors import FlagConflict, FlagNotFound, FlagRefused
from bot.flags.requests import Change
from bot.runtime import Runtime
from sandbox.slack import SlackEmulator
from tests.flags.conftest import FLAGS_DOCUMENT, RELEASES, FlagWorld
from tests.support import wait_for


def change(verb: str, flag: str, *, actor: str = "U0ALICE", **attributes: str) -> Change:
    return Change(app="api", env="prod", actor=actor, verb=verb, flag=flag, attributes=attributes)


def tick(runtime: Runtime, clock: ManualClock, seconds: float = 10) -> None:
    clock.advance(seconds=seconds)
    runtime.scheduler.run_due(clock.now())


def audits(runtime: Runtime, action: str) -> list[AuditRecord]:
    with runtime.sessions() as db:
        return list(
            db.scalars(
                sa.select(AuditRecord).where(AuditRecord.action == action).order_by(AuditRecord.id)
            )
        )


def pending(runtime: Runtime) -> PendingAction:
    with runtime.sessions() as db:
        [action] = db.scalars(sa.select(PendingAction)).all()
        return action


def confirm(runtime: Runtime, *, user: str = "U0ALICE") -> str:
    return approvals.click(
        runtime, action_id=pending(runtime).id, user_id=user, decision="confirm"
    ).text


def thread(slack: SlackEmulator, *, containing: str) -> list[str]:
    parent = wait_for(
        lambda: next(
            (m for m in slack.channel_messages(RELEASES) if "of api/prod:" in m.text), None
        )
    )
    texts = wait_for(
        lambda: (
            [m.text for m in slack.thread(RELEASES, parent.ts)]
            if any(containing in m.text for m in slack.thread(RELEASES, parent.ts))
            else None
        )
    )
    return list(texts)


def test_list_shows_every_flag_its_attributes_and_the_version(
    runtime: Runtime, flag_world: FlagWorld
) -> None:
    text = flows.list_flags(runtime, app="api", env="prod")
    assert "*Feature flags of api/prod* (AWS AppConfig)" in text
    assert ":large_green_circle: `new_checkout_flow` (New checkout flow) *on*" in text
    assert "rollout_percent=25" in text and 'variant="a"' in text
    assert ":white_circle: `apple_pay` (Apple Pay) *off*" in text
    assert "Hosted version 1: Terraform" in text


def test_a_protected_change_waits_for_confirmation_then_deploys_to_complete(
    runtime: Runtime, flag_world: FlagWorld, clock: ManualClock, releases: SlackEmulator
) -> None:
    answer = flows.submit(runtime, change("on", "apple_pay"))
    assert "is protected: request #" in answer and "your confirmation" in answer
    assert flag_world.versions() == [1]  # nothing written before the click

    result = confirm(runtime)
    assert "version 2 written, AppConfig deployment 1 started" in result
    assert flag_world.versions() == [1, 2]
    document = flag_world.document(2)
    assert document["values"]["apple_pay"] == {"enabled": True}
    # Only that flag changed.
    assert document["values"]["new_checkout_flow"] == FLAGS_DOCUMENT["values"]["new_checkout_flow"]
    described = flag_world.aws("appconfig").get_hosted_configuration_version(
        **flag_world.ids(), VersionNumber=2
    )["Description"]
    assert described == "opsbot for U0ALICE: apple_pay on"
    [deployment] = flag_world.deployments()
    assert deployment["ConfigurationVersion"] == "2"

    for _ in range(20):  # 2 minutes deploying, 1 baking, looked at every 10 s
        tick(runtime, clock)
    texts = thread(releases, containing="COMPLETE")
    assert any("DEPLOYING: 50%" in t for t in texts)
    assert texts[-1].startswith(":white_check_mark: AppConfig deployment 1 is COMPLETE")
    [done] = audits(runtime, "flag.deployment")
    assert done.outcome == "ok" and done.detail["state"] == "COMPLETE"
    [changed] = audits(runtime, "flag.change")
    assert changed.actor == "U0ALICE" and changed.outcome == "ok"
    assert changed.detail["before"] == {"enabled": False}
    assert changed.detail["after"] == {"enabled": True}
    assert changed.detail["version"] == 2 and changed.detail["previous_version"] == 1
    # The list now names who changed it.
    assert "last changed by <@U0ALICE>" in flows.list_flags(runtime, app="api", env="prod")


def test_a_rolled_back_deployment_is_said_clearly(
    runtime: Runtime, flag_world: FlagWorld, clock: ManualClock, releases: SlackEmulator
) -> None:
    flows.submit(runtime, change("set", "new_checkout_flow", rollout_percent="50"))
    confirm(runtime)
    tick(runtime, clock)
    flag_world.aws("appconfig").stop_deployment(
        ApplicationId=flag_world.application,
        EnvironmentId=flag_world.environment,
        DeploymentNumber=1,
    )
    tick(runtime, clock)
    texts = thread(releases, containing="ROLLED BACK")
    assert texts[-1].startswith(
        ":rewind: AppConfig deployment 1 was ROLLED BACK: `new_checkout_flow` is back to "
        'on · rollout_percent=25 · variant="a"'
    )
    [ended] = audits(runtime, "flag.deployment")
    assert ended.outcome == "rolled_back" and ended.detail["state"] == "ROLLED_BACK"
    # The watch ended with the deployment.
    assert [j for j, _ in runtime.scheduler.pending() if j.startswith("flag-watch")] == []


def test_a_version_written_after_the_request_refuses_the_confirmation(
    runtime: Runtime, flag_world: FlagWorld
) -> None:
    flows.submit(runtime, change("on", "apple_pay"))
    someone = flag_world.write(FLAGS_DOCUMENT, "console: bob")
    assert someone == 2
    result = confirm(runtime)
    assert "version 2 was written after version 1 (console: bob)" in result
    assert "Nothing was written" in result
    assert flag_world.versions() == [1, 2]
    assert flag_world.deployments() == []


def test_latest_version_number_refuses_a_write_on_an_old_version(
    runtime: Runtime, flag_world: FlagWorld
) -> None:
    flag_world.write(FLAGS_DOCUMENT, "someone else")
    settings = runtime.config.apps["api"].environments["prod"].flags
    assert settings is not None and settings.backend == "appconfig"
    with pytest.raises(FlagConflict, match="after version 1"):
        appconfig.write_version(
            runtime.aws.get("appconfig"),
            settings,
            document=FlagDocument(FLAGS_DOCUMENT),
            latest=1,
            description="stale",
        )
    assert flag_world.versions() == [1, 2]


def test_an_unknown_flag_lists_the_flags_that_exist(
    runtime: Runtime, flag_world: FlagWorld
) -> None:
    with pytest.raises(FlagNotFound) as refused:
        flows.submit(runtime, change("on", "applepay"))
    assert str(refused.value) == (
        "There is no flag `applepay`. Flags: `apple_pay`, `banner`, `new_checkout_flow`."
    )
    [entry] = audits(runtime, "flag.change")
    assert entry.outcome == "refused"


@pytest.mark.parametrize(
    ("attributes", "message"),
    [
        (
            {"rollout_percent": "lots"},
            "`new_checkout_flow.rollout_percent` is a number from 0 to 100; `lots` is not.",
        ),
        ({"rollout_percent": "101"}, "from 0 to 100; `101` is out of range."),
        ({"variant": "c"}, "`new_checkout_flow.variant` is one of `a`, `b`; not `c`."),
        ({"colour": "red"}, "Flag `new_checkout_flow` has no attribute `colour`."),
        ({"enabled": "true"}, "use `/flag on` or `/flag off`"),
    ],
)
def test_a_wrong_value_is_refused_before_anything_is_written(
    runtime: Runtime, flag_world: FlagWorld, attributes: dict[str, str], message: str
) -> None:
    with pytest.raises(FlagRefused) as refused:
        flows.submit(runtime, change("set", "new_checkout_flow", **attributes))
    assert message in str(refused.value)
    assert flag_world.versions() == [1]
    assert flag_world.deployments() == []
    with runtime.sessions() as db:
        assert db.scalars(sa.select(PendingAction)).all() == []


def test_someone_without_the_right_is_told_who_may(runtime: Runtime, flag_world: FlagWorld) -> None:
    with pytest.raises(NotAllowed) as refused:
        flows.submit(runtime, change("on", "apple_pay", actor="U0CAROL"))
    assert str(refused.value).startswith(
        "You may not change feature flags of `api/prod`. Allowed: <@U0ALICE>"
    )
    assert flag_world.versions() == [1]
    [entry] = audits(runtime, "flag.change")
    assert entry.outcome == "refused" and entry.actor == "U0CAROL"


def test_only_the_requester_confirms(runtime: Runtime, flag_world: FlagWorld) -> None:
    flows.submit(runtime, change("off", "new_checkout_flow"))
    with pytest.raises(ClickRefused):
        confirm(runtime, user="U0CAROL")
    assert flag_world.versions() == [1]


def test_nothing_to_change_is_said(runtime: Runtime, flag_world: FlagWorld) -> None:
    with pytest.raises(FlagRefused, match="is already on"):
        flows.submit(runtime, change("on", "new_checkout_flow"))


def test_a_deployment_in_progress_refuses_before_writing(
    runtime: Runtime, flag_world: FlagWorld, clock: ManualClock
) -> None:
    flows.submit(runtime, change("on", "apple_pay"))
    confirm(runtime)
    flows.submit(runtime, change("on", "banner"))
    result = (
        confirm(runtime.__class__ and runtime)
        if False
        else approvals.click(runtime, action_id=2, user_id="U0ALICE", decision="confirm").text
    )
    assert "AppConfig deployment 1 of `api/prod` is still DEPLOYING" in result
    assert flag_world.versions() == [1, 2]
