"""Deploys made outside opsbot, seen on ECS (moto in server mode), on the incident's message.

The look at ECS never holds up the page or the first post: the first message
says it is looking, and the look runs as a job after the commit (here through
`run_due`, on the test's clock).
"""

from __future__ import annotations

import socket
from collections.abc import Callable
from typing import Any

from bot.clock import ManualClock
from bot.config import Config
from bot.incidents.models import Incident
from bot.settings import Settings
from sandbox.pagerduty import PagerDutyEmulator
from sandbox.slack import SlackEmulator
from sandbox.sns import SnsSigner
from tests.changes.conftest import CLAIMED
from tests.changes.test_changes import alarm, deploy, latest
from tests.deploys.world import World, task_definition
from tests.incidents.helpers import message_text
from tests.support import LiveService, wait_for

LOOKING = ":mag: Looking at ECS for deploys made outside opsbot…"


def deploy_outside_opsbot(world: World, clock: ManualClock, tag: str) -> str:
    """What a person with the console does: a new revision, and the service updated to it."""
    ecs = world.aws("ecs")
    image = f"{world.repository_uri}:{tag}"
    arn = str(
        ecs.register_task_definition(**task_definition("api-prod", image))["taskDefinition"][
            "taskDefinitionArn"
        ]
    )
    ecs.update_service(cluster="prod", service="api", taskDefinition=arn)
    # moto stamps deployments with the machine's time; ECS would with the moment it started.
    world.rollouts.primary("prod")["createdAt"] = clock.now()
    world.rollouts.complete("prod")
    return arn


def text_with(slack: SlackEmulator, incident: Incident, needle: str) -> str:
    """The incident's message text, once it holds `needle`."""

    def found() -> str | None:
        text = message_text(latest(slack, incident))
        return text if needle in text else None

    return str(wait_for(found))


def looks(live: LiveService, outcome: str) -> float:
    value = live.runtime.metrics.registry.get_sample_value(
        "opsbot_ecs_looks_total", {"outcome": outcome}
    )
    return float(value or 0)


def test_a_task_definition_rolled_out_outside_opsbot_appears_after_a_look(
    live: LiveService,
    world: World,
    clock: ManualClock,
    releases: SlackEmulator,
    sns_signer: SnsSigner,
    pagerduty: PagerDutyEmulator,
) -> None:
    runtime = live.runtime
    deploy(runtime, world, clock, "1.0.1", actor="U0ALICE")
    clock.advance(minutes=20)
    arn = deploy_outside_opsbot(world, clock, "1.0.3")
    revision = arn.rsplit("/", 1)[-1]
    clock.advance(minutes=5)

    incident, message = alarm(live, sns_signer, releases, CLAIMED)
    wait_for(lambda: pagerduty.incidents_for(incident.dedup_key))  # paged without the look
    first = message_text(message)
    assert "Deploy `1.0.1` (from `1.0.0`) by <@U0ALICE>" in first
    assert LOOKING in first and revision not in first
    assert looks(live, "ok") == 0

    runtime.scheduler.run_due(clock.now())
    text = text_with(releases, incident, revision)
    assert f":eyes: Task definition `{revision}` (image `1.0.3`) rolled out <!date^" in text
    assert "seen on ECS, not made by opsbot" in text
    assert LOOKING not in text
    assert text.count(":eyes:") == 1  # opsbot's own revision is opsbot's deploy, not "seen"
    assert "Deploy `1.0.1` (from `1.0.0`) by <@U0ALICE>" in text
    assert looks(live, "ok") == 1

    # A second alarm of the same service within the minute shows that look at once.
    _, second_message = alarm(live, sns_signer, releases, "prod-api-latency")
    assert revision in message_text(second_message)
    assert LOOKING not in message_text(second_message)
    runtime.scheduler.run_due(clock.now())
    assert looks(live, "ok") == 1


def test_the_window_and_a_quiet_service_say_nothing_was_seen(
    live: LiveService,
    world: World,
    clock: ManualClock,
    releases: SlackEmulator,
    sns_signer: SnsSigner,
) -> None:
    deploy_outside_opsbot(world, clock, "1.0.3")
    clock.advance(hours=3)  # the outside deploy is older than the window
    incident, _ = alarm(live, sns_signer, releases, CLAIMED)
    other, _ = alarm(live, sns_signer, releases, "prod-api-latency")  # before any look
    live.runtime.scheduler.run_due(clock.now())
    assert looks(live, "ok") == 1 and looks(live, "cached") == 1  # one call to ECS for both
    quiet = (
        ":white_check_mark: No deploys, rollbacks or flag changes on `api/prod` in the "
        "2 h 0 min before this alarm (by opsbot, or seen on ECS)."
    )
    text = text_with(releases, incident, quiet)
    assert ":eyes:" not in text and LOOKING not in text
    assert quiet in text_with(releases, other, quiet)


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_aws_unreachable_says_it_could_not_look_and_the_page_goes_at_once(
    make_service: Callable[..., LiveService],
    aws_settings: Settings,
    app_config: Config,
    world: World,
    clock: ManualClock,
    releases: SlackEmulator,
    sns_signer: SnsSigner,
    pagerduty: PagerDutyEmulator,
) -> None:
    unreachable = aws_settings.model_copy(
        update={"aws_endpoint_url": f"http://127.0.0.1:{_closed_port()}"}
    )
    live = make_service(unreachable, app_config, clock=clock, run_jobs=False)
    incident, message = alarm(live, sns_signer, releases, CLAIMED)
    wait_for(lambda: pagerduty.incidents_for(incident.dedup_key))
    assert LOOKING in message_text(message)

    live.runtime.scheduler.run_due(clock.now())
    line = ":grey_question: Could not look at ECS for deploys made outside opsbot (`"
    text = text_with(releases, incident, line)
    assert "No deploys, rollbacks or flag changes by opsbot on `api/prod`" in text
    assert looks(live, "failed") == 1 and looks(live, "ok") == 0


def test_ecs_refusing_the_look_is_one_line_too(
    live: LiveService,
    world: World,
    clock: ManualClock,
    releases: SlackEmulator,
    sns_signer: SnsSigner,
) -> None:
    ecs: Any = world.aws("ecs")
    ecs.delete_service(cluster="prod", service="api", force=True)  # the service is gone
    incident, _ = alarm(live, sns_signer, releases, CLAIMED)
    live.runtime.scheduler.run_due(clock.now())
    line = "Could not look at ECS for deploys made outside opsbot (`ServiceNotFound`)."
    wait_for(lambda: line in message_text(latest(releases, incident)))


def test_a_look_up_to_a_minute_before_an_alarm_serves_it_and_says_when_it_was_made(
    live: LiveService,
    world: World,
    clock: ManualClock,
    releases: SlackEmulator,
    sns_signer: SnsSigner,
) -> None:
    first, _ = alarm(live, sns_signer, releases, "prod-api-latency")
    looked_at = clock.now()
    live.runtime.scheduler.run_due(clock.now())  # the look for the first alarm: nothing seen
    quiet = "No deploys, rollbacks or flag changes on `api/prod`"
    assert "before this alarm (by opsbot, or seen on ECS)." in text_with(releases, first, quiet)
    clock.advance(seconds=10)
    arn = deploy_outside_opsbot(world, clock, "1.0.3")  # CI deploys after that look
    clock.advance(seconds=40)

    # An alarm 50 s after the look is served by it, and says what it could not have seen.
    _, message = alarm(live, sns_signer, releases, CLAIMED)
    as_of = (
        f"(by opsbot, or seen on ECS as of <!date^{int(looked_at.timestamp())}^{{time_secs}}|"
        f"{looked_at:%H:%M:%S} UTC>, 50 s before this alarm)."
    )
    assert as_of in message_text(message) and LOOKING not in message_text(message)
    assert live.runtime.scheduler.run_due(clock.now()) == []  # no look of its own
    assert looks(live, "ok") == 1

    # 61 s after the look, an alarm has a look of its own, which sees the deploy.
    clock.advance(seconds=11)
    third, message = alarm(live, sns_signer, releases, "prod-api-errors")
    assert LOOKING in message_text(message)
    live.runtime.scheduler.run_due(clock.now())
    text = text_with(releases, third, f":eyes: Task definition `{arn.rsplit('/', 1)[-1]}`")
    assert "before this alarm" in text and "as seen on ECS" not in text
    assert looks(live, "ok") == 2 and looks(live, "cached") == 0
