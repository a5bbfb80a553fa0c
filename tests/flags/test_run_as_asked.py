"""A flag change that waited for clicks runs only under the clicks it was asked under.

The configuration changes while a request waits: the bot restarts with it, or a
rolling deploy hands the click to an instance with the new one (here: a second
runtime on the same database, started with the changed configuration, takes the
click). A change of `api/prod`'s AppConfig flags asked when it needed only the
requester's confirmation must not run on that alone once `prod` requires a second
person's approval; one of `api/staging`'s SSM flags asked when it needed only an
approval must not run without the requester's confirmation once it is protected.
Both are refused when they come to run: nothing is written to AppConfig or SSM,
the audit says refused with the reason, and the request's message says why. A
change asked under more clicks than are needed now still runs.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from bot.approvals import flows as approval_flows
from bot.approvals.models import FAILED
from bot.config import parse_config
from bot.flags import flows
from bot.flags.requests import Change
from bot.runtime import Runtime
from sandbox.slack import SlackEmulator
from tests.deploys.test_approved_after_ecs_moved import deployments, pending, request_message
from tests.flags.conftest import FlagWorld, flag_config
from tests.flags.test_appconfig import audits
from tests.support import wait_for

MakeRuntime = Callable[..., Runtime]


def with_env(config: dict[str, Any], env: str, **settings: Any) -> dict[str, Any]:
    config["apps"]["api"]["environments"][env].update(settings)
    return config


def started(make_runtime: MakeRuntime, config: dict[str, Any]) -> Runtime:
    return make_runtime(parse_config(config))


def click(runtime: Runtime, request_id: int, user: str, decision: str) -> str:
    return approval_flows.click(runtime, action_id=request_id, user_id=user, decision=decision).text


def ask(runtime: Runtime, env: str, flag: str) -> int:
    answer = flows.submit(
        runtime, Change(app="api", env=env, actor="U0ALICE", verb="on", flag=flag)
    )
    assert "request #1 waits for" in answer, answer
    return 1


def refused(runtime: Runtime, releases: SlackEmulator, request_id: int, answer: str) -> None:
    """The request failed with `answer`, audited refused, and its message says so."""
    failed = pending(runtime, request_id)
    assert (failed.status, failed.result) == (FAILED, answer)
    [line] = audits(runtime, "flag.change")
    assert (line.actor, line.outcome, line.detail["reason"]) == ("U0ALICE", "refused", answer)
    wait_for(lambda: f":x: {answer}" in request_message(releases, request_id))


def test_an_appconfig_change_asked_before_prod_required_approval_does_not_run_on_the_confirmation(
    make_runtime: MakeRuntime, flag_world: FlagWorld, releases: SlackEmulator
) -> None:
    before = started(make_runtime, flag_config(flag_world))  # prod: protected, no second person
    request_id = ask(before, "prod", "apple_pay")
    asked = pending(before, request_id)
    assert (asked.needs_confirmation, asked.required_approvals) == (True, 0)
    after = started(make_runtime, with_env(flag_config(flag_world), "prod", require_approval=True))

    answer = click(after, request_id, "U0ALICE", "confirm")

    assert answer == (
        "`api/prod` now needs the approval of a second person, which it did not when the "
        "request was made (it changed while the request waited); nothing was written. Ask "
        "again to change the flag with what it needs now."
    )
    assert flag_world.versions() == [1]
    assert flag_world.deployments() == []
    refused(after, releases, request_id, answer)


def test_an_ssm_change_asked_before_staging_was_protected_does_not_run_without_a_confirmation(
    make_runtime: MakeRuntime, flag_world: FlagWorld, releases: SlackEmulator
) -> None:
    config = with_env(flag_config(flag_world), "staging", require_approval=True)
    before = started(make_runtime, config)
    request_id = ask(before, "staging", "APPLE_PAY")
    asked = pending(before, request_id)
    assert (asked.needs_confirmation, asked.required_approvals) == (False, 1)
    after = started(make_runtime, with_env(config, "staging", protected=True))

    answer = click(after, request_id, "U0BOB", "approve")

    assert answer == (
        "`api/staging` now needs the requester's confirmation, which it did not when the "
        "request was made (it changed while the request waited); nothing was written. Ask "
        "again to change the flag with what it needs now."
    )
    assert flag_world.ssm_value("APPLE_PAY") == "false"
    assert deployments(after) == []  # no restart either
    refused(after, releases, request_id, answer)


def test_a_change_asked_under_more_clicks_than_needed_now_runs_with_them(
    make_runtime: MakeRuntime, flag_world: FlagWorld
) -> None:
    before = started(make_runtime, with_env(flag_config(flag_world), "prod", require_approval=True))
    request_id = ask(before, "prod", "apple_pay")
    after = started(make_runtime, flag_config(flag_world))  # no second person needed now

    assert "approvals 0 of 1" in click(after, request_id, "U0ALICE", "confirm")
    answer = click(after, request_id, "U0BOB", "approve")

    assert "version 2 written, AppConfig deployment 1 started" in answer, answer
    assert flag_world.versions() == [1, 2]
    assert [line.outcome for line in audits(after, "flag.change")] == ["ok"]


def test_an_approver_is_told_the_requester_lost_the_right_not_that_they_may_not(
    make_runtime: MakeRuntime, flag_world: FlagWorld, releases: SlackEmulator
) -> None:
    config = with_env(flag_config(flag_world), "prod", require_approval=True)
    before = started(make_runtime, config)
    request_id = ask(before, "prod", "apple_pay")
    click(before, request_id, "U0ALICE", "confirm")
    # Alice leaves prod's deployers while her change waits for Bob.
    after = started(make_runtime, with_env(config, "prod", deployers={"users": ["U0BOB"]}))

    answer = click(after, request_id, "U0BOB", "approve")

    assert answer == (
        "<@U0ALICE>, who asked, may no longer change feature flags of `api/prod`. "
        "Allowed: <@U0BOB>. Nothing was changed."
    )
    assert flag_world.versions() == [1]
    refused(after, releases, request_id, answer)
