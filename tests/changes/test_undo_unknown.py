"""An undo whose outcome opsbot does not know is never told as done, or as failed.

The bot failing after the rollback was submitted (an unexpected error out of
the AWS client, after UpdateService reached moto) is "outcome unknown", with
what opsbot's own records show. An undo whose process died after its claim
(a BaseException out of a botocore hook: nothing runs after SIGKILL) is told
lost once no live process can be making it: a second click until then is
refused with who started it and when, and works afterwards; the start puts
back the job that tells it lost.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
import sqlalchemy as sa

from bot.audit.models import AuditRecord
from bot.changes import flows as changes_flows
from bot.clock import ManualClock
from bot.runtime import Runtime
from sandbox.slack import SlackEmulator
from sandbox.sns import SnsSigner
from tests.changes.conftest import CLAIMED
from tests.changes.test_changes import PRODALERTS, alarm, deploy, deployments, press, undo_buttons
from tests.changes.test_look_put_back import start_up_step
from tests.changes.test_undo_pinned import outcomes, undo_clicks
from tests.deploys.world import World
from tests.incidents.helpers import events_of
from tests.support import LiveService, wait_for


class ProcessDied(BaseException):
    """The process stops here: no `except Exception` of the bot runs."""


def undo_events(live: LiveService, incident_id: int) -> list[tuple[str, str]]:
    return [
        (str(e.data["status"]), e.text or "")
        for e in events_of(live, incident_id)
        if e.kind == "undo"
    ]


def thread_of(releases: SlackEmulator, ts: str, words: str) -> list[str]:
    return wait_for(lambda: [m.text for m in releases.thread(PRODALERTS, ts) if words in m.text])


def two_deploys(runtime: Runtime, world: World, clock: ManualClock) -> None:
    deploy(runtime, world, clock, "1.0.1", actor="U0ALICE")
    clock.advance(minutes=30)
    deploy(runtime, world, clock, "1.0.2", actor="U0ALICE")
    clock.advance(minutes=5)


def test_a_bot_failure_after_the_rollback_started_is_an_unknown_outcome_saying_what_started(
    live: LiveService,
    world: World,
    clock: ManualClock,
    releases: SlackEmulator,
    sns_signer: SnsSigner,
) -> None:
    runtime = live.runtime
    two_deploys(runtime, world, clock)
    incident, message = alarm(live, sns_signer, releases, CLAIMED)
    button = undo_buttons(message)["Roll back to 1.0.1"]

    def broken(**_: Any) -> None:
        raise RuntimeError("the client broke after the call")

    runtime.aws.get("ecs").meta.events.register("after-call.ecs.UpdateService", broken)
    answer = press(live, releases, button, user="U0ALICE")
    assert answer == (
        "Something went wrong on the bot's side (it is logged) after the undo was submitted; "
        "part of it may have been done: opsbot recorded rollback #3, starting now. "
        "Check `/deploy status api prod` and the incident's message before trying again."
    )
    assert deployments(live)[-1] == (3, "rollback", "starting")
    [said] = thread_of(releases, message.ts, "clicked")
    assert said.startswith(
        ":leftwards_arrow_with_hook: <@U0ALICE> clicked *Roll back to 1.0.1*: *outcome unknown*: "
        "Something went wrong on the bot's side"
    )
    assert "failed" not in said
    assert undo_events(live, incident.id) == [("unknown", "Roll back to 1.0.1: outcome unknown")]
    assert outcomes(runtime, "incident.undo") == ["unknown"]
    assert undo_clicks(runtime, "rollback", "unknown") == 1
    assert undo_clicks(runtime, "rollback", "failed") == 0


def test_an_undo_lost_with_its_process_is_told_lost_and_can_be_asked_again(
    live: LiveService,
    world: World,
    clock: ManualClock,
    releases: SlackEmulator,
    sns_signer: SnsSigner,
    make_runtime: Callable[..., Runtime],
) -> None:
    two_deploys(live.runtime, world, clock)
    incident, message = alarm(live, sns_signer, releases, CLAIMED)
    button = undo_buttons(message)["Roll back to 1.0.1"]
    key = button["value"].split(":", 1)[1]
    started = clock.now()

    dying = make_runtime()  # another instance, which dies making the undo

    def die(**_: Any) -> None:
        raise ProcessDied

    dying.aws.get("ecs").meta.events.register("before-call.ecs.UpdateService", die)
    with pytest.raises(ProcessDied):
        changes_flows.undo(dying, incident_id=incident.id, key=key, user_id="U0ALICE")
    assert undo_events(live, incident.id) == [
        ("running", "Roll back to 1.0.1: started, not reported yet")
    ]
    before = deployments(live)

    clock.advance(minutes=2)
    answer = press(live, releases, button, user="U0BOB")
    assert answer.startswith(
        f"Nothing was done: an undo of it by <@U0ALICE> started <!date^{int(started.timestamp())}^"
    ), answer
    again = started + timedelta(minutes=10)
    assert "has not reported yet. If opsbot stopped meanwhile, part of it may have been " in answer
    assert "check `/deploy status api prod` and the incident's thread" in answer
    assert f"works again from <!date^{int(again.timestamp())}^" in answer
    assert deployments(live) == before

    # Ten minutes after the click no live process can be making it: any instance tells it lost.
    clock.advance(minutes=8)
    ran = live.runtime.scheduler.run_due(clock.now())
    assert [j for j in ran if j.startswith("undo-lost:")], ran
    assert undo_events(live, incident.id) == [
        ("lost", "Roll back to 1.0.1: lost: opsbot stopped before it reported")
    ]
    assert undo_clicks(live.runtime, "rollback", "lost") == 1  # the click's own count never came
    [said] = thread_of(releases, message.ts, "never reported")
    assert said.startswith(":warning: *Roll back to 1.0.1*, clicked by <@U0ALICE> <!date^")
    assert "part of it may have been done. Check `/deploy status api prod`" in said
    with live.runtime.sessions() as db:
        lost = db.scalars(sa.select(AuditRecord).where(AuditRecord.action == "incident.undo")).all()
        assert [(r.outcome, r.detail.get("lost")) for r in lost][-1] == ("unknown", True)

    # A new click goes through the gates as any other (the deploy lock holds it now, or not).
    answer = press(live, releases, button, user="U0BOB")
    assert "has not reported yet" not in answer
    statuses = [status for status, _ in undo_events(live, incident.id)]
    assert statuses[0] == "lost" and "running" not in statuses


def test_a_click_after_the_bound_tells_an_unreported_undo_lost_itself_and_a_start_puts_the_job_back(
    live: LiveService,
    world: World,
    clock: ManualClock,
    releases: SlackEmulator,
    sns_signer: SnsSigner,
    make_runtime: Callable[..., Runtime],
) -> None:
    runtime = live.runtime
    two_deploys(runtime, world, clock)
    incident, message = alarm(live, sns_signer, releases, CLAIMED)
    button = undo_buttons(message)["Roll back to 1.0.1"]
    key = button["value"].split(":", 1)[1]
    dying = make_runtime()

    def die(**_: Any) -> None:
        raise ProcessDied

    dying.aws.get("ecs").meta.events.register("before-call.ecs.UpdateService", die)
    with pytest.raises(ProcessDied):
        changes_flows.undo(dying, incident_id=incident.id, key=key, user_id="U0ALICE")
    [(job, _)] = [p for p in runtime.scheduler.pending() if p[0].startswith("undo-lost:")]
    assert runtime.scheduler.cancel(job)  # lost with a crash

    start_up_step(runtime, "reschedule_ecs_looks")(runtime)  # what the next start runs
    assert [p for p in runtime.scheduler.pending() if p[0] == job] == [
        (job, clock.now() + timedelta(minutes=10))
    ]
    assert runtime.scheduler.cancel(job)

    clock.advance(minutes=11)
    answer = press(live, releases, button, user="U0ALICE")
    assert "has not reported yet" not in answer, answer
    statuses = [status for status, _ in undo_events(live, incident.id)]
    assert statuses[0] == "lost" and "running" not in statuses
    thread_of(releases, message.ts, "never reported")
    assert undo_clicks(runtime, "rollback", "lost") == 1
