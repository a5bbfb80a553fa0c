"""What the requester learns when their request fails, and what clicks leave behind.

Whoever clicked last is told why a run failed, in their own answer; the request's
message is updated, which notifies nobody. So the requester is told in the
request's thread, once, for any kind, without pinging the people an "Allowed:"
list names. Clicks that do not count, and requests that end, are counted and
logged; one person is never both the confirmer and the approver. The kind here
("test.told") stands for deploys, flags and database roles.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
import sqlalchemy as sa

from bot.app import build_runtime
from bot.approvals import flows
from bot.approvals.errors import ActionFailed, ClickRefused
from bot.approvals.models import PendingAction
from bot.approvals.registry import Kind, register
from bot.apps.errors import NotAllowed
from bot.apps.services import Services
from bot.clock import ManualClock
from bot.config import Config
from bot.outbox.models import PENDING, Delivery
from bot.runtime import Runtime
from bot.settings import Settings
from sandbox.slack import SlackEmulator
from tests.support import wait_for

CHANNEL = "C0ALERTS"
ALLOWED = "Allowed: <@U0CAROL>, <!subteam^S0NOTERS>."


def _authorize(services: Services, action: PendingAction, user_id: str, decision: str) -> None:
    return None


def _execute(services: Services, action: PendingAction) -> str:
    how = action.payload["how"]
    if how == "refused":
        raise ActionFailed(f"The note was refused: out of paper. {ALLOWED}")
    if how == "right lost":  # as deploys and flags check the requester's right as they run
        try:
            with flows.as_requesters_right(action.requested_by, doing="write notes", waited=True):
                raise NotAllowed(f"You may not write notes. {ALLOWED}")
        except NotAllowed as exc:
            raise ActionFailed(str(exc)) from exc
    if how == "broken":
        raise RuntimeError("a bug")
    return "Noted."


register(Kind(name="test.told", confirm_label="Note it", authorize=_authorize, execute=_execute))


@pytest.fixture
def runtime(settings: Settings, config: Config, slack: SlackEmulator) -> Iterator[Runtime]:
    clock = ManualClock(datetime(2026, 11, 25, 10, 0, tzinfo=UTC))
    runtime = build_runtime(settings, config, clock=clock, run_jobs=False)
    flows.count_after_commit(runtime.sessions, runtime.metrics)  # as bot/app.py wires it
    runtime.start()
    yield runtime
    runtime.stop()


def ask(runtime: Runtime, *, how: str = "ok", requested_by: str = "U0ALICE") -> int:
    with runtime.sessions() as db:
        action = flows.request(
            runtime,
            db,
            kind="test.told",
            target="note:test",
            summary="Write a note",
            details=[],
            payload={"how": how},
            requested_by=requested_by,
            channel=CHANNEL,
            needs_confirmation=True,
            required_approvals=1,
            ttl_min=30,
        )
        db.commit()
    flows.schedule_expiry(runtime, action=action)
    return action.id


def click(runtime: Runtime, action_id: int, user_id: str, decision: str) -> flows.ClickOutcome:
    return flows.click(runtime, action_id=action_id, user_id=user_id, decision=decision)


def refused(runtime: Runtime, action_id: int, user_id: str, decision: str) -> str:
    with pytest.raises(ClickRefused) as raised:
        click(runtime, action_id, user_id, decision)
    return str(raised.value)


def thread(runtime: Runtime, slack: SlackEmulator, action_id: int) -> list[str]:
    """The request's thread, once the outbox has delivered all it holds."""
    parent = wait_for(
        lambda: next(
            (m for m in slack.channel_messages(CHANNEL) if f"Request #{action_id}" in m.text),
            None,
        )
    )
    wait_for(lambda: not pending(runtime))
    return [m.text for m in slack.thread(CHANNEL, parent.ts)]


def pending(runtime: Runtime) -> int:
    with runtime.sessions() as db:
        query = sa.select(sa.func.count()).select_from(Delivery).where(Delivery.status == PENDING)
        return int(db.scalar(query) or 0)


def clicks(runtime: Runtime, decision: str, outcome: str) -> float:
    labels = {"decision": decision, "outcome": outcome}
    return runtime.metrics.registry.get_sample_value("opsbot_approval_clicks_total", labels) or 0


def ended(runtime: Runtime, outcome: str) -> float:
    labels = {"outcome": outcome}
    return runtime.metrics.registry.get_sample_value("opsbot_approvals_ended_total", labels) or 0


def test_a_run_that_fails_tells_the_requester_in_its_thread(
    runtime: Runtime, slack: SlackEmulator
) -> None:
    action_id = ask(runtime, how="refused")
    click(runtime, action_id, "U0ALICE", "confirm")

    outcome = click(runtime, action_id, "U0BOB", "approve")

    assert outcome.text == f"The note was refused: out of paper. {ALLOWED}"  # Bob, only
    assert thread(runtime, slack, action_id) == [
        f":no_entry: <@U0ALICE>: request #{action_id} did not run: The note was refused: out "
        "of paper."
    ]
    assert ended(runtime, "failed") == 1


def test_a_requester_who_lost_the_right_is_told_as_theirs(
    runtime: Runtime, slack: SlackEmulator
) -> None:
    action_id = ask(runtime, how="right lost")
    click(runtime, action_id, "U0ALICE", "confirm")

    outcome = click(runtime, action_id, "U0BOB", "approve")

    assert outcome.text == (
        f"<@U0ALICE>, who asked, may no longer write notes. {ALLOWED} Nothing was changed."
    )
    assert thread(runtime, slack, action_id) == [
        f":no_entry: <@U0ALICE>: request #{action_id} did not run: you may no longer write "
        "notes. Nothing was changed."
    ]


def test_a_run_that_breaks_tells_the_requester_part_may_be_done(
    runtime: Runtime, slack: SlackEmulator
) -> None:
    action_id = ask(runtime, how="broken")
    click(runtime, action_id, "U0ALICE", "confirm")

    click(runtime, action_id, "U0BOB", "approve")

    assert thread(runtime, slack, action_id) == [
        f":x: <@U0ALICE>: request #{action_id} failed unexpectedly (RuntimeError): part of it "
        "may have been done. Check the state; the bot's logs say more."
    ]


def test_a_run_that_succeeds_says_nothing_in_the_thread(
    runtime: Runtime, slack: SlackEmulator
) -> None:
    action_id = ask(runtime)
    click(runtime, action_id, "U0ALICE", "confirm")

    assert click(runtime, action_id, "U0BOB", "approve").text == "Noted."

    assert thread(runtime, slack, action_id) == []
    assert (ended(runtime, "done"), ended(runtime, "failed")) == (1, 0)
    assert (clicks(runtime, "confirm", "ok"), clicks(runtime, "approve", "ok")) == (1, 1)


def test_a_run_that_died_tells_the_requester(runtime: Runtime, slack: SlackEmulator) -> None:
    clock = runtime.clock
    assert isinstance(clock, ManualClock)
    action_id = ask(runtime)
    with runtime.sessions() as db:  # as if the process died while running it
        db.execute(
            sa.update(PendingAction).where(PendingAction.id == action_id).values(status="executing")
        )
        db.commit()
    clock.advance(minutes=30)
    runtime.scheduler.run_due(clock.now())

    assert thread(runtime, slack, action_id) == [
        f":warning: <@U0ALICE>: request #{action_id} was interrupted: the bot stopped while "
        "running it, and what it did is unknown. Check the state before you ask again."
    ]
    assert ended(runtime, "interrupted") == 1


def test_refused_clicks_and_expiries_are_counted_and_logged(
    runtime: Runtime, caplog: pytest.LogCaptureFixture
) -> None:
    clock = runtime.clock
    assert isinstance(clock, ManualClock)
    action_id = ask(runtime)
    caplog.set_level(logging.INFO, logger="bot.approvals.flows")

    refused(runtime, action_id, "U0ALICE", "approve")  # her own request
    refused(runtime, action_id, "U0BOB", "confirm")  # not his
    clock.advance(minutes=30)
    runtime.scheduler.run_due(clock.now())

    assert (clicks(runtime, "approve", "refused"), clicks(runtime, "confirm", "refused")) == (1, 1)
    assert clicks(runtime, "approve", "ok") == 0
    assert ended(runtime, "expired") == 1
    lines = [
        (r.levelname, r.getMessage(), getattr(r, "request", None), getattr(r, "slack_user", None))
        for r in caplog.records
        if r.name == "bot.approvals.flows"
    ]
    assert lines == [
        (
            "INFO",
            f"request {action_id}: approve by U0ALICE refused: You cannot approve your own "
            "request: a different person must approve it.",
            action_id,
            "U0ALICE",
        ),
        (
            "INFO",
            f"request {action_id}: confirm by U0BOB refused: Only <@U0ALICE> can confirm their "
            "own request: you can approve it.",
            action_id,
            "U0BOB",
        ),
        (
            "INFO",
            f"request {action_id} (test.told on note:test) by U0ALICE expired without every "
            "click: waiting for <@U0ALICE> to confirm · approvals 0 of 1 (from someone other "
            "than the requester)",
            action_id,
            "U0ALICE",
        ),
    ]


@pytest.mark.parametrize("requester", ["cli:octocat", "u0alice", ""])
def test_only_a_slack_user_can_be_a_requester(runtime: Runtime, requester: str) -> None:
    with pytest.raises(ValueError, match="must be a Slack user id"):
        ask(runtime, requested_by=requester)
    with runtime.sessions() as db:
        assert db.scalars(sa.select(PendingAction)).all() == []


def test_who_confirmed_a_request_does_not_approve_it(runtime: Runtime) -> None:
    """A stored request whose requester could not click, confirmed by Bob: Bob's approval
    would make one person both clicks."""
    action_id = ask(runtime)
    with runtime.sessions() as db:
        db.execute(
            sa.update(PendingAction)
            .where(PendingAction.id == action_id)
            .values(requested_by="cli:octocat", confirmed_by="U0BOB")
        )
        db.commit()

    assert refused(runtime, action_id, "U0BOB", "approve") == (
        "You confirmed this request: a different person must approve it."
    )
    assert refused(runtime, action_id, "U0CAROL", "confirm") == (
        f"Request #{action_id} needs no (more) confirmation."
    )
    assert click(runtime, action_id, "U0CAROL", "approve").text == "Noted."


def test_nobody_but_the_requester_confirms(runtime: Runtime) -> None:
    """A stored request whose requester could not click: nobody confirms it for them."""
    action_id = ask(runtime)
    with runtime.sessions() as db:
        db.execute(
            sa.update(PendingAction)
            .where(PendingAction.id == action_id)
            .values(requested_by="cli:octocat")
        )
        db.commit()

    assert refused(runtime, action_id, "U0BOB", "confirm") == (
        "Only <@cli:octocat> can confirm their own request: you can approve it."
    )
    click(runtime, action_id, "U0BOB", "approve")
    with runtime.sessions() as db:
        stored = db.get(PendingAction, action_id)
        assert stored is not None and (stored.status, stored.confirmed_by) == ("pending", None)
