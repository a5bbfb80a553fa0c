"""A deploy or rollback that waited for clicks runs only under the clicks it was asked under.

The configuration changes while a request waits: the bot restarts with it, or a
rolling deploy hands the click to an instance with the new one (here: a second
runtime on the same database, started with the changed configuration, takes the
click). A request made when `prod` needed only the requester's confirmation must
not run on that alone once `prod` requires a second person's approval; one made
when `staging` needed only an approval must not run without the requester's
confirmation once it is protected. Both are refused when they come to run: ECS
is not touched, the audit says refused with the reason, and the request's message
says why. A request asked under more clicks than are needed now still runs.

And when a right of the requester is gone by the time someone else's click runs
the request, the refusal names the requester ("<@U0ALICE>, who asked, may no
longer ..."), not "You may not" to whoever clicked.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import sqlalchemy as sa

from bot.approvals import flows as approval_flows
from bot.approvals.models import FAILED, PendingAction
from bot.apps.errors import NotAllowed
from bot.clock import ManualClock
from bot.config import parse_config
from bot.deploys.plans import Request
from bot.deploys.requests import submit
from bot.runtime import Runtime
from sandbox.slack import SlackEmulator
from tests.deploys.conftest import deploy_config
from tests.deploys.test_approved_after_ecs_moved import (
    audited,
    deployments,
    pending,
    request_message,
)
from tests.deploys.test_watch import tick
from tests.deploys.world import World
from tests.support import wait_for

MakeRuntime = Callable[..., Runtime]


def configured(**prod: Any) -> dict[str, Any]:
    """deploy_config with `prod`'s settings changed by `prod`."""
    config = deploy_config()
    config["apps"]["api"]["environments"]["prod"].update(prod)
    return config


def started(make_runtime: MakeRuntime, config: dict[str, Any]) -> Runtime:
    return make_runtime(parse_config(config))


def click(runtime: Runtime, request_id: int | None, user: str, decision: str) -> str:
    assert request_id is not None
    return approval_flows.click(runtime, action_id=request_id, user_id=user, decision=decision).text


def release(runtime: Runtime, world: World, clock: ManualClock, env: str, tag: str) -> None:
    """Deploy `tag` to `env` with the clicks it waits for, rolled out."""
    accepted = submit(runtime, Request(app="api", env=env, actor="U0ALICE", tag=tag))
    if accepted.request_id is not None:
        asked = pending(runtime, accepted.request_id)
        if asked.needs_confirmation:
            click(runtime, asked.id, "U0ALICE", "confirm")
        if asked.required_approvals:
            click(runtime, asked.id, "U0BOB", "approve")
    world.rollouts.complete(env)
    tick(runtime, clock)


def refused(
    runtime: Runtime,
    releases: SlackEmulator,
    request_id: int | None,
    *,
    answer: str,
    kind: str,
) -> None:
    """The request failed with `answer`, audited refused, and its message says so."""
    failed = pending(runtime, request_id)
    assert (failed.status, failed.result) == (FAILED, answer)
    assert audited(runtime, f"{kind}.request") == [("refused", answer)]
    wait_for(lambda: f":x: {answer}" in request_message(releases, request_id))


def test_a_deploy_asked_before_prod_required_approval_does_not_run_on_the_confirmation_alone(
    make_runtime: MakeRuntime, world: World, releases: SlackEmulator
) -> None:
    before = started(make_runtime, configured(require_approval=False))
    accepted = submit(before, Request(app="api", env="prod", actor="U0ALICE", tag="1.0.2"))
    asked = pending(before, accepted.request_id)
    assert (asked.needs_confirmation, asked.required_approvals) == (True, 0)
    after = started(make_runtime, configured(require_approval=True))

    answer = click(after, accepted.request_id, "U0ALICE", "confirm")

    assert answer == (
        "`api/prod` now needs the approval of a second person, which it did not when the "
        "request was made (it changed while the request waited); nothing was changed. Ask "
        "again to deploy with what it needs now."
    )
    assert world.service_task_definition("prod") == world.task_definitions["prod"]
    assert deployments(after) == []
    refused(after, releases, accepted.request_id, answer=answer, kind="deploy")


def test_a_rollback_asked_before_staging_was_protected_does_not_run_without_a_confirmation(
    make_runtime: MakeRuntime, world: World, clock: ManualClock, releases: SlackEmulator
) -> None:
    config = deploy_config()
    config["apps"]["api"]["environments"]["staging"]["require_approval"] = True
    before = started(make_runtime, config)
    release(before, world, clock, "staging", "1.0.1")
    release(before, world, clock, "staging", "1.0.2")
    running = world.service_task_definition("staging")
    accepted = submit(before, Request(app="api", env="staging", actor="U0ALICE", kind="rollback"))
    asked = pending(before, accepted.request_id)
    assert (asked.needs_confirmation, asked.required_approvals) == (False, 1)
    config["apps"]["api"]["environments"]["staging"]["protected"] = True
    after = started(make_runtime, config)

    answer = click(after, accepted.request_id, "U0BOB", "approve")

    assert answer == (
        "`api/staging` now needs the requester's confirmation, which it did not when the "
        "request was made (it changed while the request waited); nothing was changed. Ask "
        "again to roll back with what it needs now."
    )
    assert world.service_task_definition("staging") == running
    assert [kind for kind, _, _ in deployments(after)] == ["deploy", "deploy"]
    refused(after, releases, accepted.request_id, answer=answer, kind="rollback")


def test_a_cli_deploy_asked_before_prod_required_approval_does_not_run_on_the_confirmation(
    make_runtime: MakeRuntime, world: World, releases: SlackEmulator
) -> None:
    before = started(make_runtime, configured(require_approval=False))
    accepted = submit(
        before,
        Request(app="api", env="prod", actor="U0ALICE", tag="1.0.2", cli_identity="github:alice"),
    )
    assert "waits for your confirmation in Slack" in accepted.text
    # From the CLI, prod with a second person needs only their approval: the
    # confirmation given is not the approval it needs now.
    after = started(make_runtime, configured(require_approval=True))

    answer = click(after, accepted.request_id, "U0ALICE", "confirm")

    assert answer.startswith("`api/prod` now needs the approval of a second person, which it did")
    assert world.service_task_definition("prod") == world.task_definitions["prod"]
    assert deployments(after) == []
    refused(after, releases, accepted.request_id, answer=answer, kind="deploy")


def test_a_cli_deploy_approved_by_a_second_person_runs_once_prod_needs_no_approval(
    make_runtime: MakeRuntime, world: World
) -> None:
    before = started(make_runtime, configured())  # protected, and a second person
    accepted = submit(
        before,
        Request(app="api", env="prod", actor="U0ALICE", tag="1.0.2", cli_identity="github:alice"),
    )
    asked = pending(before, accepted.request_id)
    assert (asked.needs_confirmation, asked.required_approvals) == (False, 1)
    # Without a second person, prod would want the CLI requester's own click: the
    # approval it was asked under stands for it.
    after = started(make_runtime, configured(require_approval=False))

    answer = click(after, accepted.request_id, "U0BOB", "approve")

    assert answer.startswith("Deploy #1 of `api` `1.0.2` to `api/prod` started"), answer
    assert world.service_task_definition("prod") != world.task_definitions["prod"]


def test_a_request_asked_under_more_clicks_than_needed_now_runs_with_them(
    make_runtime: MakeRuntime, world: World
) -> None:
    before = started(make_runtime, configured())  # protected, and a second person
    accepted = submit(before, Request(app="api", env="prod", actor="U0ALICE", tag="1.0.2"))
    after = started(make_runtime, configured(require_approval=False))

    assert "started" not in click(after, accepted.request_id, "U0ALICE", "confirm")
    answer = click(after, accepted.request_id, "U0BOB", "approve")

    assert answer.startswith("Deploy #1 of `api` `1.0.2` to `api/prod` started"), answer
    assert world.service_task_definition("prod") != world.task_definitions["prod"]
    assert audited(after, "deploy.request") == []


def test_an_approval_does_not_run_a_deploy_its_requester_may_no_longer_make(
    make_runtime: MakeRuntime, world: World
) -> None:
    before = started(make_runtime, configured())
    accepted = submit(before, Request(app="api", env="prod", actor="U0ALICE", tag="1.0.2"))
    click(before, accepted.request_id, "U0ALICE", "confirm")
    after = started(make_runtime, configured(deployers={"groups": ["S0DEPLOYERS"]}))

    answer = click(after, accepted.request_id, "U0BOB", "approve")

    assert answer == (
        "<@U0ALICE>, who asked, may no longer deploy to `api/prod`. Allowed: "
        "<!subteam^S0DEPLOYERS>. Nothing was changed."
    )
    assert world.service_task_definition("prod") == world.task_definitions["prod"]
    assert audited(after, "deploy.request") == [("refused", answer)]


def test_an_approval_does_not_run_a_force_its_requester_may_no_longer_make(
    make_runtime: MakeRuntime, world: World
) -> None:
    config = configured()
    config["deploys"]["force_allowed"] = {"users": ["U0ALICE"]}
    before = started(make_runtime, config)
    forced = Request(app="api", env="prod", actor="U0ALICE", tag="1.0.3", force_reason="INC-9")
    accepted = submit(before, forced)  # 1.0.3 has CRITICAL findings: forced, and shown so
    assert pending(before, accepted.request_id).payload["forces_shown"] == ["scan"]
    click(before, accepted.request_id, "U0ALICE", "confirm")
    config["deploys"]["force_allowed"] = {"users": ["U0CAROL"]}
    after = started(make_runtime, config)

    answer = click(after, accepted.request_id, "U0BOB", "approve")

    assert answer == (
        "<@U0ALICE>, who asked, may no longer force deploys. Allowed: <@U0CAROL>. "
        "Nothing was changed."
    )
    assert world.service_task_definition("prod") == world.task_definitions["prod"]
    assert audited(after, "deploy.request") == [("refused", answer)]


def test_a_request_that_did_not_wait_is_still_told_you_may_not(
    make_runtime: MakeRuntime, world: World
) -> None:
    runtime = started(make_runtime, configured(deployers={"groups": ["S0DEPLOYERS"]}))

    with pytest.raises(NotAllowed, match=r"^You may not deploy to `api/prod`\. Allowed: "):
        submit(runtime, Request(app="api", env="prod", actor="U0ALICE", tag="1.0.2"))
    with runtime.sessions() as db:
        assert db.scalars(sa.select(PendingAction)).all() == []
