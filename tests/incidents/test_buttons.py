"""The buttons on an alarm message, clicked through Bolt with signed payloads."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

import sqlalchemy as sa

from bot.config import parse_config
from bot.incidents import render
from bot.outbox.models import PAGERDUTY_REST, PENDING, Delivery
from bot.outbox.results import Job, Sent
from bot.settings import Settings
from sandbox.pagerduty import PagerDutyEmulator
from sandbox.slack import SlackEmulator
from sandbox.sns import SnsSigner
from tests.conftest import TEST_CONFIG
from tests.incidents.helpers import (
    T0,
    ack_text,
    audit_of,
    click,
    command,
    events_of,
    incident_row,
    message_text,
    outbox_idle,
    page,
    pd_calls,
    responses_to,
    send_alarm,
)
from tests.support import LiveService, metric, statements_sent, wait_for


def test_acknowledge_acts_in_pagerduty_as_the_clicker_and_updates_the_message(
    service: LiveService, sns_signer: SnsSigner, slack: SlackEmulator, pagerduty: PagerDutyEmulator
) -> None:
    incident_id, message = page(service, sns_signer, slack, pagerduty)
    assert render.ACKNOWLEDGE in str(message.blocks)

    answer = click(service, render.ACKNOWLEDGE, str(incident_id), response_url=slack.response_url())
    assert answer.elapsed.total_seconds() < 3

    [put] = wait_for(lambda: pd_calls(pagerduty, "PUT"))
    assert put["from"] == "alice@example.com"
    assert put["body"]["incident"]["status"] == "acknowledged"
    [pd_incident] = pagerduty.incidents.values()
    assert put["path"] == f"/incidents/{pd_incident['id']}"
    assert pd_incident["status"] == "acknowledged"

    wait_for(lambda: "acknowledged by <@U0ALICE>" in message_text(message))
    assert render.ACKNOWLEDGE not in str(message.blocks)  # the button is gone
    row = incident_row(service, incident_id)
    assert row.acknowledged_by == "<@U0ALICE>" and row.pagerduty_incident_id == pd_incident["id"]
    [record] = audit_of(service, incident_id)
    assert (record.actor, record.action, record.outcome) == (
        "U0ALICE",
        "incident.acknowledge",
        "ok",
    )
    assert record.detail["from"] == "alice@example.com"


def test_second_acknowledge_is_a_no_op_that_says_who_already_did(
    service: LiveService, sns_signer: SnsSigner, slack: SlackEmulator, pagerduty: PagerDutyEmulator
) -> None:
    incident_id, message = page(service, sns_signer, slack, pagerduty)
    click(service, render.ACKNOWLEDGE, str(incident_id), response_url=slack.response_url())
    wait_for(lambda: "acknowledged by <@U0ALICE>" in message_text(message))
    wait_for(lambda: outbox_idle(service))
    updates = message.updates

    second = slack.response_url()
    click(service, render.ACKNOWLEDGE, str(incident_id), user_id="U0BOB", response_url=second)
    [reply] = wait_for(lambda: responses_to(slack, second))
    assert "already acknowledged by <@U0ALICE>" in reply["text"]
    assert reply["response_type"] == "ephemeral"
    assert len(pd_calls(pagerduty, "PUT")) == 1
    assert message.updates == updates
    assert [r.outcome for r in audit_of(service, incident_id)] == ["ok", "refused"]


def pending_calls(service: LiveService) -> int:
    with service.runtime.sessions() as db:
        query = sa.select(sa.func.count()).where(
            Delivery.kind == PAGERDUTY_REST, Delivery.status == PENDING
        )
        return int(db.scalar(query) or 0)


def test_acknowledge_while_another_is_on_its_way_says_who_and_calls_pagerduty_once(
    service: LiveService, sns_signer: SnsSigner, slack: SlackEmulator, pagerduty: PagerDutyEmulator
) -> None:
    incident_id, message = page(service, sns_signer, slack, pagerduty)
    pagerduty.faults.hang_next(1, seconds=3, calls=("/incidents",))  # Alice's call waits
    click(service, render.ACKNOWLEDGE, str(incident_id), response_url=slack.response_url())
    wait_for(lambda: pending_calls(service))

    second = slack.response_url()
    click(service, render.ACKNOWLEDGE, str(incident_id), user_id="U0BOB", response_url=second)
    [reply] = wait_for(lambda: responses_to(slack, second))
    assert "is being acknowledged by <@U0ALICE>" in reply["text"]
    wait_for(lambda: "acknowledged by <@U0ALICE>" in message_text(message))
    wait_for(lambda: outbox_idle(service))
    [put] = pd_calls(pagerduty, "PUT")
    assert put["from"] == "alice@example.com"
    assert sorted((r.actor, r.outcome) for r in audit_of(service, incident_id)) == [
        ("U0ALICE", "ok"),
        ("U0BOB", "refused"),
    ]


def test_a_click_looks_for_calls_on_their_way_once(
    service: LiveService, sns_signer: SnsSigner, slack: SlackEmulator, pagerduty: PagerDutyEmulator
) -> None:
    incident_id, message = page(service, sns_signer, slack, pagerduty)
    order_key = f"pdrest:incident:{incident_id}"
    with statements_sent(service.runtime.engine) as sent:
        click(service, render.ACKNOWLEDGE, str(incident_id), response_url=slack.response_url())
        wait_for(lambda: "acknowledged by <@U0ALICE>" in message_text(message))
    looks = [
        statement
        for statement, values in sent
        if statement.startswith("SELECT DELIVERIES.PAYLOAD") and order_key in values
    ]
    assert len(looks) == 1  # the locked re-check's, before the call is recorded


def test_resolve_acts_as_the_clicker_and_shows_who_resolved(
    service: LiveService, sns_signer: SnsSigner, slack: SlackEmulator, pagerduty: PagerDutyEmulator
) -> None:
    incident_id, message = page(service, sns_signer, slack, pagerduty)
    click(
        service,
        render.RESOLVE,
        str(incident_id),
        user_id="U0BOB",
        response_url=slack.response_url(),
    )
    [put] = wait_for(lambda: pd_calls(pagerduty, "PUT"))
    assert (put["from"], put["body"]["incident"]["status"]) == ("bob@example.com", "resolved")
    wait_for(lambda: "resolved by <@U0BOB>" in message_text(message))
    assert render.RESOLVE not in str(message.blocks)
    assert incident_row(service, incident_id).status == "resolved"
    assert [(r.action, r.outcome) for r in audit_of(service, incident_id)] == [
        ("incident.resolve", "ok")
    ]


def test_escalate_moves_the_page_to_the_next_level(
    service: LiveService, sns_signer: SnsSigner, slack: SlackEmulator, pagerduty: PagerDutyEmulator
) -> None:
    incident_id, message = page(service, sns_signer, slack, pagerduty)
    click(service, render.ESCALATE, str(incident_id), response_url=slack.response_url())
    [put] = wait_for(lambda: pd_calls(pagerduty, "PUT"))
    assert put["from"] == "alice@example.com"
    assert put["body"]["incident"]["escalation_level"] == 2
    wait_for(lambda: "level 2" in message_text(message))
    assert "assigned to Bob Example" in message_text(message) or "<@U0BOB>" in message_text(message)
    assert [e.kind for e in events_of(service, incident_id)][-1] == "escalated"
    assert audit_of(service, incident_id)[-1].detail["level"] == 2


def test_an_escalation_whose_answer_was_lost_asks_for_the_same_level_again(
    service: LiveService, sns_signer: SnsSigner, slack: SlackEmulator, pagerduty: PagerDutyEmulator
) -> None:
    incident_id, message = page(service, sns_signer, slack, pagerduty)
    # PagerDuty escalates, but answers after opsbot stopped waiting (2 s here), and
    # so again when the client tries once more: the delivery's next attempt must
    # not read level 2 and ask for a third, which this policy does not have.
    pagerduty.faults.hang_next(2, seconds=2.05, calls=("/incidents/",), method="PUT")
    click(service, render.ESCALATE, str(incident_id), response_url=slack.response_url())
    wait_for(lambda: "level 2" in message_text(message), timeout_s=20)
    wait_for(lambda: outbox_idle(service))
    # The client's two PUTs landed; the delivery's next attempt read level 2 and stopped.
    levels = [put["body"]["incident"]["escalation_level"] for put in pd_calls(pagerduty, "PUT")]
    assert levels == [2, 2]
    assert len(pd_calls(pagerduty, "GET")) >= 2  # the level read before, and again after
    assert metric(service, "opsbot_pagerduty_found_done_total", action="escalate") == 1
    assert [r.outcome for r in audit_of(service, incident_id)] == ["ok"]
    assert not any("could not" in m.text for m in slack.thread("C0PRODALERTS", message.ts))


def test_a_call_that_outlived_its_lease_is_recorded_once_whoever_sends_it(
    service: LiveService, sns_signer: SnsSigner, slack: SlackEmulator, pagerduty: PagerDutyEmulator
) -> None:
    incident_id, message = page(service, sns_signer, slack, pagerduty)
    pagerduty.faults.fail_for(60, status=503, calls=("/incidents/",), method="PUT")
    click(service, render.ACKNOWLEDGE, str(incident_id), response_url=slack.response_url())

    def tried() -> list[Delivery]:
        with service.runtime.sessions() as db:
            rows = db.scalars(sa.select(Delivery).where(Delivery.kind == PAGERDUTY_REST)).all()
        return [r for r in rows if r.attempts >= 1 and r.status == PENDING]

    [row] = wait_for(tried)
    pagerduty.faults.clear()
    # Two instances holding the same call (the first's lease ran out mid-send), besides
    # this instance's own worker: PagerDuty is asked by each, the outcome recorded once.
    job = Job(row.id, row.kind, row.target, dict(row.payload), row.attempts + 1, None)
    send = service.runtime.outbox.senders[PAGERDUTY_REST]
    assert send(job) == Sent(recorded=True)
    assert send(job) == Sent(recorded=True)
    wait_for(lambda: outbox_idle(service))
    assert [e.kind for e in events_of(service, incident_id)].count("acknowledged") == 1
    assert [r.outcome for r in audit_of(service, incident_id)] == ["ok"]
    assert len([m for m in slack.thread("C0PRODALERTS", message.ts)]) <= 1


def test_refusal_by_pagerduty_is_shown_in_the_thread(
    service: LiveService, sns_signer: SnsSigner, slack: SlackEmulator, pagerduty: PagerDutyEmulator
) -> None:
    incident_id, message = page(service, sns_signer, slack, pagerduty)
    click(service, render.ESCALATE, str(incident_id), response_url=slack.response_url())
    wait_for(lambda: "level 2" in message_text(message))
    # The production policy has two levels: a third is refused by PagerDuty.
    url = slack.response_url()
    click(service, render.ESCALATE, str(incident_id), response_url=url)
    [reply] = wait_for(lambda: slack.thread("C0PRODALERTS", message.ts))
    assert "could not escalate" in reply.text and "Escalation level 3 does not exist" in reply.text
    [answer] = wait_for(lambda: responses_to(slack, url))
    assert "Could not escalate" in answer["text"]
    assert [r.outcome for r in audit_of(service, incident_id)] == ["ok", "failed"]
    # Refused for good: counted so, as any delivery PagerDuty refuses.
    dead = {"target": "pagerduty_rest", "outcome": "dead"}
    wait_for(
        lambda: service.runtime.metrics.registry.get_sample_value("opsbot_deliveries_total", dead)
    )


def test_click_by_someone_without_a_pagerduty_account_changes_nothing(
    service: LiveService, sns_signer: SnsSigner, slack: SlackEmulator, pagerduty: PagerDutyEmulator
) -> None:
    slack.add_user("U0CAROL", "carol", email="carol@example.com")
    incident_id, message = page(service, sns_signer, slack, pagerduty)
    url = slack.response_url()
    click(service, render.ACKNOWLEDGE, str(incident_id), user_id="U0CAROL", response_url=url)
    [reply] = wait_for(lambda: responses_to(slack, url))
    assert "No PagerDuty user has your Slack email `carol@example.com`" in reply["text"]
    assert "/opsbot link-pagerduty" in reply["text"]
    wait_for(lambda: outbox_idle(service))
    assert pd_calls(pagerduty, "PUT") == []
    assert message.updates == 0
    assert incident_row(service, incident_id).acknowledged_at is None
    assert [(r.actor, r.outcome) for r in audit_of(service, incident_id)] == [
        ("U0CAROL", "refused")
    ]


def test_hidden_slack_email_gets_told_how_to_link(
    service: LiveService, sns_signer: SnsSigner, slack: SlackEmulator, pagerduty: PagerDutyEmulator
) -> None:
    slack.add_user("U0DAVE", "dave")  # the workspace hides emails
    incident_id, _ = page(service, sns_signer, slack, pagerduty)
    url = slack.response_url()
    click(service, render.RESOLVE, str(incident_id), user_id="U0DAVE", response_url=url)
    [reply] = wait_for(lambda: responses_to(slack, url))
    assert "cannot see your email address" in reply["text"]
    assert pd_calls(pagerduty, "PUT") == []


def test_an_admin_link_wins_over_the_email_lookup(
    settings: Settings,
    make_service: Callable[..., LiveService],
    sns_signer: SnsSigner,
    slack: SlackEmulator,
    pagerduty: PagerDutyEmulator,
) -> None:
    config = parse_config({**TEST_CONFIG, "rights": {"admins": {"users": ["U0ALICE"]}}})
    service = make_service(settings, config)
    slack.add_user("U0CAROL", "carol", email="carol@corp.example")
    pagerduty.add_user("PCAROL", "Carol Example", "carol@pagerduty.example")
    url = slack.response_url()
    command(
        service,
        "/opsbot",
        "link-pagerduty <@U0CAROL|carol> <mailto:carol@pagerduty.example|carol@pagerduty.example>",
        user_id="U0ALICE",
        response_url=url,
    )
    [linked] = wait_for(lambda: responses_to(slack, url))
    assert (
        "Linked: <@U0CAROL> acts" in linked["text"] and "carol@pagerduty.example" in linked["text"]
    )

    incident_id, message = page(service, sns_signer, slack, pagerduty)
    click(service, render.ACKNOWLEDGE, str(incident_id), user_id="U0CAROL", response_url=url)
    [put] = wait_for(lambda: pd_calls(pagerduty, "PUT"))
    assert put["from"] == "carol@pagerduty.example"
    wait_for(lambda: "acknowledged by <@U0CAROL>" in message_text(message))

    shown = slack.response_url()
    command(service, "/opsbot", "link-pagerduty", user_id="U0CAROL", response_url=shown)
    [current] = wait_for(lambda: responses_to(slack, shown))
    assert "Carol Example" in current["text"] and "linked by hand" in current["text"]


def test_link_to_an_unknown_email_is_refused(
    service: LiveService, slack: SlackEmulator, pagerduty: PagerDutyEmulator
) -> None:
    slack.add_user("U0NOBODY", "nobody", email="nobody@example.com")
    url = slack.response_url()
    command(
        service,
        "/opsbot",
        "link-pagerduty nobody@example.com",
        user_id="U0NOBODY",
        response_url=url,
    )
    [reply] = wait_for(lambda: responses_to(slack, url))
    assert "No PagerDuty user has the email `nobody@example.com`" in reply["text"]
    bad = command(service, "/opsbot", "link-pagerduty not-an-email", response_url=url)
    assert "is not one email address" in ack_text(bad)


def test_silence_keeps_transitions_in_the_thread_without_posting_or_paging(
    service: LiveService, sns_signer: SnsSigner, slack: SlackEmulator, pagerduty: PagerDutyEmulator
) -> None:
    incident_id, message = page(service, sns_signer, slack, pagerduty)
    click(
        service,
        render.SILENCE,
        response_url=slack.response_url(),
        selected_option=f"{incident_id}:2h",
    )
    wait_for(lambda: "silenced by <@U0ALICE> until" in message_text(message))
    assert audit_of(service, incident_id)[-1].detail == {"via": "button", "minutes": 120}

    # OK then ALARM again, past the reopen window: still this incident, no new post, no page.
    send_alarm(service, sns_signer, "prod-api-5xx", "OK", T0 + timedelta(minutes=1))
    send_alarm(service, sns_signer, "prod-api-5xx", "ALARM", T0 + timedelta(minutes=2))
    wait_for(lambda: outbox_idle(service))
    assert len(slack.channel_messages("C0PRODALERTS")) == 1
    triggers = [e for e in pagerduty.events if e["event_action"] == "trigger"]
    assert len(triggers) == 1
    thread = " ".join(m.text for m in slack.thread("C0PRODALERTS", message.ts))
    assert "silenced" in thread and "ALARM" in thread
    assert incident_row(service, incident_id).status == "open"

    click(
        service,
        render.SILENCE,
        response_url=slack.response_url(),
        selected_option=f"{incident_id}:{render.UNSILENCE}",
    )
    wait_for(lambda: incident_row(service, incident_id).silenced_until is None)
