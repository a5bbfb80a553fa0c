"""A provision request whose approver has lost the right invokes nothing.

Alice asks for `shop/vault` (protected; a second person must approve). Bob
approves; then he leaves the environment's deployers (the configuration changes
and the bot restarts with it). Alice's confirmation, ten minutes later, must not
count Bob's approval: the role manager is not invoked, the request fails with
the reason, the audit records it (`approval.run`, refused) and the request's
thread tells Alice.
"""

from __future__ import annotations

from collections.abc import Callable

import sqlalchemy as sa

from bot.approvals.models import PendingAction
from bot.audit.models import AuditRecord
from bot.clock import ManualClock
from bot.config import parse_config
from sandbox.slack import SlackEmulator
from tests.dbroles.conftest import RELEASES, LambdaWorld, dbrole_config
from tests.dbroles.test_dbroles import ask, audits, click
from tests.deploys.conftest import T0
from tests.support import LiveService, wait_for


def test_an_approver_who_lost_the_right_gets_nothing_run_when_the_requester_confirms(
    live: LiveService,
    slack: SlackEmulator,
    lambdas: LambdaWorld,
    make_service: Callable[..., LiveService],
) -> None:
    assert "waits for your confirmation and the approval" in ask(
        live, slack, "provision shop vault"
    )
    assert "approvals 1 of 1" in click(live, slack, "approval_approve", 1, "U0BOB")
    live.stop()

    changed = dbrole_config(lambdas.database.dbname)
    changed["apps"]["shop"]["environments"]["vault"]["deployers"] = {"users": ["U0ALICE"]}
    clock = ManualClock(T0)
    clock.advance(minutes=10)
    restarted = make_service(
        live.runtime.settings, parse_config(changed), clock=clock, run_jobs=False
    )
    said = click(restarted, slack, "approval_confirm", 1, "U0ALICE")

    refusal = "You may not approve database roles of `shop/vault`. Allowed: <@U0ALICE>."
    reason = (
        f"Refused when it came to run: <@U0BOB> approved it but may not any more: {refusal} "
        "Nothing was changed: ask again."
    )
    assert said == reason
    assert lambdas.vault.events == [] and lambdas.database.roles() == []
    with restarted.runtime.sessions() as db:
        [action] = db.scalars(sa.select(PendingAction)).all()
        assert (action.status, action.result) == ("failed", reason)
        [record] = db.scalars(
            sa.select(AuditRecord).where(AuditRecord.action == "approval.run")
        ).all()
        assert (record.actor, record.target, record.outcome) == (
            "opsbot",
            "dbrole:shop/vault",
            "refused",
        )
        assert record.detail["lapsed"] == [
            {"user": "U0BOB", "decision": "approve", "reason": refusal}
        ]
    assert [a for a in audits(restarted) if a[1] == "dbrole.provision"] == []
    parent = wait_for(
        lambda: next((m for m in slack.channel_messages(RELEASES) if "Request #1" in m.text), None)
    )
    [reply] = wait_for(lambda: slack.thread(RELEASES, parent.ts))
    assert reply.text == (
        ":no_entry: <@U0ALICE>: request #1 did not run. <@U0BOB>'s approval no longer counts: "
        "they may not approve it any more. Nothing was changed: ask again."
    )
