"""Who may deploy, when Slack cannot say and when Slack says "a guest", through every door.

`api/staging` lists its deployers by id: Alice, Bob, Gina (a multi-channel
guest) and Dave (whose Slack account is deactivated). `api/prod` lists Alice,
and the group S0DEPLOYERS: Bob and Gus (a guest). Only the group S0FORCERS
(Alice) may `--force`. The Slack emulator serves 500 `fatal_error` or 429
`ratelimited` for usergroups.users.list or users.info where a test says so.

Rights fail closed: what Slack cannot say refuses as "could not check", never
as "you may not", and changes nothing (audited "failed": nobody was found
without the right); a guest or a deactivated account holds no deployers' right
even when listed, and is told so; someone listed nowhere is refused without
asking Slack about them, outage or not.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
import yaml

from bot.approvals.models import PendingAction
from bot.audit.models import AuditRecord
from bot.cli import main
from bot.config import Config, parse_config
from bot.deploys.models import Deployment
from bot.runtime import Runtime
from sandbox.slack import SlackEmulator
from tests.deploys.conftest import DEPLOYERS_GROUP, deploy_config
from tests.deploys.test_cli import (  # noqa: F401  # the CLI's environment and its issuer
    REPOSITORY,
    TOKEN,
    audit_trail,
    cli_env,
    deployments,
    github,
)
from tests.deploys.test_slack import answered, click, command, confirmation
from tests.deploys.world import World
from tests.support import LiveService

FORCERS_GROUP = "S0FORCERS"
GUEST = "U0GINA"  # a multi-channel guest, listed by id on staging
GROUP_GUEST = "U0GUS"  # a guest in S0DEPLOYERS (prod)
DEACTIVATED = "U0DAVE"  # listed by id on staging; Slack shows the account deactivated
# (HTTP status the emulator serves, the error its body names)
OUTAGES = [
    pytest.param(500, "fatal_error", id="internal"),
    pytest.param(429, "ratelimited", id="rate-limited"),
]


def rights_config() -> dict[str, Any]:
    config = deploy_config(deploys={"force_allowed": {"groups": [FORCERS_GROUP]}})
    staging = config["apps"]["api"]["environments"]["staging"]
    staging["deployers"] = {"users": ["U0ALICE", "U0BOB", GUEST, DEACTIVATED]}
    return config


@pytest.fixture
def app_config() -> Config:
    return parse_config(rights_config())


@pytest.fixture
def releases(releases: SlackEmulator) -> SlackEmulator:
    releases.add_user(GUEST, "gina", email="gina@vendor.example", guest=True)
    releases.add_user(GROUP_GUEST, "gus", email="gus@vendor.example", guest=True)
    releases.add_user(DEACTIVATED, "dave", email="dave@example.com")
    with releases.lock:  # as users.info shows a deactivated account
        releases.users[DEACTIVATED]["deleted"] = True
    releases.add_usergroup(DEPLOYERS_GROUP, "deployers", ["U0BOB", GROUP_GUEST])
    releases.add_usergroup(FORCERS_GROUP, "forcers", ["U0ALICE"])
    return releases


def unchanged(world: World, runtime: Runtime) -> None:
    for env in ("staging", "prod"):
        assert world.service_task_definition(env) == world.task_definitions[env]
    with runtime.sessions() as db:
        assert db.scalars(sa.select(Deployment)).all() == []


def audited(runtime: Runtime, action: str) -> list[AuditRecord]:
    with runtime.sessions() as db:
        query = sa.select(AuditRecord).where(AuditRecord.action == action)
        return list(db.scalars(query.order_by(AuditRecord.id)))


def users_info_asked_about(slack: SlackEmulator, user_id: str) -> list[str]:
    with slack.lock:
        return [c.method for c in slack.calls if c.args.get("user") == user_id]


# -- Slack cannot list the group that may force -------------------------------------------------


@pytest.mark.parametrize(("status", "error"), OUTAGES)
def test_force_while_slack_cannot_list_who_may_force_is_could_not_check(
    live: LiveService, releases: SlackEmulator, world: World, status: int, error: str
) -> None:
    """1.0.3 has CRITICAL findings: only a forcer may deploy it, and Alice is one."""
    releases.faults.fail_next(1000, status=status, calls=("usergroups.users.list",))

    _, url = command(live, releases, "/deploy", 'api staging 1.0.3 --force "accepted risk"')

    said = (
        f"opsbot could not check whether you may force deploys (Slack answered `{error}`). "
        "Nothing was done: try again in a minute."
    )
    assert answered(releases, url) == said
    unchanged(world, live.runtime)
    [failed] = audited(live.runtime, "deploy.request")  # nobody was found without the right
    assert (failed.actor, failed.outcome) == ("U0ALICE", "failed")
    assert (failed.detail["reason"], failed.detail["unverifiable"]) == (
        said,
        f"Slack answered `{error}`",
    )
    assert failed.detail["force_reason"] == "accepted risk"
    assert audited(live.runtime, "deploy.force") == []

    releases.faults.clear()  # Slack answers again: the same command goes through
    _, url = command(live, releases, "/deploy", 'api staging 1.0.3 --force "accepted risk"')
    assert "started" in answered(releases, url)
    [forced] = audited(live.runtime, "deploy.force")
    assert (forced.actor, forced.detail["overrode"]) == ("U0ALICE", ["scan"])


def test_force_by_a_deployer_outside_the_forcers_group_is_may_not(
    live: LiveService, releases: SlackEmulator, world: World
) -> None:
    _, url = command(
        live, releases, "/deploy", 'api staging 1.0.3 --force "accepted risk"', user="U0BOB"
    )
    assert answered(releases, url) == (
        f"You may not force deploys. Allowed: <!subteam^{FORCERS_GROUP}>."
    )
    unchanged(world, live.runtime)


# -- guests and deactivated accounts ------------------------------------------------------------


def test_a_guest_listed_by_id_may_not_deploy_and_nothing_changes(
    live: LiveService, releases: SlackEmulator, world: World
) -> None:
    _, url = command(live, releases, "/deploy", "api staging 1.0.2", user=GUEST)

    said = (
        "Guests may not deploy to `api/staging`: that needs full membership of the "
        "workspace, even for someone listed."
    )
    assert answered(releases, url) == said
    unchanged(world, live.runtime)
    [refused] = audited(live.runtime, "deploy.request")
    assert (refused.actor, refused.outcome, refused.detail["reason"]) == (
        GUEST,
        "refused",
        said,
    )
    assert releases.channel_messages("C0RELEASES") == []


def test_a_guest_in_the_deployers_group_may_not_approve_nor_roll_back(
    live: LiveService, releases: SlackEmulator, world: World
) -> None:
    _, url = command(live, releases, "/deploy", "api prod 1.0.2")
    assert "request #1 waits" in answered(releases, url)
    confirmation(releases)

    url = click(live, releases, "approval_approve", 1, user=GROUP_GUEST)

    said = (
        "Guests may not approve deploys to `api/prod`: that needs full membership of the "
        "workspace, even for someone listed."
    )
    assert answered(releases, url) == said
    with live.runtime.sessions() as db:
        [action] = db.scalars(sa.select(PendingAction)).all()
        assert (action.status, action.approvers) == ("pending", [])
    [refused] = audited(live.runtime, "approval.approve")
    assert (refused.actor, refused.outcome) == (GROUP_GUEST, "refused")
    assert refused.detail["reason"] == said

    _, url = command(live, releases, "/rollback", "api prod", user=GROUP_GUEST)
    assert answered(releases, url).startswith("Guests may not roll back `api/prod`: ")
    unchanged(world, live.runtime)


@pytest.mark.parametrize(
    ("identity", "user_id", "said"),
    [
        pytest.param(
            "gina-gh",
            GUEST,
            "Guests may not deploy to api/staging: that needs full membership of the "
            "workspace, even for someone listed.",
            id="guest",
        ),
        pytest.param(
            "dave-gh",
            DEACTIVATED,
            f"github:dave-gh acts as <@{DEACTIVATED}>, whose Slack account is deactivated: a "
            "deactivated account holds no right. Map the identity to someone else in the "
            "config's rights.cli. Nothing was done.",
            id="deactivated",
        ),
    ],
)
def test_the_cli_acting_as_a_guest_or_a_deactivated_account_is_refused(
    tmp_path: Path,
    cli_env: dict[str, Any],  # noqa: F811
    releases: SlackEmulator,
    world: World,
    github: Any,  # noqa: F811
    database_url: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    identity: str,
    user_id: str,
    said: str,
) -> None:
    config = rights_config()
    config["rights"] = {
        **cli_env["rights"],
        "cli": {**cli_env["rights"]["cli"], f"github:{identity}": user_id},
    }
    path = tmp_path / "guests.yaml"
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    monkeypatch.setenv("OPSBOT_CONFIG", str(path))
    monkeypatch.setenv(TOKEN, github.token(actor=identity, repository=REPOSITORY))

    assert main(["deploy", "api", "staging", "1.0.2"]) == 3

    assert capsys.readouterr().out == f"refused: {said}\n"
    assert deployments(database_url) == []
    assert world.service_task_definition("staging") == world.task_definitions["staging"]
    # A deactivated account is refused at the CLI's identity (it acts as nobody), a
    # guest at the right.
    actor = f"cli:github:{identity}" if user_id == DEACTIVATED else user_id
    assert audit_trail(database_url) == [("deploy.request", actor, "refused")]


# -- Slack cannot read profiles -----------------------------------------------------------------


@pytest.mark.parametrize(("status", "error"), OUTAGES)
def test_while_slack_cannot_read_profiles_a_listed_deployer_is_could_not_check(
    live: LiveService, releases: SlackEmulator, world: World, status: int, error: str
) -> None:
    """Whether someone listed is a guest is Slack's to say: without it, nothing is done."""
    releases.faults.fail_next(1000, status=status, calls=("users.info",))

    _, url = command(live, releases, "/deploy", "api staging 1.0.2")

    said = (
        f"opsbot could not check whether you may deploy to `api/staging` (Slack answered "
        f"`{error}`). Nothing was done: try again in a minute."
    )
    assert answered(releases, url) == said
    unchanged(world, live.runtime)
    [failed] = audited(live.runtime, "deploy.request")  # nobody was found without the right
    assert (failed.actor, failed.outcome, failed.detail["reason"]) == ("U0ALICE", "failed", said)


def test_someone_listed_nowhere_is_refused_without_asking_slack_about_them(
    live: LiveService, releases: SlackEmulator, world: World
) -> None:
    releases.faults.fail_next(1000, status=500, calls=("users.info",))
    _, url = command(live, releases, "/deploy", "api staging 1.0.2", user="U0CAROL")
    assert answered(releases, url) == (
        "You may not deploy to `api/staging`. Allowed: <@U0ALICE>, <@U0BOB>, "
        f"<@{GUEST}>, <@{DEACTIVATED}>."
    )
    releases.faults.clear()

    _, url = command(live, releases, "/rollback", "api prod", user="U0CAROL")
    assert answered(releases, url).startswith("You may not roll back `api/prod`. Allowed: ")
    assert users_info_asked_about(releases, "U0CAROL") == []
    unchanged(world, live.runtime)
