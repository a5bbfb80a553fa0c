"""An alarm that reaches opsbot late lists the changes before the alarm fired, not before
its notification arrived: the fix made meanwhile is not offered to undo."""

from __future__ import annotations

import sqlalchemy as sa

from bot.audit.models import AuditRecord
from bot.clock import ManualClock
from sandbox.alarms import alarm_message
from sandbox.slack import SlackEmulator
from sandbox.sns import SnsSigner, body
from tests.changes.conftest import CLAIMED
from tests.changes.test_changes import flip, press, undo_buttons
from tests.conftest import TOPIC_ARN
from tests.flags.conftest import FlagWorld
from tests.incidents.helpers import incident_message, message_text, only_incident
from tests.support import LiveService, wait_for


def change_of(live: LiveService, actor: str) -> int:
    with live.runtime.sessions() as db:
        query = sa.select(AuditRecord.id).where(
            AuditRecord.action == "flag.change", AuditRecord.actor == actor
        )
        return int(db.scalars(query).one())


def test_a_late_alarm_lists_what_was_changed_before_it_fired(
    live: LiveService,
    flag_world: FlagWorld,
    clock: ManualClock,
    releases: SlackEmulator,
    sns_signer: SnsSigner,
) -> None:
    runtime = live.runtime
    flip(runtime, "on", "apple_pay", actor="U0ALICE")  # the cause
    clock.advance(minutes=10)
    fired_at = clock.now()  # the alarm fires (its StateChangeTime)
    clock.advance(minutes=5)
    flip(runtime, "off", "apple_pay", actor="U0BOB")  # the fix, before opsbot hears of it
    clock.advance(minutes=3)
    received_at = clock.now()  # the notification arrives (SNS retries, a queue's backlog)
    envelope = sns_signer.notification(
        alarm_message(name=CLAIMED, state="ALARM", at=fired_at),
        topic_arn=TOPIC_ARN,
        timestamp=received_at,
    )
    answer = live.post(
        "/sns",
        content=body(envelope),
        headers={"x-amz-sns-message-type": "Notification", "content-type": "text/plain"},
    )
    assert answer.status_code == 200, answer.text
    incident = wait_for(lambda: only_incident(live, CLAIMED))
    assert incident.opened_at == received_at
    message = wait_for(lambda: incident_message(releases, incident))
    text = message_text(message)

    assert "Flag `apple_pay` `off` → `on` by <@U0ALICE>" in text
    assert "by <@U0BOB>" in text  # ...as the one who turned it off again
    assert "Flag `apple_pay` `on` → `off` by <@U0BOB>" not in text
    assert "already turned off again by <@U0BOB>" in text
    assert undo_buttons(message) == {}

    # A click on the fix (a forged button: the message offers none) is refused.
    bob = change_of(live, "U0BOB")
    forged = {"action_id": f"incident_undo:flag:{bob}", "value": f"{incident.id}:flag:{bob}"}
    assert press(live, releases, forged, user="U0ALICE") == (
        f"That change is not listed on incident #{incident.id}: nothing was done."
    )
    assert flag_world.document()["values"]["apple_pay"] == {"enabled": False}
