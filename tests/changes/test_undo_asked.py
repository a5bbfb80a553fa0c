"""An undo on a protected environment only opens a request: it is recorded as waiting
for approval (timeline, audit, metric), not as done."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from bot.audit.models import AuditRecord
from bot.clock import ManualClock
from bot.deploys.plans import Request
from bot.deploys.requests import submit
from sandbox.slack import SlackEmulator
from sandbox.sns import SnsSigner
from tests.changes.conftest import CLAIMED
from tests.changes.test_changes import alarm, approve, flip, press, undo_buttons
from tests.deploys.world import World
from tests.flags.conftest import FlagWorld
from tests.incidents.helpers import events_of
from tests.support import LiveService, metric


def undo_records(live: LiveService) -> list[tuple[str, object]]:
    with live.runtime.sessions() as db:
        query = (
            sa.select(AuditRecord)
            .where(AuditRecord.action == "incident.undo")
            .order_by(AuditRecord.id)
        )
        return [(r.outcome, (r.detail or {}).get("request")) for r in db.scalars(query)]


@pytest.mark.parametrize("protected", [True])
def test_a_rollback_undo_that_opens_a_request_is_recorded_as_waiting_for_approval(
    live: LiveService,
    world: World,
    clock: ManualClock,
    releases: SlackEmulator,
    sns_signer: SnsSigner,
) -> None:
    runtime = live.runtime
    for tag in ("1.0.1", "1.0.2"):
        accepted = submit(runtime, Request(app="api", env="prod", actor="U0ALICE", tag=tag))
        assert "started" in approve(runtime, accepted.request_id)
        world.rollouts.complete("prod")
        clock.advance(seconds=10)
        runtime.scheduler.run_due(clock.now())
    incident, message = alarm(live, sns_signer, releases, CLAIMED)

    answer = press(live, releases, undo_buttons(message)["Roll back to 1.0.1"], user="U0ALICE")
    assert "request #3 waits" in answer, answer

    undo_events = [e for e in events_of(live, incident.id) if e.kind == "undo"]
    assert [(e.data["status"], e.data.get("request"), e.text) for e in undo_events] == [
        ("asked", 3, "Roll back to 1.0.1: waiting for approval (request #3)")
    ]
    assert undo_records(live) == [("asked", 3)]
    assert metric(live, "opsbot_undo_total", kind="rollback", outcome="asked") == 1
    assert not metric(live, "opsbot_undo_total", kind="rollback", outcome="done")


@pytest.mark.parametrize("protected", [True])
def test_a_flag_undo_that_opens_a_request_is_recorded_as_waiting_for_approval(
    live: LiveService,
    flag_world: FlagWorld,
    clock: ManualClock,
    releases: SlackEmulator,
    sns_signer: SnsSigner,
) -> None:
    runtime = live.runtime
    asked = flip(runtime, "on", "apple_pay", actor="U0ALICE")
    assert "request #1 waits" in asked, asked
    assert "AppConfig deployment 1 started" in approve(runtime, 1)
    clock.advance(minutes=5)  # the rollout is over
    runtime.scheduler.run_due(clock.now())
    incident, message = alarm(live, sns_signer, releases, CLAIMED)

    button = undo_buttons(message)["Turn apple_pay off again"]
    answer = press(live, releases, button, user="U0ALICE")
    assert "request #2 waits" in answer, answer

    undo_events = [e for e in events_of(live, incident.id) if e.kind == "undo"]
    assert [(e.data["status"], e.data.get("request"), e.text) for e in undo_events] == [
        ("asked", 2, "Turn apple_pay off again: waiting for approval (request #2)")
    ]
    assert undo_records(live) == [("asked", 2)]
    assert metric(live, "opsbot_undo_total", kind="flag", outcome="asked") == 1
    assert not metric(live, "opsbot_undo_total", kind="flag", outcome="done")
