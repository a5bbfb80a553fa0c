"""A look at ECS lost with a crash (or its retries given up) comes back at the next start.

Until it runs, the incident's message says it is looking at ECS; without it,
it would say so for good. The start puts back the look of every open incident
whose message still waits for one, due at once.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import pytest

from bot.clock import ManualClock
from bot.incidents.models import Incident
from bot.runtime import Runtime
from sandbox.slack import SlackEmulator
from sandbox.sns import SnsSigner
from tests.changes.conftest import CLAIMED
from tests.changes.test_changes import alarm
from tests.changes.test_outside import LOOKING, deploy_outside_opsbot, looks, text_with
from tests.deploys.world import World
from tests.incidents.helpers import message_text
from tests.support import LiveService


def start_up_step(runtime: Runtime, name: str) -> Callable[[Runtime], None]:
    """One of the steps every start runs, by name."""
    [step] = [hook for hook in runtime.on_start if hook.__name__ == name]
    return step


def look_job(incident: Incident) -> str:
    return f"incident:{incident.id}:ecs_look"


def test_a_lost_look_at_ecs_is_put_back_at_start_and_fills_in_the_message(
    live: LiveService,
    world: World,
    clock: ManualClock,
    releases: SlackEmulator,
    sns_signer: SnsSigner,
    caplog: pytest.LogCaptureFixture,
) -> None:
    runtime = live.runtime
    arn = deploy_outside_opsbot(world, clock, "1.0.3")
    revision = arn.rsplit("/", 1)[-1]
    clock.advance(minutes=5)
    incident, message = alarm(live, sns_signer, releases, CLAIMED)
    assert LOOKING in message_text(message)
    assert [job for job, _ in runtime.scheduler.pending()] == [look_job(incident)]
    assert runtime.scheduler.cancel(look_job(incident))  # lost with a crash mid-run

    clock.advance(minutes=3)
    put_back = start_up_step(runtime, "reschedule_ecs_looks")
    put_back(runtime)  # what the next start runs
    with caplog.at_level(logging.INFO, logger="bot.changes.jobs"):
        put_back(runtime)  # a second instance starting on the same database does the same
    assert "put back the ECS look jobs of 1 open incident(s)" in caplog.messages
    assert runtime.scheduler.pending() == [(look_job(incident), clock.now())]

    assert runtime.scheduler.run_due(clock.now()) == [look_job(incident)]
    text = text_with(releases, incident, revision)
    assert f":eyes: Task definition `{revision}` (image `1.0.3`) rolled out <!date^" in text
    assert LOOKING not in text
    assert looks(live, "ok") == 1
    put_back(runtime)  # the message has its look: nothing to put back
    assert runtime.scheduler.pending() == []


def test_only_open_incidents_still_waiting_for_a_look_get_one_back(
    live: LiveService,
    world: World,
    clock: ManualClock,
    releases: SlackEmulator,
    sns_signer: SnsSigner,
) -> None:
    runtime = live.runtime
    looked, _ = alarm(live, sns_signer, releases, CLAIMED)
    runtime.scheduler.run_due(clock.now())  # its look is made and kept
    clock.advance(minutes=30)  # that look is too old for the next alarm
    waiting, _ = alarm(live, sns_signer, releases, "prod-api-latency")
    assert runtime.scheduler.cancel(look_job(waiting))
    unclaimed, _ = alarm(live, sns_signer, releases, "prod-db-cpu")  # no app environment

    start_up_step(runtime, "reschedule_ecs_looks")(runtime)
    # Not the one already looked at, nor the one of no app environment.
    assert runtime.scheduler.pending() == [(look_job(waiting), clock.now())]
    assert unclaimed.id not in (looked.id, waiting.id)
