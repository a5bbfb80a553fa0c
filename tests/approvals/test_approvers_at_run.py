"""A deploy or a flag change approved by someone who has since lost the right does not run.

`api/prod` (tests/flags/conftest.py, after tests/deploys/conftest.py) is protected;
here a second person must approve, and its deployers are Alice and the group
S0DEPLOYERS, which Bob is in. Bob approves; he then leaves the group in Slack;
Alice confirms ten minutes later on another instance of the bot (an instance
reads a group's members again after a minute: a new one reads them at once).
Her confirmation must not run the change on Bob's lapsed approval: nothing is
deployed or written, the request fails with the reason, the audit records it
and the request's thread tells her. The approvals check every kind's clicks in
one place; deploys and flags are the kinds that run on AWS (moto, and the
sandbox's AppConfig gaps).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import pytest
import sqlalchemy as sa

from bot.approvals import flows as approval_flows
from bot.approvals.models import PendingAction
from bot.audit.models import AuditRecord
from bot.clock import ManualClock
from bot.config import Config, parse_config
from bot.deploys.models import Deployment
from bot.deploys.plans import Request
from bot.deploys.requests import submit
from bot.flags import flows as flag_flows
from bot.flags.requests import Change
from bot.runtime import Runtime
from sandbox.slack import SlackEmulator
from tests.deploys.conftest import DEPLOYERS_GROUP
from tests.deploys.world import World
from tests.flags.conftest import (  # noqa: F401  # fixtures shared with the flag and deploy tests
    RELEASES,
    FlagWorld,
    app_config,
    aws_settings,
    clock,
    flag_config,
    flag_world,
    make_runtime,
    releases,
    world,
)
from tests.support import wait_for

ALLOWED = "Allowed: <@U0ALICE>, <!subteam^S0DEPLOYERS>."


@dataclass
class Prod:
    """`api/prod` with the two-person rule, on AWS and Slack; `instance()` starts a bot."""

    config: Config
    make_runtime: Callable[..., Runtime]
    world: World
    flags: FlagWorld
    slack: SlackEmulator
    clock: ManualClock

    def instance(self) -> Runtime:
        return self.make_runtime(self.config)


@pytest.fixture
def prod(
    make_runtime: Callable[..., Runtime],  # noqa: F811
    world: World,  # noqa: F811
    flag_world: FlagWorld,  # noqa: F811
    releases: SlackEmulator,  # noqa: F811
    clock: ManualClock,  # noqa: F811
) -> Prod:
    config = flag_config(flag_world)
    config["apps"]["api"]["environments"]["prod"]["require_approval"] = True
    return Prod(parse_config(config), make_runtime, world, flag_world, releases, clock)


def the_request(runtime: Runtime) -> PendingAction:
    with runtime.sessions() as db:
        [action] = db.scalars(sa.select(PendingAction)).all()
        return action


def audited(runtime: Runtime, action: str) -> list[AuditRecord]:
    with runtime.sessions() as db:
        return list(
            db.scalars(
                sa.select(AuditRecord).where(AuditRecord.action == action).order_by(AuditRecord.id)
            )
        )


def bob_approves_then_leaves_the_group(prod: Prod, runtime: Runtime) -> int:
    request_id = the_request(runtime).id
    outcome = approval_flows.click(
        runtime, action_id=request_id, user_id="U0BOB", decision="approve"
    )
    assert not outcome.ran
    prod.slack.add_usergroup(DEPLOYERS_GROUP, "deployers", [])  # Bob is no deployer any more
    prod.clock.advance(minutes=10)
    return request_id


def alice_confirms(runtime: Runtime, request_id: int) -> approval_flows.ClickOutcome:
    return approval_flows.click(
        runtime, action_id=request_id, user_id="U0ALICE", decision="confirm"
    )


def thread_reply(slack: SlackEmulator, request_id: int) -> str:
    parent = wait_for(
        lambda: next(
            (m for m in slack.channel_messages(RELEASES) if f"Request #{request_id}" in m.text),
            None,
        )
    )
    [reply] = wait_for(lambda: slack.thread(RELEASES, parent.ts))
    return str(reply.text)


def reason_for(refusal: str) -> str:
    """What the request's result says, given what Bob would be told if he clicked now."""
    return (
        f"Refused when it came to run: <@U0BOB> approved it but may not any more: {refusal} "
        "Nothing was changed: ask again."
    )


def refused_as_said(
    runtime: Runtime, slack: SlackEmulator, request_id: int, *, refusal: str, kind: str
) -> None:
    action = the_request(runtime)
    assert (action.status, action.result, action.approvers) == (
        "failed",
        reason_for(refusal),
        ["U0BOB"],
    )
    [record] = audited(runtime, "approval.run")
    assert (record.actor, record.outcome, record.detail["kind"]) == ("opsbot", "refused", kind)
    assert record.detail["lapsed"] == [{"user": "U0BOB", "decision": "approve", "reason": refusal}]
    assert thread_reply(slack, request_id) == (
        f":no_entry: <@U0ALICE>: request #{request_id} did not run. <@U0BOB>'s approval no "
        "longer counts: they may not approve it any more. Nothing was changed: ask again."
    )


def test_a_deploy_whose_approver_left_the_deployers_starts_nothing(prod: Prod) -> None:
    first = prod.instance()
    accepted = submit(first, Request(app="api", env="prod", actor="U0ALICE", tag="1.0.2"))
    assert accepted.request_id is not None
    request_id = bob_approves_then_leaves_the_group(prod, first)

    outcome = alice_confirms(prod.instance(), request_id)

    refusal = f"You may not approve deploys to `api/prod`. {ALLOWED}"
    assert (outcome.ran, outcome.text) == (True, reason_for(refusal))
    assert prod.world.service_task_definition("prod") == prod.world.task_definitions["prod"]
    with first.sessions() as db:
        assert db.scalars(sa.select(Deployment)).all() == []
    assert audited(first, "deploy.start") == []
    refused_as_said(first, prod.slack, request_id, refusal=refusal, kind="deploy")


def test_a_flag_change_whose_approver_left_the_deployers_writes_nothing(prod: Prod) -> None:
    first = prod.instance()
    change = Change(app="api", env="prod", actor="U0ALICE", verb="on", flag="apple_pay")
    assert "waits for" in flag_flows.submit(first, change)
    request_id = bob_approves_then_leaves_the_group(prod, first)

    outcome = alice_confirms(prod.instance(), request_id)

    refusal = f"You may not approve flag changes of `api/prod`. {ALLOWED}"
    assert (outcome.ran, outcome.text) == (True, reason_for(refusal))
    assert prod.flags.versions() == [1] and prod.flags.deployments() == []
    assert audited(first, "flag.change") == []
    refused_as_said(first, prod.slack, request_id, refusal=refusal, kind="flag")


def test_an_approver_still_in_the_group_counts_and_the_deploy_starts(prod: Prod) -> None:
    first = prod.instance()
    accepted = submit(first, Request(app="api", env="prod", actor="U0ALICE", tag="1.0.2"))
    assert accepted.request_id is not None
    approval_flows.click(first, action_id=accepted.request_id, user_id="U0BOB", decision="approve")
    prod.clock.advance(minutes=10)

    outcome = alice_confirms(prod.instance(), accepted.request_id)

    assert outcome.text.startswith("Deploy #1 of ") and "started" in outcome.text
    assert audited(first, "approval.run") == []
    assert [r.outcome for r in audited(first, "deploy.start")] == ["ok"]
    with first.sessions() as db:
        [deployment] = db.scalars(sa.select(Deployment)).all()
        assert deployment.approved_by == ["U0BOB"]
