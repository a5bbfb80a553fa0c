"""/dbrole check and provision through Slack's HTTP edge, the real boto3 Lambda client,
and the real role manager on PostgreSQL.

Requests are signed as Slack signs them and posted to the live service; answers come
back through the Slack emulator. The bot invokes the functions with boto3 against a
loopback AWS endpoint: moto, whose Lambda would run code only in Docker (absent here),
so the sandbox's front door answers the invocations of the functions it was given with
the REAL role manager handler running in-process against a real PostgreSQL database
(its master secret in moto's Secrets Manager); everything else (the functions
themselves, a function that does not exist) is moto's. See conftest.py.
"""

from __future__ import annotations

from typing import Any

import psycopg
import sqlalchemy as sa

from bot.approvals.models import PendingAction
from bot.audit.models import AuditRecord
from sandbox.slack import Message, SlackEmulator
from tests.conftest import SLACK_SIGNING_SECRET
from tests.dbroles.conftest import RELEASES, LambdaWorld
from tests.support import (
    LiveService,
    block_action_body,
    slack_headers,
    slash_command_body,
    wait_for,
)


def dbrole(
    live: LiveService, slack: SlackEmulator, text: str, *, user: str = "U0ALICE"
) -> tuple[str, str]:
    """Send `/dbrole <text>`; return the immediate ack's text and the url answers go to."""
    url = slack.response_url()
    body = slash_command_body("/dbrole", text, user_id=user, response_url=url)
    response = live.post(
        "/slack/events", content=body, headers=slack_headers(SLACK_SIGNING_SECRET, body)
    )
    assert response.status_code == 200
    if response.headers.get("content-type", "").startswith("application/json"):
        return str(response.json().get("text") or ""), url
    return response.text, url


def answered(slack: SlackEmulator, url: str) -> str:
    path = "/" + url.split("://", 1)[1].split("/", 1)[1]
    found = wait_for(lambda: [r for r in slack.responses if r["url"] == path], timeout_s=60)
    return str(found[-1]["text"])


def ask(live: LiveService, slack: SlackEmulator, text: str, *, user: str = "U0ALICE") -> str:
    """Send `/dbrole <text>` and wait for the answer that follows the ack."""
    ack, url = dbrole(live, slack, text, user=user)
    assert ack.startswith(":hourglass_flowing_sand:")
    return answered(slack, url)


def click(
    live: LiveService, slack: SlackEmulator, action_id: str, request_id: int, user: str
) -> str:
    url = slack.response_url()
    body = block_action_body(
        action_id, str(request_id), user_id=user, channel_id=RELEASES, response_url=url
    )
    response = live.post(
        "/slack/events", content=body, headers=slack_headers(SLACK_SIGNING_SECRET, body)
    )
    assert response.status_code == 200
    return answered(slack, url)


def audits(live: LiveService) -> list[tuple[str, str, str, str, dict[str, Any]]]:
    with live.runtime.sessions() as db:
        rows = db.scalars(
            sa.select(AuditRecord)
            .where(AuditRecord.action.like("dbrole.%"))
            .order_by(AuditRecord.id)
        ).all()
        return [(r.actor, r.action, r.target, r.outcome, dict(r.detail)) for r in rows]


def test_check_reports_what_is_missing_and_changes_nothing(
    live: LiveService, slack: SlackEmulator, lambdas: LambdaWorld
) -> None:
    db = lambdas.database
    # Checking changes nothing, so anyone may: Carol is no deployer.
    text = ask(live, slack, "check shop staging", user="U0CAROL")

    assert text.startswith(":warning: *Database roles of `shop/staging`* (check): ")
    assert f"• needs repair: create role {db.app}" in text
    assert f"• needs repair: create schema {db.schema} owned by {db.migrator}" in text
    assert f"• `{db.app}`: does not exist" in text
    assert f"*Schema* `{db.schema}` does not exist" in text
    assert "`/dbrole provision shop staging` repairs what can be repaired." in text
    assert db.roles() == []
    assert lambdas.staging.events == [{"action": "check"}]
    [(actor, action, target, outcome, detail)] = audits(live)
    assert (actor, action, target, outcome) == (
        "U0CAROL",
        "dbrole.check",
        "dbrole:shop/staging",
        "problems",
    )
    assert detail["ok"] is False and detail["changed"] == []


def test_provision_creates_the_roles_and_check_is_then_clean(
    live: LiveService, slack: SlackEmulator, lambdas: LambdaWorld
) -> None:
    db = lambdas.database
    text = ask(live, slack, "provision shop staging")

    assert text.startswith(":white_check_mark: *Database roles of `shop/staging`* (provision): ")
    assert "change(s) made." in text.splitlines()[0]
    assert f"• create role {db.migrator}" in text
    assert f"• create schema {db.schema} owned by {db.migrator}" in text
    assert f"• `{db.app}`: LOGIN, INHERIT, NOSUPERUSER" in text
    assert f"USAGE on schema {db.schema}" in text
    assert f"*Schema* `{db.schema}` owned by `{db.migrator}`" in text
    assert "*Tables* 0, all reachable by the app role" in text
    assert sorted(db.roles()) == sorted([db.migrator, db.app])
    with db.connect() as conn:
        rds_iam = conn.execute("SELECT 1 FROM pg_roles WHERE rolname = 'rds_iam'").fetchone()
    if rds_iam is None:  # plain PostgreSQL: said so, everything else granted
        assert "*Warnings*" in text and "role rds_iam does not exist" in text

    checked = ask(live, slack, "check shop staging")
    assert checked.startswith(
        ":white_check_mark: *Database roles of `shop/staging`* (check): everything is in order."
    )
    assert "*Errors*" not in checked
    [started, provisioned, check] = audits(live)
    # Its own line before the function runs, then what came of it.
    assert started[:4] == ("U0ALICE", "dbrole.provision", "dbrole:shop/staging", "started")
    assert started[4] == {"function": provisioned[4]["function"]}
    assert provisioned[:4] == ("U0ALICE", "dbrole.provision", "dbrole:shop/staging", "ok")
    assert f"create role {db.app}" in provisioned[4]["changed"]
    assert provisioned[4]["function"].startswith("shop-staging-role-manager-")
    assert check[1:4] == ("dbrole.check", "dbrole:shop/staging", "ok")


def test_a_second_provision_changes_nothing_and_says_so(
    live: LiveService, slack: SlackEmulator, lambdas: LambdaWorld
) -> None:
    ask(live, slack, "provision shop staging")

    again = ask(live, slack, "provision shop staging", user="U0BOB")

    assert again.splitlines()[0] == (
        ":white_check_mark: *Database roles of `shop/staging`* (provision): "
        "nothing to change, everything was in order."
    )
    assert "*Changed*: nothing to change." in again
    assert audits(live)[-1][4]["changed"] == []


def test_protected_provision_waits_for_the_requesters_confirmation(
    live: LiveService, slack: SlackEmulator, lambdas: LambdaWorld
) -> None:
    db = lambdas.database
    text = ask(live, slack, "provision shop prod")

    assert text == (
        "`shop/prod` is protected: request #1 to provision its database roles waits for "
        f"your confirmation in <#{RELEASES}>."
    )
    assert lambdas.prod.events == [] and db.roles() == []

    def confirmation() -> Message | None:
        found = [m for m in slack.channel_messages(RELEASES) if m.text.startswith("Request #1")]
        return found[-1] if found else None

    message = wait_for(confirmation)
    assert "<@U0ALICE> asks to *provision database roles* of `shop/prod`" in str(message.blocks)
    assert "Provision" in str(message.blocks)
    # Someone without the right cannot confirm, nor can a deployer confirm Alice's request.
    assert click(live, slack, "approval_confirm", 1, "U0CAROL").startswith(
        "You may not confirm database roles of `shop/prod`."
    )
    assert click(live, slack, "approval_confirm", 1, "U0BOB").startswith("Only <@U0ALICE>")
    assert lambdas.prod.events == []

    done = click(live, slack, "approval_confirm", 1, "U0ALICE")

    assert done.startswith("*Database roles of `shop/prod`* (provision): ")
    assert f"• create role {db.app}" in done
    assert lambdas.prod.events == [{"action": "manage"}]
    assert sorted(db.roles()) == sorted([db.migrator, db.app])
    wait_for(lambda: ":white_check_mark: *Database roles of `shop/prod`*" in str(confirmation()))
    with live.runtime.sessions() as session:
        [action] = session.scalars(sa.select(PendingAction)).all()
        assert (action.kind, action.status) == ("dbrole", "done")
    provisioned = [a for a in audits(live) if a[1] == "dbrole.provision"]
    assert provisioned[-1][:4] == ("U0ALICE", "dbrole.provision", "dbrole:shop/prod", "ok")


def test_require_approval_needs_a_second_person_before_it_runs(
    live: LiveService, slack: SlackEmulator, lambdas: LambdaWorld
) -> None:
    text = ask(live, slack, "provision shop vault")
    assert text == (
        "`shop/vault` is protected: request #1 to provision its database roles waits for "
        f"your confirmation and the approval of a second person in <#{RELEASES}>."
    )

    assert "approvals 0 of 1" in click(live, slack, "approval_confirm", 1, "U0ALICE")
    assert click(live, slack, "approval_approve", 1, "U0ALICE") == (
        "You cannot approve your own request: a different person must approve it."
    )
    assert lambdas.vault.events == [] and lambdas.database.roles() == []

    done = click(live, slack, "approval_approve", 1, "U0BOB")

    assert done.startswith("*Database roles of `shop/vault`* (provision): ")
    assert lambdas.vault.events == [{"action": "manage"}]
    [started, provisioned] = [a for a in audits(live) if a[1] == "dbrole.provision"]
    assert started[0] == "U0ALICE" and started[3] == "started"
    assert started[4] == {
        "function": f"shop-vault-role-manager-{lambdas.database.dbname}",
        "approved_by": ["U0BOB"],
        "request": 1,
    }
    assert provisioned[0] == "U0ALICE" and provisioned[3] == "ok"
    assert provisioned[4]["approved_by"] == ["U0BOB"] and provisioned[4]["request"] == 1


def test_provision_without_the_right_is_refused_and_nothing_runs(
    live: LiveService, slack: SlackEmulator, lambdas: LambdaWorld
) -> None:
    text = ask(live, slack, "provision shop staging", user="U0CAROL")

    assert text == (
        "You may not provision database roles of `shop/staging`. Allowed: <@U0ALICE>, <@U0BOB>."
    )
    assert lambdas.staging.events == [] and lambdas.database.roles() == []
    [(actor, action, target, outcome, detail)] = audits(live)
    assert (actor, action, target, outcome) == (
        "U0CAROL",
        "dbrole.provision",
        "dbrole:shop/staging",
        "refused",
    )
    assert detail["reason"] == text


def test_unknown_app_and_environment_answer_with_what_exists(
    live: LiveService, slack: SlackEmulator, lambdas: LambdaWorld
) -> None:
    assert ask(live, slack, "check nope staging") == "Unknown app `nope`. Apps: `shop`."
    assert ask(live, slack, "provision shop nowhere") == (
        "Unknown environment `nowhere` of `shop`. Environments: `broken`, `dev`, `down`, "
        "`misnamed`, `prod`, `qa`, `staging`, `vault`."
    )
    assert lambdas.staging.events == []


def test_an_environment_without_a_role_manager_says_what_to_configure(
    live: LiveService, slack: SlackEmulator, lambdas: LambdaWorld
) -> None:
    for verb in ("check", "provision"):
        assert ask(live, slack, f"{verb} shop dev") == (
            "`shop/dev` has no database role manager: set `dbrole.function` (the role-manager "
            "Lambda's name or ARN) under `apps.shop.environments.dev` in the configuration."
        )


def test_a_missing_function_is_named_with_what_aws_said(
    live: LiveService, slack: SlackEmulator, lambdas: LambdaWorld
) -> None:
    text = ask(live, slack, "check shop qa")

    function = f"shop-qa-role-manager-{lambdas.database.dbname}"
    assert text.startswith(
        f":x: *Database roles of `shop/qa`* (check): the role manager `{function}` does not "
        "exist (ResourceNotFoundException"
    )
    assert text.endswith("check `dbrole.function` of `shop/qa`.")
    assert audits(live)[-1][3] == "failed"


def test_a_function_error_shows_its_type_and_message_but_no_stack(
    live: LiveService, slack: SlackEmulator, lambdas: LambdaWorld
) -> None:
    text = ask(live, slack, "provision shop broken")

    function = f"shop-broken-role-manager-{lambdas.database.dbname}"
    assert text == (
        f":x: *Database roles of `shop/broken`* (provision): the role manager `{function}` "
        "failed: Runtime.ImportModuleError: Unable to import module 'role_manager': No module"
        " named 'psycopg'."
    )
    assert "Traceback" not in text and ".py" not in text
    [started, (_, action, _, outcome, detail)] = audits(live)
    assert started[1:4] == ("dbrole.provision", "dbrole:shop/broken", "started")
    assert (action, outcome) == ("dbrole.provision", "failed")
    assert "Runtime.ImportModuleError" in detail["failure"]


def test_the_role_managers_own_errors_are_rendered(
    live: LiveService, slack: SlackEmulator, lambdas: LambdaWorld
) -> None:
    text = ask(live, slack, "check shop down")

    assert text.startswith(
        ":x: *Database roles of `shop/down`* (check): failed, nothing was checked."
    )
    assert "*Errors*\n• database error (OperationalError)" in text
    assert "password" not in text.lower()
    # Its database does not answer: a provision would fail there too.
    assert text.endswith(
        "The role manager stopped before it checked or changed the roles: its errors say why"
        " (a secret it could not read, a database it could not reach, an invalid"
        " configuration); the function's log has the whole error."
    )
    assert "/dbrole provision" not in text
    [(_, action, _, outcome, detail)] = audits(live)
    assert (action, outcome, detail["ran"]) == ("dbrole.check", "failed", False)


def test_a_role_manager_told_to_manage_its_master_refuses_and_the_person_sees_why(
    live: LiveService, slack: SlackEmulator, lambdas: LambdaWorld
) -> None:
    db = lambdas.database

    def master_state() -> Any:
        with db.connect() as conn:
            return conn.execute(
                "SELECT rolcanlogin, rolcreaterole, rolcreatedb, rolsuper, rolconfig,"
                " array(SELECT roleid::regrole::text FROM pg_auth_members WHERE member = oid)"
                " FROM pg_roles WHERE rolname = %s",
                (db.master,),
            ).fetchone()

    before = master_state()

    text = ask(live, slack, "provision shop misnamed")

    assert text.splitlines()[:4] == [
        ":no_entry: *Database roles of `shop/misnamed`* (provision): refused, nothing was changed.",
        "*Changed*: nothing.",
        "*Errors*",
        f"• refused, nothing was changed: APP_ROLE='{db.master}': it is the master user "
        "(MASTER_SECRET_ARN's username): managing it would take its CREATEROLE and CREATEDB "
        "and give it the app's login, locking out everything that uses the master secret",
    ]
    assert lambdas.misnamed.events == [{"action": "manage"}]
    # Nothing changed: no role made, the master as it was and still logging in.
    assert db.roles() == []
    assert master_state() == before == (True, True, True, False, None, [])
    info = psycopg.conninfo.conninfo_to_dict(db.admin_url)
    info.update(dbname=db.dbname, user=db.master, password=db.master_password)
    with psycopg.connect(psycopg.conninfo.make_conninfo(**info)) as conn:
        assert conn.execute("SELECT current_user").fetchone() == (db.master,)
    [started, (actor, action, target, outcome, detail)] = audits(live)
    assert started[3] == "started"
    assert (actor, action, target, outcome) == (
        "U0ALICE",
        "dbrole.provision",
        "dbrole:shop/misnamed",
        "refused",
    )
    assert detail["refused"] is True and detail["changed"] == []
    assert detail["errors"][0].startswith(f"refused, nothing was changed: APP_ROLE='{db.master}'")


def test_mistyped_commands_get_the_usage_and_invoke_nothing(
    live: LiveService, slack: SlackEmulator, lambdas: LambdaWorld
) -> None:
    ack, _ = dbrole(live, slack, "chek shop staging")
    assert ack.startswith("`/dbrole` does not know `chek`.")
    assert (
        "`/dbrole check &lt;app&gt; &lt;env&gt;`" in ack
        and "`/dbrole provision &lt;app&gt; &lt;env&gt;`" in ack
    )

    ack, _ = dbrole(live, slack, "provision shop")
    assert ack.startswith(
        "`/dbrole provision &lt;app&gt; &lt;env&gt;` needs an app and an environment"
    )

    ack, _ = dbrole(live, slack, "help")  # typed bare, /dbrole opens its modal (tests/modals)
    assert ack.startswith("*/dbrole*")
    assert lambdas.staging.events == [] and audits(live) == []
