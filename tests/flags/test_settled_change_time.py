"""A flag change the bot settles after a crash is dated when it was made, not when settled.

An incident lists the changes made before its alarm. The process dies between a
change and its `flag.change` line; the next process receives an alarm 30 s
after the change, then settles the change past its grace: the line it writes
carries the change's time, so the incident lists the change.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

import pytest

from bot.changes.service import alarm_time, changes_view
from bot.clock import ManualClock
from bot.config import Config, parse_config
from bot.incidents.models import Incident
from bot.runtime import Runtime
from bot.settings import Settings
from sandbox.slack import SlackEmulator
from sandbox.sns import SnsSigner
from tests.changes.test_changes import alarm, latest_text
from tests.flags.conftest import FlagWorld, flag_config
from tests.flags.test_appconfig import audits
from tests.flags.test_ssm_crash import crash_a_roll
from tests.flags.test_unrecorded_starts import GRACE_S, crash_at
from tests.support import LiveService, wait_for

WINDOW_MIN = 120  # an incident's default window of changes before its alarm


@pytest.fixture
def app_config(flag_world: FlagWorld) -> Config:
    """The flag tests' environments, each claiming its alarms: `prod-api-*` api/prod
    (flags in AppConfig), `staging-api-*` api/staging (flags as SSM parameters)."""
    config = flag_config(flag_world)
    environments = config["apps"]["api"]["environments"]
    environments["prod"]["alarms"] = ["prod-api-*"]
    environments["staging"]["alarms"] = ["staging-api-*"]
    return parse_config(config)


@pytest.fixture
def next_process(
    make_service: Callable[..., LiveService],
    aws_settings: Settings,
    app_config: Config,
    clock: ManualClock,
) -> Callable[[], LiveService]:
    """The process that starts after the crash: it serves SNS and Slack, its jobs run by
    `run_due`."""
    return lambda: make_service(aws_settings, app_config, clock=clock, run_jobs=False)


def alarm_then_settle(
    service: LiveService, signer: SnsSigner, slack: SlackEmulator, clock: ManualClock, name: str
) -> Incident:
    """The alarm fires 30 s after the change; past its grace, the change is settled."""
    clock.advance(seconds=30)
    incident, _ = alarm(service, signer, slack, name)
    clock.advance(seconds=GRACE_S + 1)
    service.runtime.scheduler.run_due(clock.now())
    return incident


def flags_listed(service: LiveService, incident: Incident, *, env: str) -> list[str]:
    """The flag changes the incident lists as made before its alarm."""
    runtime = service.runtime
    with runtime.sessions() as db:
        view = changes_view(
            db,
            app="api",
            env=env,
            alarm_at=alarm_time(db, incident=incident),
            window_min=WINDOW_MIN,
            incident_id=incident.id,
            now=runtime.clock.now(),
        )
    return [item.subject for item in view.items if item.kind == "flag"]


def test_an_appconfig_change_settled_after_a_crash_is_listed_on_the_alarm_after_it(
    runtime: Runtime,
    next_process: Callable[[], LiveService],
    flag_world: FlagWorld,
    clock: ManualClock,
    releases: SlackEmulator,
    sns_signer: SnsSigner,
) -> None:
    crash_at(runtime, "after-call.appconfig.StartDeployment")
    [intent] = audits(runtime, "flag.start")
    assert audits(runtime, "flag.change") == []  # died before its outcome was recorded
    assert [d["DeploymentNumber"] for d in flag_world.deployments()] == [1]

    after = next_process()
    incident = alarm_then_settle(after, sns_signer, releases, clock, "prod-api-5xx")

    [made] = audits(after.runtime, "flag.change")
    assert (made.outcome, made.detail["intent"], made.detail["deployment"]) == ("ok", intent.id, 1)
    assert made.at == intent.at
    with after.runtime.sessions() as db:
        assert alarm_time(db, incident=incident) == intent.at + timedelta(seconds=30)
    assert flags_listed(after, incident, env="prod") == ["apple_pay"]
    # Settling it re-renders the open incident's message, which now lists it.
    wait_for(lambda: "Flag `apple_pay` `off` → `on`" in latest_text(releases, incident))


def test_an_ssm_change_settled_after_a_crash_is_listed_on_the_alarm_after_it(
    runtime: Runtime,
    next_process: Callable[[], LiveService],
    flag_world: FlagWorld,
    clock: ManualClock,
    releases: SlackEmulator,
    sns_signer: SnsSigner,
) -> None:
    roll = crash_a_roll(runtime, "ecs", "after-call.ecs.UpdateService")
    assert flag_world.ssm_value("NEW_CHECKOUT_FLOW") == "false"  # written, then restarted
    assert audits(runtime, "flag.change") == []

    after = next_process()
    incident = alarm_then_settle(after, sns_signer, releases, clock, "staging-api-5xx")

    [made] = audits(after.runtime, "flag.change")
    assert (made.outcome, made.detail["deployment"]) == ("ok", roll.id)
    assert made.at == roll.created_at
    with after.runtime.sessions() as db:
        assert alarm_time(db, incident=incident) == roll.created_at + timedelta(seconds=30)
    assert flags_listed(after, incident, env="staging") == ["NEW_CHECKOUT_FLOW"]
    # The roll goes on from its settling, and the open incident's message lists the change.
    wait_for(lambda: "Flag `NEW_CHECKOUT_FLOW`" in latest_text(releases, incident))
