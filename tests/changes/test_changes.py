"""What changed before an alarm, on its incident's message, and undoing it in one click.

Deploys and flag changes go through the same entry points /deploy and /flag
use (moto ECS/ECR, the AppConfig gaps); the alarm arrives signed at /sns;
the message is read back from the Slack emulator, and the buttons are
clicked as Slack sends clicks.
"""

from __future__ import annotations

from typing import Any

import pytest
import sqlalchemy as sa

from bot.approvals import flows as approval_flows
from bot.approvals.models import PendingAction
from bot.audit.models import AuditRecord
from bot.clock import ManualClock
from bot.deploys.models import Deployment
from bot.deploys.plans import Request
from bot.deploys.requests import submit
from bot.flags import flows
from bot.flags.requests import Change
from bot.incidents.models import Incident
from bot.runtime import Runtime
from sandbox.alarms import alarm_message
from sandbox.pagerduty import PagerDutyEmulator
from sandbox.slack import Message, SlackEmulator
from sandbox.sns import SnsSigner, body
from tests.changes.conftest import CLAIMED
from tests.conftest import TOPIC_ARN
from tests.deploys.world import World
from tests.flags.conftest import FlagWorld
from tests.incidents.helpers import (
    click,
    events_of,
    incident_message,
    message_text,
    only_incident,
    responses_to,
)
from tests.support import LiveService, wait_for

PRODALERTS = "C0PRODALERTS"


def deploy(runtime: Runtime, world: World, clock: ManualClock, tag: str, *, actor: str) -> int:
    accepted = submit(runtime, Request(app="api", env="prod", actor=actor, tag=tag))
    assert accepted.deployment_id is not None, accepted.text
    world.rollouts.complete("prod")
    clock.advance(seconds=10)
    runtime.scheduler.run_due(clock.now())
    return accepted.deployment_id


def flip(runtime: Runtime, verb: str, flag: str, *, actor: str) -> str:
    return flows.submit(runtime, Change(app="api", env="prod", actor=actor, verb=verb, flag=flag))


def alarm(
    live: LiveService, signer: SnsSigner, slack: SlackEmulator, name: str
) -> tuple[Incident, Message]:
    now = live.runtime.clock.now()
    envelope = signer.notification(
        alarm_message(name=name, state="ALARM", at=now), topic_arn=TOPIC_ARN, timestamp=now
    )
    answer = live.post(
        "/sns",
        content=body(envelope),
        headers={"x-amz-sns-message-type": "Notification", "content-type": "text/plain"},
    )
    assert answer.status_code == 200, answer.text
    incident = wait_for(lambda: only_incident(live, name))
    message = wait_for(lambda: incident_message(slack, incident))
    return incident, message


def undo_buttons(message: Message) -> dict[str, dict[str, Any]]:
    blocks = message.blocks or []
    return {
        e["text"]["text"]: e
        for b in blocks
        if b["type"] == "actions"
        for e in b["elements"]
        if e["action_id"].startswith("incident_undo:")
    }


def latest(slack: SlackEmulator, incident: Incident) -> Message:
    found = incident_message(slack, incident)
    assert found is not None
    return found


def latest_text(slack: SlackEmulator, incident: Incident) -> str:
    return message_text(latest(slack, incident))


def press(live: LiveService, slack: SlackEmulator, button: dict[str, Any], *, user: str) -> str:
    url = slack.response_url()
    click(live, button["action_id"], button["value"], user_id=user, response_url=url)
    return str(wait_for(lambda: responses_to(slack, url))[-1]["text"])


def deployments(live: LiveService) -> list[tuple[int, str, str]]:
    with live.runtime.sessions() as db:
        rows = db.scalars(sa.select(Deployment).order_by(Deployment.id)).all()
        return [(d.id, d.kind, d.status) for d in rows]


def test_the_incident_lists_the_deploy_and_the_flag_change_and_undoes_them_through_the_gates(
    live: LiveService,
    world: World,
    flag_world: FlagWorld,
    clock: ManualClock,
    releases: SlackEmulator,
    sns_signer: SnsSigner,
    pagerduty: PagerDutyEmulator,
) -> None:
    runtime = live.runtime
    first = deploy(runtime, world, clock, "1.0.1", actor="U0ALICE")
    first_revision = world.service_task_definition("prod")
    clock.advance(minutes=30)
    second = deploy(runtime, world, clock, "1.0.2", actor="U0ALICE")
    assert "AppConfig deployment 1 started" in flip(runtime, "on", "apple_pay", actor="U0ALICE")
    clock.advance(minutes=5)

    incident, message = alarm(live, sns_signer, releases, CLAIMED)
    wait_for(lambda: pagerduty.incidents_for(incident.dedup_key))  # paged, as ever
    text = message_text(message)
    assert "*Changes to `api/prod` in the 2 h 0 min before this alarm*" in text
    assert "Deploy `1.0.2` (from `1.0.1`) by <@U0ALICE> <!date^" in text
    assert "Deploy `1.0.1`" in text
    assert "Flag `apple_pay` `off` → `on` by <@U0ALICE>" in text
    buttons = undo_buttons(message)
    assert set(buttons) == {"Roll back to 1.0.1", "Turn apple_pay off again"}
    assert buttons["Roll back to 1.0.1"]["value"] == f"{incident.id}:deploy:{second}"

    # Carol deploys nothing to api/prod: refused, and nothing changes.
    answer = press(live, releases, buttons["Roll back to 1.0.1"], user="U0CAROL")
    assert answer.startswith("You may not roll back `api/prod`. Allowed: <@U0ALICE>")
    assert deployments(live) == [(first, "deploy", "completed"), (second, "deploy", "completed")]

    # Bob (a deployer through his group) rolls back: the service runs 1.0.1's revision again.
    answer = press(live, releases, buttons["Roll back to 1.0.1"], user="U0BOB")
    assert answer.startswith("Rollback #3 of `api` `1.0.1` to `api/prod` started")
    assert world.service_task_definition("prod") == first_revision
    thread = wait_for(
        lambda: [m.text for m in releases.thread(PRODALERTS, message.ts) if "clicked" in m.text]
    )
    assert thread[0].startswith(":leftwards_arrow_with_hook: <@U0BOB> clicked *Roll back to 1.0.1*")
    with runtime.sessions() as db:
        start = db.scalars(
            sa.select(AuditRecord).where(AuditRecord.action == "rollback.start")
        ).one()
        assert (start.actor, start.detail["deployment"]) == ("U0BOB", 3)
        undo = db.scalars(
            sa.select(AuditRecord).where(
                AuditRecord.action == "incident.undo", AuditRecord.outcome == "ok"
            )
        ).one()
        assert undo.detail["change"] == f"deploy:{second}"
    undo_events = [e for e in events_of(live, incident.id) if e.kind == "undo"]
    assert [(e.actor, e.data["status"]) for e in undo_events] == [("U0BOB", "done")]

    # The message now says so instead of offering the button again; a stale click is refused.
    wait_for(lambda: "rolled back by <@U0BOB> (#3" in message_text(latest(releases, incident)))
    assert set(undo_buttons(latest(releases, incident))) == {"Turn apple_pay off again"}
    answer = press(live, releases, buttons["Roll back to 1.0.1"], user="U0BOB")
    assert answer == "Nothing was done: already rolled back by <@U0BOB> (#3, rolling out)."
    assert len(deployments(live)) == 3
    assert world.service_task_definition("prod") == first_revision

    # The flag: Carol may not; Alice turns it off again, once.
    flag_button = buttons["Turn apple_pay off again"]
    answer = press(live, releases, flag_button, user="U0CAROL")
    assert answer.startswith("You may not change feature flags of `api/prod`.")
    clock.advance(minutes=5)  # AppConfig's first rollout is over
    answer = press(live, releases, flag_button, user="U0ALICE")
    assert "AppConfig deployment 2 started" in answer, answer
    versions = flag_world.versions()
    assert flag_world.document()["values"]["apple_pay"] == {"enabled": False}
    answer = press(live, releases, flag_button, user="U0ALICE")
    assert answer == "Nothing was done: already turned off again by <@U0ALICE>."
    assert flag_world.versions() == versions
    wait_for(lambda: not undo_buttons(latest(releases, incident)))

    # Every click is counted by what it undoes and what came of it.
    def undos(kind: str, outcome: str) -> float:
        labels = {"kind": kind, "outcome": outcome}
        return float(runtime.metrics.registry.get_sample_value("opsbot_undo_total", labels) or 0)

    assert [undos("rollback", o) for o in ("done", "refused", "failed")] == [1, 2, 0]
    assert [undos("flag", o) for o in ("done", "refused", "failed")] == [1, 2, 0]

    # When the clicked rollback ends, the incident's message shows it, without anyone asking.
    runtime.scheduler.run_due(clock.now())  # the look at ECS re-renders it once, first
    wait_for(lambda: "Looking at ECS" not in latest_text(releases, incident))
    assert "(#3, rolling out)" in latest_text(releases, incident)
    world.rollouts.complete("prod")
    clock.advance(seconds=10)
    runtime.scheduler.run_due(clock.now())
    wait_for(lambda: "rolled back by <@U0BOB> (#3, completed)" in latest_text(releases, incident))


def test_an_alarm_of_no_app_has_no_changes_and_a_quiet_window_says_so_in_one_line(
    live: LiveService,
    world: World,
    clock: ManualClock,
    releases: SlackEmulator,
    sns_signer: SnsSigner,
) -> None:
    runtime = live.runtime
    deploy(runtime, world, clock, "1.0.1", actor="U0ALICE")
    _, message = alarm(live, sns_signer, releases, "prod-payments-5xx")
    text = message_text(message)
    assert "Changes" not in text and "incident_undo" not in text

    clock.advance(hours=3)  # the deploy is older than the window
    _, message = alarm(live, sns_signer, releases, CLAIMED)
    assert (
        ":white_check_mark: No deploys, rollbacks or flag changes by opsbot on `api/prod` in the "
        "2 h 0 min before this alarm."
    ) in message_text(message)
    assert not undo_buttons(message)


def test_a_forged_or_unknown_undo_is_refused_and_changes_nothing(
    live: LiveService,
    world: World,
    clock: ManualClock,
    releases: SlackEmulator,
    sns_signer: SnsSigner,
) -> None:
    runtime = live.runtime
    deploy(runtime, world, clock, "1.0.1", actor="U0ALICE")
    second = deploy(runtime, world, clock, "1.0.2", actor="U0ALICE")
    incident, _ = alarm(live, sns_signer, releases, CLAIMED)
    before = deployments(live)
    # The older deploy has no button: its id in a click is not an undo the message offers.
    forged = {
        "action_id": f"incident_undo:deploy:{second - 1}",
        "value": f"{incident.id}:deploy:{second - 1}",
    }
    answer = press(live, releases, forged, user="U0ALICE")
    assert answer == "Nothing was done: this change has no one-click undo."
    answer = press(
        live,
        releases,
        {"action_id": "incident_undo:deploy:999", "value": f"{incident.id}:deploy:999"},
        user="U0ALICE",
    )
    assert answer == f"That change is not listed on incident #{incident.id}: nothing was done."
    mismatched = {
        "action_id": f"incident_undo:deploy:{second}",
        "value": f"{incident.id}:flag:1<b>",
    }
    assert press(live, releases, mismatched, user="U0ALICE") == "That button names no change."
    assert deployments(live) == before
    assert [e for e in events_of(live, incident.id) if e.kind == "undo"] == []


def approve(runtime: Runtime, request_id: int | None) -> str:
    assert request_id is not None
    approval_flows.click(runtime, action_id=request_id, user_id="U0ALICE", decision="confirm")
    return approval_flows.click(
        runtime, action_id=request_id, user_id="U0BOB", decision="approve"
    ).text


@pytest.mark.parametrize("protected", [True])
def test_on_a_protected_environment_the_undo_waits_for_the_same_clicks_as_rollback(
    live: LiveService,
    world: World,
    clock: ManualClock,
    releases: SlackEmulator,
    sns_signer: SnsSigner,
) -> None:
    runtime = live.runtime
    first_revision = ""
    for tag in ("1.0.1", "1.0.2"):
        accepted = submit(runtime, Request(app="api", env="prod", actor="U0ALICE", tag=tag))
        assert "started" in approve(runtime, accepted.request_id)
        world.rollouts.complete("prod")
        clock.advance(seconds=10)
        runtime.scheduler.run_due(clock.now())
        first_revision = first_revision or world.service_task_definition("prod")
    second_revision = world.service_task_definition("prod")
    incident, message = alarm(live, sns_signer, releases, CLAIMED)
    button = undo_buttons(message)["Roll back to 1.0.1"]

    answer = press(live, releases, button, user="U0ALICE")
    assert answer == (
        "`api/prod` is protected: request #3 waits for your confirmation and the approval of a "
        "second person in <#C0RELEASES>."
    )
    assert world.service_task_definition("prod") == second_revision  # nothing ran yet
    wait_for(
        lambda: (
            "a rollback of it waits for approval (request #3)"
            in message_text(latest(releases, incident))
        )
    )
    assert not undo_buttons(latest(releases, incident))
    assert press(live, releases, button, user="U0BOB") == (
        "Nothing was done: a rollback of it waits for approval (request #3)."
    )
    with runtime.sessions() as db:
        assert db.scalar(sa.select(sa.func.count()).select_from(PendingAction)) == 3

    assert "Rollback #3" in approve(runtime, 3)
    assert world.service_task_definition("prod") == first_revision
