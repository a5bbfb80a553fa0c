"""Every click the run counts is checked again when it runs, for any kind.

A click's right is checked when it is made, and the clicks may come long apart:
Bob approves, loses the right, and Alice confirms ten minutes later. The run must
not count Bob's approval: nothing runs, the request fails with the reason, the
audit says so (`approval.run`, refused) and the request's thread tells the
requester. The kind here ("test.rights") stands for deploys, flags and database
roles; who may click is `MAY_CLICK`, which the test changes between the clicks.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
import sqlalchemy as sa

from bot.app import build_runtime
from bot.approvals import flows
from bot.approvals.errors import ClickRefused
from bot.approvals.models import PendingAction
from bot.approvals.registry import Kind, register
from bot.apps.services import Services
from bot.audit.models import AuditRecord
from bot.clock import ManualClock
from bot.config import Config
from bot.runtime import Runtime
from bot.settings import Settings
from sandbox.slack import SlackEmulator
from tests.support import wait_for

CHANNEL = "C0ALERTS"
RAN: list[str] = []
MAY_CLICK: set[str] = set()


def _authorize(services: Services, action: PendingAction, user_id: str, decision: str) -> None:
    if user_id not in MAY_CLICK:
        raise ClickRefused(f"You may not {decision} notes.")


def _execute(services: Services, action: PendingAction) -> str:
    RAN.append(str(action.payload["note"]))
    return f"Noted {action.payload['note']}."


register(Kind(name="test.rights", confirm_label="Note it", authorize=_authorize, execute=_execute))


@pytest.fixture(autouse=True)
def _reset() -> None:
    RAN.clear()
    MAY_CLICK.clear()
    MAY_CLICK.update({"U0ALICE", "U0BOB", "U0CAROL"})


@pytest.fixture
def runtime(settings: Settings, config: Config, slack: SlackEmulator) -> Iterator[Runtime]:
    clock = ManualClock(datetime(2026, 11, 25, 10, 0, tzinfo=UTC))
    runtime = build_runtime(settings, config, clock=clock, run_jobs=False)
    runtime.start()
    yield runtime
    runtime.stop()


def ask(runtime: Runtime, *, requested_by: str, confirmation: bool) -> int:
    with runtime.sessions() as db:
        action = flows.request(
            runtime,
            db,
            kind="test.rights",
            target="note:test",
            summary="Write a note",
            details=[],
            payload={"note": "hello"},
            requested_by=requested_by,
            channel=CHANNEL,
            needs_confirmation=confirmation,
            required_approvals=1,
            ttl_min=30,
        )
        db.commit()
    flows.schedule_expiry(runtime, action=action)
    return action.id


def click(runtime: Runtime, action_id: int, user_id: str, decision: str) -> flows.ClickOutcome:
    return flows.click(runtime, action_id=action_id, user_id=user_id, decision=decision)


def found(runtime: Runtime, action_id: int) -> PendingAction:
    with runtime.sessions() as db:
        action = db.get(PendingAction, action_id)
        assert action is not None
        return action


def run_audits(runtime: Runtime) -> list[tuple[str, str, str, dict[str, Any]]]:
    with runtime.sessions() as db:
        rows = db.scalars(
            sa.select(AuditRecord)
            .where(AuditRecord.action == "approval.run")
            .order_by(AuditRecord.id)
        ).all()
        return [(r.actor, r.target, r.outcome, dict(r.detail)) for r in rows]


def thread_texts(slack: SlackEmulator, containing: str) -> list[str]:
    [parent] = wait_for(lambda: slack.channel_messages(CHANNEL))
    return list(
        wait_for(
            lambda: (
                [m.text for m in slack.thread(CHANNEL, parent.ts)]
                if any(containing in m.text for m in slack.thread(CHANNEL, parent.ts))
                else None
            )
        )
    )


def test_an_approver_who_lost_the_right_before_the_last_click_runs_nothing(
    runtime: Runtime, slack: SlackEmulator
) -> None:
    action_id = ask(runtime, requested_by="U0ALICE", confirmation=True)
    assert click(runtime, action_id, "U0BOB", "approve").ran is False
    MAY_CLICK.discard("U0BOB")  # ten minutes later, Bob may approve no more
    assert isinstance(runtime.clock, ManualClock)
    runtime.clock.advance(minutes=10)

    outcome = click(runtime, action_id, "U0ALICE", "confirm")

    reason = (
        "Refused when it came to run: <@U0BOB> approved it but may not any more: You may not "
        "approve notes. Nothing was changed: ask again."
    )
    assert (outcome.ran, outcome.text) == (True, reason)
    assert RAN == []
    action = found(runtime, action_id)
    assert (action.status, action.result, action.approvers) == ("failed", reason, ["U0BOB"])
    assert run_audits(runtime) == [
        (
            "opsbot",
            "note:test",
            "refused",
            {
                "request": action_id,
                "kind": "test.rights",
                "summary": "Write a note",
                "requested_by": "U0ALICE",
                "lapsed": [
                    {"user": "U0BOB", "decision": "approve", "reason": "You may not approve notes."}
                ],
                "reason": reason,
            },
        )
    ]
    said = (
        f":no_entry: <@U0ALICE>: request #{action_id} did not run. <@U0BOB>'s approval no longer "
        "counts: they may not approve it any more. Nothing was changed: ask again."
    )
    assert thread_texts(slack, "did not run") == [said]
    wait_for(lambda: reason in str(slack.channel_messages(CHANNEL)[0].blocks))


def test_clicks_whose_right_holds_run_and_nothing_is_refused(runtime: Runtime) -> None:
    action_id = ask(runtime, requested_by="U0ALICE", confirmation=True)
    click(runtime, action_id, "U0BOB", "approve")
    MAY_CLICK.discard("U0CAROL")  # someone who never clicked: nothing of theirs counts

    assert click(runtime, action_id, "U0ALICE", "confirm").text == "Noted hello."
    assert RAN == ["hello"] and found(runtime, action_id).status == "done"
    assert run_audits(runtime) == []
