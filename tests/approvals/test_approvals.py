"""Pending actions for any kind: who may click what, running once, failing, expiring.

A kind registered here ("test.note") stands for feature flags or database
roles: the mechanism must work without knowing anything of deploys.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
import sqlalchemy as sa

from bot.app import build_runtime
from bot.approvals import flows
from bot.approvals.errors import ActionFailed, ClickRefused
from bot.approvals.models import PendingAction
from bot.approvals.registry import Kind, register
from bot.audit.models import AuditRecord
from bot.clock import ManualClock
from bot.config import Config
from bot.runtime import Runtime
from bot.settings import Settings
from sandbox.slack import SlackEmulator
from tests.support import wait_for

RAN: list[str] = []
ALLOWED = {"U0ALICE", "U0BOB"}


def _authorize(runtime: Runtime, action: PendingAction, user_id: str, decision: str) -> None:
    if user_id not in ALLOWED:
        raise ClickRefused(f"<@{user_id}> may not {decision} notes.")


def _execute(runtime: Runtime, action: PendingAction) -> str:
    if action.payload.get("fail"):
        raise ActionFailed("The note was refused: " + str(action.payload["fail"]))
    RAN.append(str(action.payload["note"]))
    return f"Noted {action.payload['note']}."


register(Kind(name="test.note", confirm_label="Note it", authorize=_authorize, execute=_execute))


@pytest.fixture(autouse=True)
def _reset() -> None:
    RAN.clear()


@pytest.fixture
def runtime(settings: Settings, config: Config, slack: SlackEmulator) -> Iterator[Runtime]:
    clock = ManualClock(datetime(2026, 11, 25, 10, 0, tzinfo=UTC))
    runtime = build_runtime(settings, config, clock=clock, run_jobs=False)
    runtime.start()
    yield runtime
    runtime.stop()


def ask(
    runtime: Runtime,
    *,
    requested_by: str = "U0ALICE",
    confirmation: bool = True,
    approvals: int = 0,
    **payload: object,
) -> int:
    with runtime.sessions() as db:
        action = flows.request(
            runtime,
            db,
            kind="test.note",
            target="note:test",
            summary="Write a note",
            details=["*Note* hello"],
            payload={"note": "hello", **payload},
            requested_by=requested_by,
            channel="C0ALERTS",
            needs_confirmation=confirmation,
            required_approvals=approvals,
            ttl_min=30,
        )
        db.commit()
    flows.schedule_expiry(runtime, action=action)
    return action.id


def refused(runtime: Runtime, action_id: int, user_id: str, decision: str) -> str:
    try:
        flows.click(runtime, action_id=action_id, user_id=user_id, decision=decision)
    except ClickRefused as exc:
        return str(exc)
    raise AssertionError(f"{user_id}'s {decision} counted")


def status(runtime: Runtime, action_id: int) -> PendingAction:
    with runtime.sessions() as db:
        found = db.get(PendingAction, action_id)
        assert found is not None
        return found


def test_the_message_offers_the_kinds_buttons_and_ends_with_the_result(
    runtime: Runtime, slack: SlackEmulator
) -> None:
    action_id = ask(runtime, approvals=1)
    [message] = wait_for(lambda: slack.channel_messages("C0ALERTS"))
    [actions] = [b for b in message.blocks or [] if b["type"] == "actions"]
    assert [(e["action_id"], e["text"]["text"]) for e in actions["elements"]] == [
        ("approval_confirm", "Note it"),
        ("approval_approve", "Approve"),
        ("approval_cancel", "Cancel"),
    ]
    assert refused(runtime, action_id, "U0CAROL", "approve") == "<@U0CAROL> may not approve notes."
    flows.click(runtime, action_id=action_id, user_id="U0ALICE", decision="confirm")
    outcome = flows.click(runtime, action_id=action_id, user_id="U0BOB", decision="approve")
    assert outcome.ran and outcome.text == "Noted hello."
    assert RAN == ["hello"]
    wait_for(lambda: "Noted hello." in str(slack.channel_messages("C0ALERTS")[0].blocks))
    assert not [
        b for b in slack.channel_messages("C0ALERTS")[0].blocks or [] if b["type"] == "actions"
    ]


def test_two_clicks_at_once_run_it_once(runtime: Runtime) -> None:
    action_id = ask(runtime, confirmation=False, approvals=1, requested_by="U0CAROL")
    barrier = threading.Barrier(2)
    answers: list[str] = []

    def approve(user: str) -> None:
        barrier.wait()
        try:
            answers.append(
                flows.click(runtime, action_id=action_id, user_id=user, decision="approve").text
            )
        except ClickRefused as exc:
            answers.append(str(exc))

    threads = [threading.Thread(target=approve, args=(u,)) for u in ("U0ALICE", "U0BOB")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert RAN == ["hello"]
    assert sorted(answers)[0] == "Noted hello."
    assert sorted(answers)[1] in (
        f"Request #{action_id} is already executing.",
        f"Request #{action_id} is already done.",
    )
    assert len(status(runtime, action_id).approvals) == 1


def test_a_failing_kind_fails_the_request_with_its_reason(runtime: Runtime) -> None:
    action_id = ask(runtime, fail="out of paper")
    outcome = flows.click(runtime, action_id=action_id, user_id="U0ALICE", decision="confirm")
    assert outcome.text == "The note was refused: out of paper"
    found = status(runtime, action_id)
    assert (found.status, found.result) == ("failed", "The note was refused: out of paper")
    assert RAN == []


def test_expiry_and_a_run_that_died(runtime: Runtime, slack: SlackEmulator) -> None:
    clock = runtime.clock
    assert isinstance(clock, ManualClock)
    expiring = ask(runtime)
    dying = ask(runtime, confirmation=False, approvals=1)
    with runtime.sessions() as db:  # as if the process died while running it
        db.execute(
            sa.update(PendingAction).where(PendingAction.id == dying).values(status="executing")
        )
        db.commit()
    clock.advance(minutes=29)
    assert runtime.scheduler.run_due(clock.now()) == []
    clock.advance(minutes=1)
    assert sorted(runtime.scheduler.run_due(clock.now())) == [
        f"approval-expire-{expiring}",
        f"approval-expire-{dying}",
    ]
    assert status(runtime, expiring).status == "expired"
    assert (status(runtime, dying).status, status(runtime, dying).result) == (
        "failed",
        "Interrupted: the bot stopped while running it. Check the state and ask again.",
    )
    assert refused(runtime, expiring, "U0ALICE", "confirm") == (
        f"Request #{expiring} is already expired."
    )


def test_a_lost_expiry_job_is_put_back_at_start(runtime: Runtime, slack: SlackEmulator) -> None:
    clock = runtime.clock
    assert isinstance(clock, ManualClock)
    waiting = ask(runtime)
    running = ask(runtime, confirmation=False, approvals=1)
    with runtime.sessions() as db:  # a run whose process died with its expiry job
        db.execute(
            sa.update(PendingAction).where(PendingAction.id == running).values(status="executing")
        )
        db.commit()
    for action_id in (waiting, running):  # lost: a crash mid-run, or retries given up
        assert runtime.scheduler.cancel(f"approval-expire-{action_id}")
    [put_back] = [
        hook for hook in runtime.on_start if hook.__name__ == "reschedule_approval_expiries"
    ]
    put_back(runtime)  # what the next start runs
    clock.advance(minutes=30)
    assert sorted(runtime.scheduler.run_due(clock.now())) == [
        f"approval-expire-{waiting}",
        f"approval-expire-{running}",
    ]
    assert status(runtime, waiting).status == "expired"
    assert status(runtime, running).status == "failed"
    put_back(runtime)  # nothing open any more: nothing to put back
    assert [job for job, _ in runtime.scheduler.pending() if job.startswith("approval-")] == []


def test_the_click_that_finds_a_request_expired_is_audited_as_refused(runtime: Runtime) -> None:
    """The expiry job has not run yet: the click expires the request, and its own refusal
    is audited as every later click's is."""
    clock = runtime.clock
    assert isinstance(clock, ManualClock)
    action_id = ask(runtime)
    clock.advance(minutes=31)  # past the expiry, its job not yet run

    assert refused(runtime, action_id, "U0ALICE", "confirm") == (
        f"Request #{action_id} has expired; ask again."
    )
    assert refused(runtime, action_id, "U0BOB", "cancel") == (
        f"Request #{action_id} is already expired."
    )

    assert status(runtime, action_id).status == "expired"
    with runtime.sessions() as db:
        rows = db.scalars(sa.select(AuditRecord).order_by(AuditRecord.id)).all()
        audited = [(r.actor, r.action, r.outcome, r.detail.get("reason")) for r in rows]
    assert audited[1:] == [
        ("opsbot", "approval.expire", "ok", None),
        (
            "U0ALICE",
            "approval.confirm",
            "refused",
            f"Request #{action_id} has expired; ask again.",
        ),
        ("U0BOB", "approval.cancel", "refused", f"Request #{action_id} is already expired."),
    ]
