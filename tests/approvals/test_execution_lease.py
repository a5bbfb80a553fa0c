"""A request that runs holds a claim: only a run whose claim lapsed is said interrupted.

The expiry job fires at the request's expiry. A last click just before it
starts a run that can outlast it (several AWS calls, a synchronous Lambda):
that run is alive, and the job must not call it dead. A process that dies
mid-run renews nothing, and its run is said interrupted once the claim lapses.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa

from bot.app import build_runtime
from bot.approvals import flows
from bot.approvals.models import INTERRUPTED, PendingAction
from bot.approvals.registry import Kind, register
from bot.audit.models import AuditRecord
from bot.clock import ManualClock
from bot.config import Config
from bot.runtime import Runtime
from bot.settings import Settings
from sandbox.slack import SlackEmulator
from tests.support import wait_for

T0 = datetime(2026, 11, 25, 10, 0, tzinfo=UTC)
SEEN: list[tuple[str, str | None]] = []


class ProcessDied(BaseException):
    """The process stops here: no `except Exception` of the bot runs."""


def _authorize(runtime: Runtime, action: PendingAction, user_id: str, decision: str) -> None:
    return None


def _execute(runtime: Runtime, action: PendingAction) -> str:
    """Takes `minutes` of the clock; the leader's jobs run meanwhile, as they would."""
    clock = runtime.clock
    assert isinstance(clock, ManualClock)
    clock.advance(minutes=float(action.payload["minutes"]))
    runtime.scheduler.run_due(clock.now())
    with runtime.sessions() as db:
        found = db.get(PendingAction, action.id)
        assert found is not None
        SEEN.append((found.status, found.result))
    if action.payload.get("die"):
        raise ProcessDied()
    return "Deployed."


register(Kind(name="test.slow", confirm_label="Go", authorize=_authorize, execute=_execute))


@pytest.fixture
def runtime(settings: Settings, config: Config, slack: SlackEmulator) -> Iterator[Runtime]:
    SEEN.clear()
    runtime = build_runtime(settings, config, clock=ManualClock(T0), run_jobs=False)
    runtime.start()
    yield runtime
    runtime.stop()


def clicked_just_before_expiry(runtime: Runtime, *, minutes: float, die: bool = False) -> int:
    """Ask (30 minutes to click), then confirm 2 s before expiry: the run starts then."""
    with runtime.sessions() as db:
        action = flows.request(
            runtime,
            db,
            kind="test.slow",
            target="deploy:api/prod",
            summary="Deploy",
            details=[],
            payload={"minutes": minutes, "die": die},
            requested_by="U0ALICE",
            channel="C0ALERTS",
            needs_confirmation=True,
            required_approvals=0,
            ttl_min=30,
        )
        db.commit()
    flows.schedule_expiry(runtime, action=action)
    clock = runtime.clock
    assert isinstance(clock, ManualClock)
    clock.advance(seconds=30 * 60 - 2)
    return action.id


def action_of(runtime: Runtime, action_id: int) -> PendingAction:
    with runtime.sessions() as db:
        found = db.get(PendingAction, action_id)
        assert found is not None
        return found


def audited(runtime: Runtime, action: str) -> list[AuditRecord]:
    with runtime.sessions() as db:
        return list(db.scalars(sa.select(AuditRecord).where(AuditRecord.action == action)))


def test_a_run_that_outlasts_the_expiry_is_not_called_interrupted(
    runtime: Runtime, slack: SlackEmulator
) -> None:
    action_id = clicked_just_before_expiry(runtime, minutes=1)
    outcome = flows.click(runtime, action_id=action_id, user_id="U0ALICE", decision="confirm")
    assert SEEN == [("executing", None)]  # the expiry job ran during the run: left alone
    assert outcome.text == "Deployed."
    found = action_of(runtime, action_id)
    assert (found.status, found.result) == ("done", "Deployed.")
    assert audited(runtime, "approval.interrupted") == []
    wait_for(lambda: "Deployed." in str([m.blocks for m in slack.channel_messages("C0ALERTS")]))
    assert "Interrupted" not in str([m.blocks for m in slack.all_messages()])


def test_a_run_whose_process_died_is_interrupted_once_its_claim_lapses(
    runtime: Runtime,
) -> None:
    action_id = clicked_just_before_expiry(runtime, minutes=0.5, die=True)
    with pytest.raises(ProcessDied):
        flows.click(runtime, action_id=action_id, user_id="U0ALICE", decision="confirm")
    assert SEEN == [("executing", None)]
    # The expiry job found the claim alive and looks again when it would lapse.
    claimed_until = action_of(runtime, action_id).expires_at
    clock = runtime.clock
    assert isinstance(clock, ManualClock)
    assert claimed_until == T0 + timedelta(minutes=30, seconds=-2) + flows.EXECUTION_LEASE
    clock.advance(seconds=(claimed_until - clock.now()).total_seconds() - 1)
    assert runtime.scheduler.run_due(clock.now()) == []
    assert action_of(runtime, action_id).status == "executing"
    clock.advance(seconds=1)
    assert len(runtime.scheduler.run_due(clock.now())) == 1
    found = action_of(runtime, action_id)
    assert (found.status, found.result) == ("failed", INTERRUPTED)
    [entry] = audited(runtime, "approval.interrupted")
    assert entry.outcome == "failed" and entry.detail["request"] == action_id


def test_an_interrupted_run_is_logged_with_its_request(
    runtime: Runtime, caplog: pytest.LogCaptureFixture
) -> None:
    action_id = clicked_just_before_expiry(runtime, minutes=0, die=True)
    with pytest.raises(ProcessDied):
        flows.click(runtime, action_id=action_id, user_id="U0ALICE", decision="confirm")
    clock = runtime.clock
    assert isinstance(clock, ManualClock)
    clock.advance(minutes=10)  # far past the claim: nothing renews it

    with caplog.at_level("WARNING", logger="bot.approvals.flows"):
        flows.expire_if_due(runtime, action_id=action_id)

    assert action_of(runtime, action_id).result == INTERRUPTED
    [record] = [r for r in caplog.records if "interrupted" in r.getMessage()]
    assert record.levelname == "WARNING"
    assert record.getMessage().startswith(
        f"request {action_id} (test.slow on deploy:api/prod) interrupted"
    )
    assert (getattr(record, "request", None), getattr(record, "target", None)) == (
        action_id,
        "deploy:api/prod",
    )


def test_the_claim_is_renewed_while_the_run_lasts(runtime: Runtime) -> None:
    action_id = clicked_just_before_expiry(runtime, minutes=0, die=True)
    with pytest.raises(ProcessDied):
        flows.click(runtime, action_id=action_id, user_id="U0ALICE", decision="confirm")
    clock = runtime.clock
    assert isinstance(clock, ManualClock)
    with flows.ExecutionLease(runtime, action_id=action_id, every_s=0.01):
        clock.advance(minutes=10)  # far past the claim the click made
        wait_for(lambda: action_of(runtime, action_id).expires_at > clock.now())
        flows.expire_if_due(runtime, action_id=action_id)
        assert action_of(runtime, action_id).status == "executing"
    # Once the run is over, nothing renews the claim.
    clock.advance(minutes=10)
    flows.expire_if_due(runtime, action_id=action_id)
    assert action_of(runtime, action_id).result == INTERRUPTED
    assert not flows.ExecutionLease(runtime, action_id=action_id).renew()


def test_a_run_said_interrupted_that_ends_after_all_records_what_it_did(
    runtime: Runtime,
) -> None:
    """Its claim lapsed (say the database was out for its renewals): the presumption
    gives way to what really happened, and the audit trail says so."""
    action_id = clicked_just_before_expiry(runtime, minutes=5)
    outcome = flows.click(runtime, action_id=action_id, user_id="U0ALICE", decision="confirm")
    assert SEEN == [("failed", INTERRUPTED)]
    assert outcome.text == "Deployed."
    found = action_of(runtime, action_id)
    assert (found.status, found.result) == ("done", "Deployed.")
    [late] = audited(runtime, "approval.late_result")
    assert late.outcome == "ok" and late.detail["result"] == "Deployed."
