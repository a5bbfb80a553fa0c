"""A provision request runs only while the person who asked still has the right.

Alice asks for `shop/vault` (a second person must approve) and confirms. Before
Bob approves, she leaves the environment's deployers (the configuration changes
and the bot restarts with it). Bob's approval must not invoke the role manager
under her name: it is refused, naming who lost which right (Bob, who clicked,
holds it), audited with the request, and said in the request's thread.
"""

from __future__ import annotations

from collections.abc import Callable

import sqlalchemy as sa

from bot.approvals.models import PendingAction
from bot.clock import ManualClock
from bot.config import parse_config
from sandbox.slack import SlackEmulator
from tests.dbroles.conftest import RELEASES, LambdaWorld, dbrole_config
from tests.dbroles.test_dbroles import ask, audits, click
from tests.deploys.conftest import T0
from tests.support import LiveService, wait_for


def test_a_requester_who_lost_the_right_gets_nothing_run_when_approved(
    live: LiveService,
    slack: SlackEmulator,
    lambdas: LambdaWorld,
    make_service: Callable[..., LiveService],
) -> None:
    assert "waits for your confirmation and the approval" in ask(
        live, slack, "provision shop vault"
    )
    assert "approvals 0 of 1" in click(live, slack, "approval_confirm", 1, "U0ALICE")
    live.stop()

    changed = dbrole_config(lambdas.database.dbname)
    changed["apps"]["shop"]["environments"]["vault"]["deployers"] = {"users": ["U0BOB"]}
    restarted = make_service(
        live.runtime.settings, parse_config(changed), clock=ManualClock(T0), run_jobs=False
    )
    said = click(restarted, slack, "approval_approve", 1, "U0BOB")

    refusal = (
        "<@U0ALICE>, who asked, may no longer provision database roles of `shop/vault`. "
        "Allowed: <@U0BOB>. Nothing was changed."
    )
    assert said == refusal
    assert lambdas.vault.events == [] and lambdas.database.roles() == []
    with restarted.runtime.sessions() as db:
        [action] = db.scalars(sa.select(PendingAction)).all()
        assert (action.status, action.result) == ("failed", refusal)
    [(actor, action_name, target, outcome, detail)] = [
        a for a in audits(restarted) if a[1] == "dbrole.provision"
    ]
    assert (actor, action_name, target, outcome) == (
        "U0ALICE",
        "dbrole.provision",
        "dbrole:shop/vault",
        "refused",
    )
    assert detail == {"reason": refusal, "approved_by": ["U0BOB"], "request": 1}
    parent = wait_for(
        lambda: next((m for m in slack.channel_messages(RELEASES) if "Request #1" in m.text), None)
    )
    [reply] = wait_for(lambda: slack.thread(RELEASES, parent.ts))
    assert reply.text == (
        ":no_entry: <@U0ALICE>: request #1 did not run: you may no longer provision database "
        "roles of `shop/vault`. Nothing was changed."
    )
