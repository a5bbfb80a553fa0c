"""A requester's right to change flags that Slack cannot confirm is "could not check", never
"refused".

`api/prod`'s deployers are Alice (by id) and the group S0DEPLOYERS, which Bob
is in; Slack rate-limits usergroups.users.list. Nobody was found without the
right: the change is audited and counted `failed` (with what Slack said, and
the request's id when it waited for clicks), logged with the request, and
whoever clicked last is told it is the *requester's* right that could not be
checked. The same holds for the "change anyway?" question asked while an
incident is open.
"""

from __future__ import annotations

import logging
from typing import Any

import pytest

from bot.approvals import flows as approval_flows
from bot.approvals.errors import ClicksUnverifiable
from bot.apps.errors import RightUnverifiable
from bot.changes import guard
from bot.deploys.plans import Request
from bot.flags import flows
from bot.flags.confirm import FLAG_KIND
from bot.flags.requests import Change
from bot.incidents import service as incidents
from bot.runtime import Runtime
from sandbox.slack import SlackEmulator
from tests.approvals.test_approvers_at_run import (  # noqa: F401  # the fixture and its helpers
    Prod,
    audited,
    prod,
    the_request,
)
from tests.flags.conftest import FlagWorld
from tests.flags.test_outcomes import count

USERGROUPS = ("usergroups.users.list",)
SAID = (
    "opsbot could not check whether you may change feature flags of `api/prod` (Slack "
    "answered `ratelimited`). Nothing was done: try again in a minute."
)
SLACK = "Slack answered `ratelimited`"


def bobs_change() -> Change:
    return Change(app="api", env="prod", actor="U0BOB", verb="on", flag="apple_pay")


def warnings(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [
        r for r in caplog.records if r.name == "bot.flags.flows" and r.levelno == logging.WARNING
    ]


def test_a_change_slack_cannot_check_is_failed_not_refused(
    runtime: Runtime,
    flag_world: FlagWorld,
    releases: SlackEmulator,
    caplog: pytest.LogCaptureFixture,
) -> None:
    releases.faults.fail_next(1000, status=429, calls=USERGROUPS)

    with pytest.raises(RightUnverifiable) as raised:
        flows.submit(runtime, bobs_change())

    assert str(raised.value) == SAID
    [line] = audited(runtime, "flag.change")
    detail: dict[str, Any] = dict(line.detail)
    assert (line.actor, line.outcome) == ("U0BOB", "failed")
    assert detail == {
        "flag": "apple_pay",
        "asked": "apple_pay on",
        "reason": SAID,
        "unverifiable": SLACK,
    }
    assert (count(runtime.metrics, "failed"), count(runtime.metrics, "refused")) == (1, 0)
    [logged] = warnings(caplog)
    assert logged.getMessage() == (
        "flag change 'apple_pay on' of api/prod by U0BOB (request -) failed: opsbot could not "
        f"check the requester's right: {SLACK}"
    )
    assert flag_world.versions() == [1]


def test_a_run_that_cannot_check_the_requesters_right_names_them_and_the_request(
    prod: Prod,  # noqa: F811
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The kind checks the requester's right again as it runs: Slack may fail just then."""
    first = prod.instance()
    assert "waits for" in flows.submit(first, bobs_change())
    action = the_request(first)
    outcome = approval_flows.click(first, action_id=action.id, user_id="U0BOB", decision="confirm")
    assert not outcome.ran
    prod.slack.faults.fail_next(1000, status=429, calls=USERGROUPS)
    second = prod.instance()  # a new instance reads the group at once

    with pytest.raises(ClicksUnverifiable) as raised:
        FLAG_KIND.execute(second, the_request(first))

    assert str(raised.value) == (
        f"opsbot could not check the right of <@U0BOB>, who asked for it ({SLACK})"
    )
    assert raised.value.unverifiable == [{"user": "U0BOB", "decision": "request", "reason": SLACK}]
    assert prod.flags.versions() == [1] and prod.flags.deployments() == []
    [line] = audited(first, "flag.change")
    assert (line.actor, line.outcome) == ("U0BOB", "failed")
    assert (line.detail["unverifiable"], line.detail["request"]) == (SLACK, action.id)
    assert count(second.metrics, "failed") == 1 and count(second.metrics, "refused") == 0
    [logged] = warnings(caplog)
    assert f"by U0BOB (request {action.id}) failed" in logged.getMessage()
    assert logged.__dict__["request"] == action.id


def test_a_change_anyway_question_slack_cannot_check_is_failed_not_refused(
    runtime: Runtime, flag_world: FlagWorld, releases: SlackEmulator
) -> None:
    with runtime.sessions() as db:
        incidents.create(
            db,
            now=runtime.clock.now(),
            source="manual",
            title="checkout is down",
            snapshot={"app": "api", "env": "prod"},
            route_name="default",
            channel="C0PRODALERTS",
            severity="critical",
        )
        db.commit()
    releases.faults.fail_next(1000, status=429, calls=USERGROUPS)

    with pytest.raises(RightUnverifiable):
        guard.flag(runtime, bobs_change())
    with pytest.raises(RightUnverifiable):
        guard.deploy(runtime, Request(app="api", env="prod", actor="U0BOB", tag="1.0.2"))

    for action in ("flag.change", "deploy.request"):
        [line] = audited(runtime, action)
        assert (line.actor, line.outcome, line.detail["unverifiable"]) == ("U0BOB", "failed", SLACK)
        assert line.detail["reason"].startswith("opsbot could not check whether you may ")
