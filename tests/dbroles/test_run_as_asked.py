"""A provision request runs only as it was asked: the role manager its message showed,
and no click the environment demands now that it did not demand then.

The configuration changes while a request waits (the bot restarts with it, or a
rolling deploy hands the click to an instance with the new one). An approver who
approved `shop-vault-role-manager` must not run another function; a request made
when `shop/prod` needed only the requester's confirmation must not run on that
alone once `prod` requires a second person's approval. Both are refused when they
come to run: nothing is invoked, the audit says refused with the request, and the
request's thread says why. A request stored before requests carried what they were
asked under runs as configured, as it always did.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import sqlalchemy as sa

from bot.approvals.models import PendingAction
from bot.clock import ManualClock
from bot.config import parse_config
from sandbox.slack import SlackEmulator
from tests.dbroles.conftest import RELEASES, LambdaWorld, dbrole_config
from tests.dbroles.test_dbroles import ask, audits, click
from tests.deploys.conftest import T0
from tests.support import LiveService, wait_for


def restarted_with(
    live: LiveService, make_service: Callable[..., LiveService], config: dict[str, Any]
) -> LiveService:
    live.stop()
    return make_service(
        live.runtime.settings, parse_config(config), clock=ManualClock(T0), run_jobs=False
    )


def the_request(live: LiveService) -> PendingAction:
    with live.runtime.sessions() as db:
        [action] = db.scalars(sa.select(PendingAction)).all()
        return action


def thread_replies(slack: SlackEmulator) -> list[str]:
    parent = wait_for(
        lambda: next((m for m in slack.channel_messages(RELEASES) if "Request #1" in m.text), None)
    )
    return [m.text for m in wait_for(lambda: slack.thread(RELEASES, parent.ts))]


def test_an_approval_never_runs_another_role_manager_than_the_request_showed(
    live: LiveService,
    slack: SlackEmulator,
    lambdas: LambdaWorld,
    make_service: Callable[..., LiveService],
) -> None:
    suffix = lambdas.database.dbname
    shown, configured = f"shop-vault-role-manager-{suffix}", f"shop-prod-role-manager-{suffix}"
    ask(live, slack, "provision shop vault")
    click(live, slack, "approval_confirm", 1, "U0ALICE")
    assert the_request(live).payload["function"] == shown
    changed = dbrole_config(suffix)
    changed["apps"]["shop"]["environments"]["vault"]["dbrole"] = {"function": configured}
    restarted = restarted_with(live, make_service, changed)

    said = click(restarted, slack, "approval_approve", 1, "U0BOB")

    refusal = (
        f"`shop/vault`'s role manager is now `{configured}`, not `{shown}` as the request "
        "showed (it changed while the request waited); nothing was changed. Ask again to "
        "provision with the one configured now."
    )
    assert said == refusal
    assert lambdas.vault.events == [] and lambdas.prod.events == []
    assert lambdas.database.roles() == []
    action = the_request(restarted)
    assert (action.status, action.result) == ("failed", refusal)
    [(actor, _, target, outcome, detail)] = audits(restarted)
    assert (actor, target, outcome) == ("U0ALICE", "dbrole:shop/vault", "refused")
    assert detail == {
        "reason": refusal,
        "approved_by": ["U0BOB"],
        "shown_function": shown,
        "request": 1,
    }
    assert thread_replies(slack) == [f":no_entry: <@U0ALICE>: request #1 did not run: {refusal}"]


def test_a_request_made_before_the_environment_required_approval_does_not_run_without_it(
    live: LiveService,
    slack: SlackEmulator,
    lambdas: LambdaWorld,
    make_service: Callable[..., LiveService],
) -> None:
    assert "waits for your confirmation in" in ask(live, slack, "provision shop prod")
    changed = dbrole_config(lambdas.database.dbname)
    changed["apps"]["shop"]["environments"]["prod"]["require_approval"] = True
    restarted = restarted_with(live, make_service, changed)

    said = click(restarted, slack, "approval_confirm", 1, "U0ALICE")

    refusal = (
        "`shop/prod` now needs the approval of a second person, which it did not when the "
        "request was made (it changed while the request waited); nothing was changed. Ask "
        "again to provision with what it needs now."
    )
    assert said == refusal
    assert lambdas.prod.events == [] and lambdas.database.roles() == []
    assert (the_request(restarted).status, the_request(restarted).result) == ("failed", refusal)
    [(_, _, _, outcome, detail)] = audits(restarted)
    assert outcome == "refused"
    assert detail["request"] == 1
    assert detail["asked_under"] == {"protected": True, "require_approval": False}
    assert thread_replies(slack) == [f":no_entry: <@U0ALICE>: request #1 did not run: {refusal}"]


def test_a_request_asked_under_more_than_is_needed_now_runs(
    live: LiveService,
    slack: SlackEmulator,
    lambdas: LambdaWorld,
    make_service: Callable[..., LiveService],
) -> None:
    ask(live, slack, "provision shop vault")
    changed = dbrole_config(lambdas.database.dbname)
    changed["apps"]["shop"]["environments"]["vault"]["require_approval"] = False
    restarted = restarted_with(live, make_service, changed)

    said = click(restarted, slack, "approval_confirm", 1, "U0ALICE")

    assert "approvals 0 of 1" in said  # the clicks it was asked under, still
    assert click(restarted, slack, "approval_approve", 1, "U0BOB").startswith(
        "*Database roles of `shop/vault`* (provision): "
    )
    assert lambdas.vault.events == [{"action": "manage"}]


def test_a_request_stored_before_requests_carried_their_function_runs_as_configured(
    live: LiveService, slack: SlackEmulator, lambdas: LambdaWorld
) -> None:
    ask(live, slack, "provision shop prod")
    with live.runtime.sessions() as db:
        [action] = db.scalars(sa.select(PendingAction)).all()
        action.payload = {"app": "shop", "env": "prod", "actor": "U0ALICE"}
        db.commit()

    done = click(live, slack, "approval_confirm", 1, "U0ALICE")

    assert done.startswith("*Database roles of `shop/prod`* (provision): ")
    assert lambdas.prod.events == [{"action": "manage"}]
    assert [a[3] for a in audits(live)] == ["started", "ok"]
