"""An undo that AWS refuses or fails once it runs: a failure, not a refusal, and the
incident's thread is told; a gate that says no is the clicker's news alone."""

from __future__ import annotations

import sqlalchemy as sa

from bot.audit.models import AuditRecord
from bot.clock import ManualClock
from sandbox.slack import SlackEmulator
from sandbox.sns import SnsSigner
from tests.changes.conftest import CLAIMED
from tests.changes.test_changes import PRODALERTS, alarm, flip, press, undo_buttons
from tests.deploys.world import World
from tests.flags.conftest import FlagWorld
from tests.flags.test_undeployed import strategy_gone
from tests.incidents.helpers import events_of
from tests.support import LiveService, metric, wait_for


def test_an_undo_aws_refuses_is_recorded_as_failed_and_threaded_on_the_incident(
    live: LiveService,
    world: World,
    flag_world: FlagWorld,
    clock: ManualClock,
    releases: SlackEmulator,
    sns_signer: SnsSigner,
) -> None:
    runtime = live.runtime
    assert "AppConfig deployment 1 started" in flip(runtime, "on", "apple_pay", actor="U0ALICE")
    clock.advance(minutes=5)
    incident, message = alarm(live, sns_signer, releases, CLAIMED)
    button = undo_buttons(message)["Turn apple_pay off again"]

    # Carol may not: a plain refusal, hers alone (not threaded).
    assert press(live, releases, button, user="U0CAROL").startswith("You may not change")

    with strategy_gone(flag_world):  # AppConfig refuses StartDeployment
        answer = press(live, releases, button, user="U0ALICE")
    assert "AWS refused to start the AppConfig deployment" in answer, answer

    with runtime.sessions() as db:
        outcomes = [
            r.outcome
            for r in db.scalars(
                sa.select(AuditRecord)
                .where(AuditRecord.action == "incident.undo")
                .order_by(AuditRecord.id)
            )
        ]
    assert outcomes == ["refused", "failed"]
    assert metric(live, "opsbot_undo_total", kind="flag", outcome="refused") == 1
    assert metric(live, "opsbot_undo_total", kind="flag", outcome="failed") == 1
    undo_events = [e for e in events_of(live, incident.id) if e.kind == "undo"]
    assert [(e.data["status"], e.text) for e in undo_events] == [
        ("failed", "Turn apple_pay off again: failed")
    ]
    thread = wait_for(
        lambda: [m.text for m in releases.thread(PRODALERTS, message.ts) if "clicked" in m.text]
    )
    assert thread == [
        f":leftwards_arrow_with_hook: <@U0ALICE> clicked *Turn apple_pay off again*: "
        f"*failed*: {answer}"
    ]
