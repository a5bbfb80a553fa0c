"""A force whose right Slack cannot confirm is "could not check", never "refused".

`api/prod` (tests/deploys/conftest.py) is protected, needs a second person and
is frozen for Black Friday; here its deployers are Alice and Bob, by id, and
only the group S0FORCERS (Alice) may `--force`. Alice asks to deploy in the
freeze with a force reason and confirms; Slack then fails usergroups.users.list
and Bob's approval, the last click, runs it on an instance that reads the group
at once. Every click's right holds without Slack, so only the kind's own check
of Alice's force right meets the outage: the run fails as "could not check",
and neither the audit nor opsbot_deploys_total says a right was refused. The
same holds for a forced request refused at once.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime

import pytest
import sqlalchemy as sa

from bot.approvals import flows as approval_flows
from bot.approvals.models import PendingAction
from bot.apps.errors import RightUnverifiable
from bot.audit.models import AuditRecord
from bot.clock import ManualClock
from bot.config import Config, parse_config
from bot.deploys.flows import count_outcomes_after_commit
from bot.deploys.models import Deployment
from bot.deploys.plans import Request
from bot.deploys.requests import submit
from bot.runtime import Runtime
from sandbox.slack import SlackEmulator
from tests.deploys.conftest import deploy_config
from tests.deploys.world import World

FORCERS_GROUP = "S0FORCERS"
USERGROUPS = ("usergroups.users.list",)
IN_THE_FREEZE = datetime(2026, 11, 27, 9, 0, tzinfo=UTC)
SLACK = "Slack answered `ratelimited`"
SAID = (
    f"opsbot could not check whether you may force deploys ({SLACK}). "
    "Nothing was done: try again in a minute."
)


@pytest.fixture
def app_config() -> Config:
    config = deploy_config()
    config["deploys"]["force_allowed"] = {"groups": [FORCERS_GROUP]}
    config["apps"]["api"]["environments"]["prod"]["deployers"] = {"users": ["U0ALICE", "U0BOB"]}
    return parse_config(config)


@pytest.fixture
def releases(releases: SlackEmulator) -> SlackEmulator:
    releases.add_usergroup(FORCERS_GROUP, "forcers", ["U0ALICE"])
    return releases


def alices_forced_deploy() -> Request:
    return Request(app="api", env="prod", actor="U0ALICE", tag="1.0.2", force_reason="INC-9 fix")


def audited(runtime: Runtime, action: str) -> list[AuditRecord]:
    with runtime.sessions() as db:
        query = sa.select(AuditRecord).where(AuditRecord.action == action)
        return list(db.scalars(query.order_by(AuditRecord.id)))


def counted(runtime: Runtime, outcome: str) -> float | None:
    count_outcomes_after_commit(runtime.sessions, runtime.metrics)
    return runtime.metrics.registry.get_sample_value(
        "opsbot_deploys_total", {"kind": "deploy", "outcome": outcome}
    )


def warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [
        r.getMessage()
        for r in caplog.records
        if r.name == "bot.deploys.flows" and r.levelno == logging.WARNING
    ]


def nothing_deployed(runtime: Runtime, world: World) -> None:
    assert world.service_task_definition("prod") == world.task_definitions["prod"]
    with runtime.sessions() as db:
        assert db.scalars(sa.select(Deployment)).all() == []
    assert audited(runtime, "deploy.force") == []


def test_a_run_that_cannot_check_the_requesters_force_right_fails_as_could_not_check(
    make_runtime: Callable[..., Runtime],
    world: World,
    releases: SlackEmulator,
    clock: ManualClock,
    caplog: pytest.LogCaptureFixture,
) -> None:
    clock.set(IN_THE_FREEZE)
    first = make_runtime()
    accepted = submit(first, alices_forced_deploy())
    assert accepted.request_id is not None
    confirmed = approval_flows.click(
        first, action_id=accepted.request_id, user_id="U0ALICE", decision="confirm"
    )
    assert not confirmed.ran
    releases.faults.fail_next(1000, status=429, calls=USERGROUPS)
    second = make_runtime()  # a new instance reads the group at once

    outcome = approval_flows.click(
        second, action_id=accepted.request_id, user_id="U0BOB", decision="approve"
    )

    assert outcome.ran
    assert outcome.text == (
        f"Not run: opsbot could not check the right of <@U0ALICE>, who asked for it ({SLACK}). "
        "Nothing was changed: ask again in a minute."
    )
    nothing_deployed(first, world)
    with first.sessions() as db:
        action = db.get(PendingAction, accepted.request_id)
        assert action is not None and action.status == "failed"
    [run] = audited(first, "approval.run")
    assert (run.outcome, run.detail["reason"]) == ("failed", "unverifiable")
    assert run.detail["unverifiable"] == [
        {"user": "U0ALICE", "decision": "request", "reason": SLACK}
    ]
    [request] = audited(first, "deploy.request")
    assert (request.actor, request.outcome) == ("U0ALICE", "failed")
    assert (request.detail["reason"], request.detail["unverifiable"]) == (SAID, SLACK)
    assert request.detail["force_reason"] == "INC-9 fix"
    assert (counted(second, "failed"), counted(second, "refused")) == (1.0, 0.0)
    assert warnings(caplog) == [
        "deploy of 1.0.2 to api/prod by U0ALICE failed: opsbot could not check the "
        f"requester's right: {SLACK}"
    ]


def test_a_force_slack_cannot_check_at_once_is_failed_not_refused(
    runtime: Runtime, world: World, releases: SlackEmulator, clock: ManualClock
) -> None:
    clock.set(IN_THE_FREEZE)
    releases.faults.fail_next(1000, status=429, calls=USERGROUPS)

    with pytest.raises(RightUnverifiable) as raised:
        submit(runtime, alices_forced_deploy())

    assert str(raised.value) == SAID
    nothing_deployed(runtime, world)
    with runtime.sessions() as db:
        assert db.scalars(sa.select(PendingAction)).all() == []
    [request] = audited(runtime, "deploy.request")
    assert (request.actor, request.outcome, request.detail["unverifiable"]) == (
        "U0ALICE",
        "failed",
        SLACK,
    )
    assert (counted(runtime, "failed"), counted(runtime, "refused")) == (1.0, 0.0)
