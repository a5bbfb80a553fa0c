"""The reverse link: a change asked while an incident is open on its app environment.

`/deploy` and `/flag` are typed as Slack sends them; the question comes back
on the command's response_url; Continue and Cancel are clicked as Slack sends
clicks. The undo buttons of the incident itself never ask (test_changes.py
rolls back through one while the incident is open).
"""

from __future__ import annotations

import json
from typing import Any

import sqlalchemy as sa

from bot.audit.models import AuditRecord
from bot.clock import ManualClock
from bot.incidents.models import Incident
from sandbox.slack import SlackEmulator
from sandbox.sns import SnsSigner
from tests.changes.conftest import CLAIMED
from tests.changes.test_changes import PRODALERTS, alarm, deployments
from tests.deploys.world import World
from tests.flags.conftest import FlagWorld
from tests.incidents.helpers import click, command, events_of, responses_to
from tests.support import LiveService, wait_for


def ask(
    live: LiveService, slack: SlackEmulator, name: str, text: str, *, user: str
) -> dict[str, Any]:
    url = slack.response_url()
    command(live, name, text, user_id=user, response_url=url, channel_id=PRODALERTS)
    answer: dict[str, Any] = wait_for(lambda: responses_to(slack, url))[-1]
    return answer


def buttons(answer: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {
        e["action_id"]: e
        for b in answer.get("blocks") or []
        if b["type"] == "actions"
        for e in b["elements"]
    }


def press(
    live: LiveService, slack: SlackEmulator, action_id: str, value: str, *, user: str
) -> dict[str, Any]:
    url = slack.response_url()
    click(live, action_id, value, user_id=user, response_url=url)
    answer: dict[str, Any] = wait_for(lambda: responses_to(slack, url))[-1]
    return answer


def change_events(live: LiveService, incident: Incident) -> list[Any]:
    return [e for e in events_of(live, incident.id) if e.kind == "change"]


def test_a_deploy_during_an_open_incident_asks_first_and_continue_runs_it_once(
    live: LiveService,
    world: World,
    clock: ManualClock,
    releases: SlackEmulator,
    sns_signer: SnsSigner,
) -> None:
    incident, message = alarm(live, sns_signer, releases, CLAIMED)

    question = ask(live, releases, "/deploy", "api prod 1.0.2", user="U0ALICE")
    assert question["text"].startswith(
        f":warning: #{incident.id} `{CLAIMED}` is open on `api/prod`; deploy anyway?"
    )
    assert question["response_type"] == "ephemeral"
    found = buttons(question)
    assert set(found) == {"change_anyway:continue", "change_anyway:cancel"}
    assert deployments(live) == []  # nothing starts before Continue

    value = found["change_anyway:continue"]["value"]
    done = press(live, releases, "change_anyway:continue", value, user="U0ALICE")
    assert done["replace_original"] is True
    assert done["text"].startswith("Deploy #1 of `api` `1.0.2` to `api/prod` started"), done
    assert [(d[1]) for d in deployments(live)] == ["deploy"]

    # Linked onto the incident: its timeline and its thread.
    events = change_events(live, incident)
    assert [(e.actor, e.data["what"]) for e in events] == [
        ("U0ALICE", "/deploy api 1.0.2 to api/prod")
    ]
    thread = wait_for(
        lambda: [m.text for m in releases.thread(PRODALERTS, message.ts) if ":link:" in m.text]
    )
    assert thread[0].startswith(
        ":link: <@U0ALICE> went ahead while this incident is open: /deploy api 1.0.2 to api/prod."
    )

    # A second Continue (a double click, a replay) does nothing.
    again = press(live, releases, "change_anyway:continue", value, user="U0ALICE")
    assert again["text"] == "You already answered this question: nothing more was done."
    assert len(deployments(live)) == 1
    assert len(change_events(live, incident)) == 1


def test_continue_carries_no_authority_and_cancel_answers_the_question(
    live: LiveService,
    world: World,
    flag_world: FlagWorld,
    clock: ManualClock,
    releases: SlackEmulator,
    sns_signer: SnsSigner,
) -> None:
    incident, _ = alarm(live, sns_signer, releases, CLAIMED)

    # Carol may not deploy: refused at once, not asked.
    refused = ask(live, releases, "/deploy", "api prod 1.0.2", user="U0CAROL")
    assert refused["text"].startswith("You may not deploy to `api/prod`"), refused
    assert not buttons(refused)

    # Alice's question, with its value forged to name Alice (or the CLI), clicked by Carol:
    # it runs as the one who clicked, through /deploy's own gate.
    question = ask(live, releases, "/deploy", "api prod 1.0.2", user="U0ALICE")
    value = buttons(question)["change_anyway:continue"]["value"]
    forged = json.loads(value)
    forged["p"].update(actor="U0ALICE", cli_identity="github:alice", digest="sha256:" + "0" * 64)
    refused = press(live, releases, "change_anyway:continue", json.dumps(forged), user="U0CAROL")
    assert refused["text"].startswith("You may not deploy to `api/prod`"), refused
    assert deployments(live) == []
    assert change_events(live, incident) == []
    with live.runtime.sessions() as db:
        audits = db.scalars(
            sa.select(AuditRecord).where(
                AuditRecord.action == "deploy.request", AuditRecord.outcome == "refused"
            )
        ).all()
        assert [a.actor for a in audits] == ["U0CAROL", "U0CAROL"]
        assert all("cli" not in (a.detail or {}) for a in audits)

    garbage = press(live, releases, "change_anyway:continue", "{not json", user="U0ALICE")
    assert garbage["text"] == "That button names no request: nothing was done."

    # A flag change asks too; Cancel answers it, and a Continue after it does nothing.
    before = flag_world.versions()
    question = ask(live, releases, "/flag", "on api prod apple_pay", user="U0ALICE")
    assert "is open on `api/prod`; change the flag anyway?" in question["text"]
    value = buttons(question)["change_anyway:cancel"]["value"]
    cancelled = press(live, releases, "change_anyway:cancel", value, user="U0ALICE")
    assert cancelled["text"] == "Cancelled: nothing was changed."
    late = press(live, releases, "change_anyway:continue", value, user="U0ALICE")
    assert late["text"] == "You already answered this question: nothing more was done."
    assert flag_world.versions() == before
    assert change_events(live, incident) == []


def test_without_an_open_incident_the_change_runs_at_once(
    live: LiveService,
    world: World,
    flag_world: FlagWorld,
    releases: SlackEmulator,
    sns_signer: SnsSigner,
) -> None:
    alarm(live, sns_signer, releases, "prod-payments-5xx")  # claimed by no app environment
    answer = ask(live, releases, "/flag", "on api prod apple_pay", user="U0ALICE")
    assert "AppConfig deployment 1 started" in answer["text"], answer
    assert not buttons(answer)


def test_the_question_names_an_incident_the_asker_cannot_see_by_its_number_only(
    live: LiveService,
    world: World,
    clock: ManualClock,
    releases: SlackEmulator,
    sns_signer: SnsSigner,
) -> None:
    releases.add_channel(PRODALERTS, "prod-alerts", private=True, members=["U0ALICE"])
    incident, _ = alarm(live, sns_signer, releases, CLAIMED)

    # Bob may deploy to api/prod but is not in the incident's private channel.
    question = ask(live, releases, "/deploy", "api prod 1.0.2", user="U0BOB")
    assert question["text"].startswith(
        f":warning: #{incident.id} is open on `api/prod`; deploy anyway?"
    ), question
    assert CLAIMED not in json.dumps(question)
    assert set(buttons(question)) == {"change_anyway:continue", "change_anyway:cancel"}

    # Alice is in it: she reads its title.
    question = ask(live, releases, "/deploy", "api prod 1.0.2", user="U0ALICE")
    assert question["text"].startswith(
        f":warning: #{incident.id} `{CLAIMED}` is open on `api/prod`; deploy anyway?"
    ), question
    assert deployments(live) == []
