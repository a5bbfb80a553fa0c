"""The requester's right Slack cannot confirm when a provision comes to run is "could not check".

`shop/vault` needs the requester's confirmation and a second person's approval;
its deployers are Alice (by id) and the group S0DEP, which Bob is in. Bob asks and
confirms; later Slack rate-limits usergroups.users.list, and Alice's approval is
the last click. Nothing may say Bob lacks the right: the role manager is not
invoked, the click is not counted, the request stays open, the audit says
"unverifiable" and Alice reads that it is Bob's right opsbot could not check. The
same click runs it once Slack answers.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import sqlalchemy as sa

from bot.approvals.errors import ClicksUnverifiable
from bot.approvals.models import PendingAction
from bot.audit.models import AuditRecord
from bot.clock import ManualClock
from bot.config import Config, parse_config
from bot.dbroles.confirm import DBROLE_KIND
from bot.settings import Settings
from sandbox.slack import SlackEmulator
from tests.dbroles.conftest import RELEASES, LambdaWorld, dbrole_config
from tests.dbroles.test_dbroles import ask, click
from tests.deploys.conftest import T0
from tests.support import LiveService

GROUP = "S0DEP"
USERGROUPS = ("usergroups.users.list",)
UNVERIFIABLE = [{"user": "U0BOB", "decision": "request", "reason": "Slack answered `ratelimited`"}]


@pytest.fixture
def vault(settings: Settings, slack: SlackEmulator, lambdas: LambdaWorld) -> Config:
    slack.add_channel(RELEASES, "releases")
    slack.add_usergroup(GROUP, "dep", ["U0BOB"])
    config = dbrole_config(lambdas.database.dbname)
    config["apps"]["shop"]["environments"]["vault"]["deployers"] = {
        "users": ["U0ALICE"],
        "groups": [GROUP],
    }
    return parse_config(config)


def instance(
    make_service: Callable[..., LiveService],
    settings: Settings,
    lambdas: LambdaWorld,
    config: Config,
) -> LiveService:
    """A bot that has read no group yet (a new instance reads one at once)."""
    aws_settings = settings.model_copy(update={"aws_endpoint_url": lambdas.endpoint})
    clock = ManualClock(T0)
    clock.advance(minutes=5)
    return make_service(aws_settings, config, clock=clock, run_jobs=False)


def audited(live: LiveService, action: str) -> list[AuditRecord]:
    with live.runtime.sessions() as db:
        query = sa.select(AuditRecord).where(AuditRecord.action == action).order_by(AuditRecord.id)
        return list(db.scalars(query))


def the_request(live: LiveService) -> PendingAction:
    with live.runtime.sessions() as db:
        [action] = db.scalars(sa.select(PendingAction)).all()
        return action


def bob_asks_and_confirms(live: LiveService, slack: SlackEmulator) -> None:
    assert "waits for your confirmation and the approval" in ask(
        live, slack, "provision shop vault", user="U0BOB"
    )
    assert "approvals 0 of 1" in click(live, slack, "approval_confirm", 1, "U0BOB")


def test_the_last_click_when_the_requesters_right_cannot_be_checked_is_not_counted(
    settings: Settings,
    slack: SlackEmulator,
    lambdas: LambdaWorld,
    vault: Config,
    make_service: Callable[..., LiveService],
) -> None:
    first = instance(make_service, settings, lambdas, vault)
    bob_asks_and_confirms(first, slack)
    first.stop()
    slack.faults.fail_next(1000, status=429, calls=USERGROUPS)
    second = instance(make_service, settings, lambdas, vault)

    said = click(second, slack, "approval_approve", 1, "U0ALICE")

    assert said == (
        "opsbot could not check the right of <@U0BOB>, who asked for it (Slack answered "
        "`ratelimited`); nothing was changed: approve again in a minute."
    )
    assert lambdas.vault.events == [] and lambdas.database.roles() == []
    action = the_request(second)
    assert (action.status, action.confirmed_by, action.approvers) == ("pending", "U0BOB", [])
    assert audited(second, "dbrole.provision") == []
    [record] = audited(second, "approval.run")
    assert (record.outcome, record.detail["reason"], record.detail["left"]) == (
        "failed",
        "unverifiable",
        "pending",
    )
    assert record.detail["unverifiable"] == UNVERIFIABLE

    slack.faults.clear()  # Slack answers again: the same click runs it
    done = click(second, slack, "approval_approve", 1, "U0ALICE")

    assert done.startswith("*Database roles of `shop/vault`* (provision): "), done
    assert lambdas.vault.events == [{"action": "manage"}]
    [started, provisioned] = audited(second, "dbrole.provision")
    assert (started.actor, started.outcome) == ("U0BOB", "started")
    assert (provisioned.actor, provisioned.outcome) == ("U0BOB", "ok")
    assert provisioned.detail["approved_by"] == ["U0ALICE"]


def test_the_run_that_cannot_check_the_requesters_right_says_so_and_invokes_nothing(
    settings: Settings,
    slack: SlackEmulator,
    lambdas: LambdaWorld,
    vault: Config,
    make_service: Callable[..., LiveService],
) -> None:
    """The kind checks the requester's right again as it runs: Slack may fail just then."""
    first = instance(make_service, settings, lambdas, vault)
    bob_asks_and_confirms(first, slack)
    first.stop()
    slack.faults.fail_next(1000, status=429, calls=USERGROUPS)
    second = instance(make_service, settings, lambdas, vault)
    action = the_request(second)

    with pytest.raises(ClicksUnverifiable) as raised:
        DBROLE_KIND.execute(second.runtime, action)

    text = (
        "opsbot could not check the right of <@U0BOB>, who asked for it (Slack answered "
        "`ratelimited`)"
    )
    assert (str(raised.value), raised.value.unverifiable) == (text, UNVERIFIABLE)
    assert lambdas.vault.events == []
    [record] = audited(second, "dbrole.provision")
    detail: dict[str, Any] = dict(record.detail)
    assert (record.actor, record.outcome, detail["unverifiable"]) == (
        "U0BOB",
        "failed",
        "Slack answered `ratelimited`",
    )
