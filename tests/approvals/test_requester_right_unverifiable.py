"""The requester's right Slack cannot confirm at run time is "could not check", never "may not".

`api/prod` (tests/approvals/test_approvers_at_run.py) needs the requester's
confirmation and a second person's approval; its deployers are Alice (by id)
and the group S0DEPLOYERS, which Bob is in. Bob asks and confirms; ten minutes
later Slack rate-limits usergroups.users.list and Alice's approval is the last
click. Whether Bob may still have it run under his name cannot be checked: the
click is not counted, the request stays open, the audit says "unverifiable"
(not that Bob lacks the right), and Alice is told it is Bob's right that could
not be checked. Once Slack answers, the same click runs it.
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
from bot.flags import flows as flag_flows
from bot.flags.requests import Change
from bot.runtime import Runtime
from tests.approvals.test_approvers_at_run import (  # noqa: F401  # the fixture and its helpers
    Prod,
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
UNVERIFIABLE = [{"user": "U0BOB", "decision": "request", "reason": "Slack answered `ratelimited`"}]


def bob_asks_and_confirms(prod: Prod, kind: str) -> tuple[Runtime, int]:  # noqa: F811
    first = prod.instance()
    if kind == "deploy":
        accepted = submit(first, Request(app="api", env="prod", actor="U0BOB", tag="1.0.2"))
        assert accepted.request_id is not None
    else:
        change = Change(app="api", env="prod", actor="U0BOB", verb="on", flag="apple_pay")
        assert "waits for" in flag_flows.submit(first, change)
    request_id = the_request(first).id
    outcome = approval_flows.click(first, action_id=request_id, user_id="U0BOB", decision="confirm")
    assert not outcome.ran
    prod.clock.advance(minutes=10)
    return first, request_id


def nothing_done(prod: Prod, runtime: Runtime) -> None:  # noqa: F811
    assert prod.world.service_task_definition("prod") == prod.world.task_definitions["prod"]
    with runtime.sessions() as db:
        assert db.scalars(sa.select(Deployment)).all() == []
    assert prod.flags.versions() == [1] and prod.flags.deployments() == []
    # Neither kind was run: nothing audited it as refused for a right Bob was not found to lack.
    for action in ("deploy.request", "deploy.start", "flag.change"):
        assert audited(runtime, action) == [], action


@pytest.mark.parametrize("kind", ["deploy", "flag"])
def test_the_last_click_when_the_requesters_right_cannot_be_checked_is_not_counted(
    prod: Prod,  # noqa: F811
    kind: str,
) -> None:
    first, request_id = bob_asks_and_confirms(prod, kind)
    prod.slack.faults.fail_next(1000, status=429, calls=USERGROUPS)

    with pytest.raises(ClickRefused) as refused:
        approval_flows.click(
            prod.instance(), action_id=request_id, user_id="U0ALICE", decision="approve"
        )

    assert str(refused.value) == (
        "opsbot could not check the right of <@U0BOB>, who asked for it (Slack answered "
        "`ratelimited`); nothing was changed: approve again in a minute."
    )
    nothing_done(prod, first)
    action = the_request(first)  # still open: Bob's confirmation in, Alice's click not counted
    assert (action.status, action.confirmed_by, action.approvers) == ("pending", "U0BOB", [])
    [record] = audited(first, "approval.run")
    assert (record.actor, record.outcome, record.detail["reason"]) == (
        "opsbot",
        "failed",
        "unverifiable",
    )
    assert record.detail["unverifiable"] == UNVERIFIABLE
    assert (record.detail["clicked_by"], record.detail["left"]) == ("U0ALICE", "pending")

    prod.slack.faults.clear()  # Slack answers again: the same click goes through
    outcome = approval_flows.click(
        prod.instance(), action_id=request_id, user_id="U0ALICE", decision="approve"
    )

    assert outcome.ran and the_request(first).status == "done", outcome.text


def test_a_run_that_cannot_check_the_requesters_right_fails_as_could_not_check(
    prod: Prod,  # noqa: F811
) -> None:
    """The run checks again: the last click counted meanwhile (two at once) may find Slack failing."""
    first, request_id = bob_asks_and_confirms(prod, "deploy")
    with first.sessions() as db:  # Alice's approval, recorded as a concurrent click is
        action = approvals.get_or_raise(db, action_id=request_id, lock=True)
        now = prod.clock.now()
        approvals.apply_click(db, action=action, user_id="U0ALICE", decision="approve", now=now)
        approvals.claim(db, action=action, until=now + approval_flows.EXECUTION_LEASE)
        db.commit()
    prod.slack.faults.fail_next(1000, status=429, calls=USERGROUPS)

    result = approval_flows.execute(prod.instance(), action_id=request_id)

    assert result == (
        "Not run: opsbot could not check the right of <@U0BOB>, who asked for it (Slack "
        "answered `ratelimited`). Nothing was changed: ask again in a minute."
    )
    nothing_done(prod, first)
    assert (the_request(first).status, the_request(first).result) == ("failed", result)
    [record] = audited(first, "approval.run")
    assert (record.outcome, record.detail["reason"], record.detail["left"]) == (
        "failed",
        "unverifiable",
        "failed",
    )
    assert record.detail["unverifiable"] == UNVERIFIABLE
    prod.slack.faults.clear()
    assert thread_reply(prod.slack, request_id) == (
        f":warning: <@U0BOB>: request #{request_id} did not run: opsbot could not check the "
        "right of <@U0BOB>, who asked for it (Slack answered `ratelimited`). Nothing was "
        "changed: ask again in a minute."
    )
