"""A right Slack cannot confirm just then is "could not check", never "may not", and runs nothing.

`api/prod` (tests/approvals/test_approvers_at_run.py) needs Alice's confirmation
and a second person's approval; Bob is a deployer through the group
S0DEPLOYERS. While Slack's usergroups.users.list fails (the emulator serves a
500 `fatal_error`, or a 429 `ratelimited` as under Tier-2 limits), nobody can be
shown to be in the group: nothing counts and nothing runs (rights fail closed),
but nobody is told, or audited as, having lost the right. The request stays
open, and the same click goes through once Slack answers again.
"""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from bot.approvals import flows as approval_flows
from bot.approvals import service as approvals
from bot.approvals.errors import ClickRefused
from bot.deploys.models import Deployment
from bot.deploys.plans import Request
from bot.deploys.requests import submit
from bot.runtime import Runtime
from tests.approvals.test_approvers_at_run import (  # noqa: F401  # the fixture and its helpers
    Prod,
    alice_confirms,
    audited,
    prod,
    the_request,
    thread_reply,
)
from tests.flags.conftest import (  # noqa: F401  # fixtures shared with the flag and deploy tests
    app_config,
    aws_settings,
    clock,
    flag_world,
    make_runtime,
    releases,
    world,
)

USERGROUPS = ("usergroups.users.list",)
# (HTTP status the emulator serves, the error its body names)
OUTAGES = [
    pytest.param(500, "fatal_error", id="internal"),
    pytest.param(429, "ratelimited", id="rate-limited"),
]


def slack_cannot_list_groups(prod: Prod, status: int) -> None:  # noqa: F811
    prod.slack.faults.fail_next(1000, status=status, calls=USERGROUPS)


def deploy_waiting_for_alice(prod: Prod) -> tuple[Runtime, int]:  # noqa: F811
    """Alice asks for a deploy, Bob approves it, and ten minutes pass."""
    first = prod.instance()
    accepted = submit(first, Request(app="api", env="prod", actor="U0ALICE", tag="1.0.2"))
    assert accepted.request_id is not None
    outcome = approval_flows.click(
        first, action_id=accepted.request_id, user_id="U0BOB", decision="approve"
    )
    assert not outcome.ran
    prod.clock.advance(minutes=10)
    return first, accepted.request_id


def nothing_deployed(prod: Prod, runtime: Runtime) -> None:  # noqa: F811
    assert prod.world.service_task_definition("prod") == prod.world.task_definitions["prod"]
    with runtime.sessions() as db:
        assert db.scalars(sa.select(Deployment)).all() == []
    assert audited(runtime, "deploy.start") == []


@pytest.mark.parametrize(("status", "error"), OUTAGES)
def test_the_last_click_while_slack_cannot_list_the_group_is_could_not_check(
    prod: Prod,  # noqa: F811
    status: int,
    error: str,
) -> None:
    first, request_id = deploy_waiting_for_alice(prod)
    slack_cannot_list_groups(prod, status)

    with pytest.raises(ClickRefused) as refused:
        alice_confirms(prod.instance(), request_id)  # a new instance reads the group at once

    assert str(refused.value) == (
        f"opsbot could not check <@U0BOB>'s right to approve (Slack answered `{error}`); "
        "nothing was changed: confirm again in a minute."
    )
    nothing_deployed(prod, first)
    action = the_request(first)  # still open, Bob's approval still in, Alice's click not counted
    assert (action.status, action.approvers, action.confirmed_by) == ("pending", ["U0BOB"], None)
    [record] = audited(first, "approval.run")
    assert (record.actor, record.outcome) == ("opsbot", "failed")
    assert "lapsed" not in record.detail
    assert record.detail["reason"] == "unverifiable"
    assert record.detail["unverifiable"] == [
        {"user": "U0BOB", "decision": "approve", "reason": f"Slack answered `{error}`"}
    ]
    assert (record.detail["clicked_by"], record.detail["left"]) == ("U0ALICE", "pending")
    assert audited(first, "approval.confirm") == []

    prod.slack.faults.clear()  # Slack answers again: the same click goes through
    outcome = alice_confirms(prod.instance(), request_id)

    assert outcome.ran and outcome.text.startswith("Deploy #1 of ") and "started" in outcome.text
    assert the_request(first).status == "done"
    with first.sessions() as db:
        [deployment] = db.scalars(sa.select(Deployment)).all()
        assert deployment.approved_by == ["U0BOB"]


@pytest.mark.parametrize(("status", "error"), OUTAGES)
def test_a_click_while_slack_cannot_list_the_group_is_could_not_check(
    prod: Prod,  # noqa: F811
    status: int,
    error: str,
) -> None:
    runtime = prod.instance()
    accepted = submit(runtime, Request(app="api", env="prod", actor="U0ALICE", tag="1.0.2"))
    assert accepted.request_id is not None
    slack_cannot_list_groups(prod, status)

    with pytest.raises(ClickRefused) as refused:
        approval_flows.click(
            runtime, action_id=accepted.request_id, user_id="U0BOB", decision="approve"
        )

    assert str(refused.value) == (
        f"opsbot could not check whether you may approve deploys to `api/prod` (Slack answered "
        f"`{error}`). Nothing was done: try again in a minute."
    )
    assert the_request(runtime).approvers == []
    [record] = audited(runtime, "approval.approve")
    assert (record.actor, record.outcome) == ("U0BOB", "failed")
    assert record.detail["unverifiable"] == f"Slack answered `{error}`"

    prod.slack.faults.clear()  # a failure is never cached: the next click asks Slack again
    outcome = approval_flows.click(
        runtime, action_id=accepted.request_id, user_id="U0BOB", decision="approve"
    )
    assert not outcome.ran and the_request(runtime).approvers == ["U0BOB"]
    nothing_deployed(prod, runtime)


def test_a_run_that_cannot_check_a_click_fails_without_calling_it_lapsed(
    prod: Prod,  # noqa: F811
) -> None:
    """The run checks again: a click counted meanwhile (two at once) may find Slack failing."""
    first, request_id = deploy_waiting_for_alice(prod)
    with first.sessions() as db:  # Alice's confirmation, recorded as a concurrent click is
        action = approvals.get_or_raise(db, action_id=request_id, lock=True)
        now = prod.clock.now()
        approvals.apply_click(db, action=action, user_id="U0ALICE", decision="confirm", now=now)
        approvals.claim(db, action=action, until=now + approval_flows.EXECUTION_LEASE)
        db.commit()
    slack_cannot_list_groups(prod, 500)

    result = approval_flows.execute(prod.instance(), action_id=request_id)

    assert result == (
        "Not run: opsbot could not check <@U0BOB>'s right to approve (Slack answered "
        "`fatal_error`). Nothing was changed: ask again in a minute."
    )
    nothing_deployed(prod, first)
    assert (the_request(first).status, the_request(first).result) == ("failed", result)
    [record] = audited(first, "approval.run")
    assert (record.actor, record.outcome, record.detail["reason"]) == (
        "opsbot",
        "failed",
        "unverifiable",
    )
    assert "lapsed" not in record.detail and record.detail["left"] == "failed"
    prod.slack.faults.clear()
    assert thread_reply(prod.slack, request_id) == (
        f":warning: <@U0ALICE>: request #{request_id} did not run: opsbot could not check "
        "<@U0BOB>'s right to approve (Slack answered `fatal_error`). Nothing was changed: "
        "ask again in a minute."
    )
