"""Incident rights, tried as an attacker would: every refusal changes nothing but the audit.

Guests, people outside an incident's channel, and people a route does not name
click buttons and type commands through Bolt with signed payloads; each test
asserts the refusal they read and that nothing else happened: no PagerDuty
call, no message update, no silence, no incident, one audit line.
"""

from __future__ import annotations

from typing import Any

import pytest
import sqlalchemy as sa

from bot.audit.models import AuditRecord
from bot.config import Config, parse_config
from bot.incidents import render
from bot.incidents.models import Incident
from sandbox.pagerduty import PagerDutyEmulator
from sandbox.slack import SlackEmulator
from sandbox.sns import SnsSigner
from tests.conftest import TEST_CONFIG
from tests.incidents.helpers import (
    audit_of,
    click,
    command,
    incident_row,
    message_text,
    outbox_idle,
    page,
    pd_calls,
    responses_to,
)
from tests.support import LiveService, wait_for

ONCALL_GROUP = "S0ONCALL"


def rights_config(**rights: Any) -> Config:
    """TEST_CONFIG with a `rights` section."""
    return parse_config({**TEST_CONFIG, "rights": rights})


@pytest.fixture
def guest(slack: SlackEmulator) -> str:
    slack.add_user("U0GUEST", "gina", email="gina@vendor.example", guest=True)
    slack.set_channel_members("C0PRODALERTS", ["U0ALICE", "U0BOB", "U0GUEST"])
    return "U0GUEST"


def assert_untouched(
    service: LiveService, pagerduty: PagerDutyEmulator, incident_id: int, updates: int, message: Any
) -> None:
    wait_for(lambda: outbox_idle(service))
    assert pd_calls(pagerduty, "PUT") == []
    assert message.updates == updates
    row = incident_row(service, incident_id)
    assert row.acknowledged_at is None and row.status == "open" and row.silenced_until is None


def test_a_guest_can_neither_acknowledge_nor_silence(
    service: LiveService,
    sns_signer: SnsSigner,
    slack: SlackEmulator,
    pagerduty: PagerDutyEmulator,
    guest: str,
) -> None:
    incident_id, message = page(service, sns_signer, slack, pagerduty)
    updates = message.updates
    url = slack.response_url()
    click(service, render.ACKNOWLEDGE, str(incident_id), user_id=guest, response_url=url)
    [reply] = wait_for(lambda: responses_to(slack, url))
    assert "Guests may view incidents but not acknowledge" in reply["text"]
    assert reply["response_type"] == "ephemeral"

    url = slack.response_url()
    click(
        service,
        render.SILENCE,
        user_id=guest,
        response_url=url,
        selected_option=f"{incident_id}:24h",
    )
    [reply] = wait_for(lambda: responses_to(slack, url))
    assert "Guests may view incidents but not silence" in reply["text"]

    assert_untouched(service, pagerduty, incident_id, updates, message)
    assert [(r.actor, r.action, r.outcome) for r in audit_of(service, incident_id)] == [
        (guest, "incident.acknowledge", "refused"),
        (guest, "incident.silence", "refused"),
    ]


def test_someone_of_another_organisation_in_a_shared_channel_is_a_guest(
    service: LiveService, sns_signer: SnsSigner, slack: SlackEmulator, pagerduty: PagerDutyEmulator
) -> None:
    # Slack Connect: a vendor's user, a full member of their own workspace, in our channel.
    slack.add_user("U0EXT", "vera", email="vera@vendor.example", team_id="T0VENDOR")
    slack.set_channel_members("C0PRODALERTS", ["U0ALICE", "U0BOB", "U0EXT"])
    incident_id, message = page(service, sns_signer, slack, pagerduty)
    updates = message.updates
    url = slack.response_url()
    click(
        service,
        render.SILENCE,
        user_id="U0EXT",
        response_url=url,
        selected_option=f"{incident_id}:24h",
    )
    [reply] = wait_for(lambda: responses_to(slack, url))
    assert "Guests may view incidents but not silence" in reply["text"]
    assert_untouched(service, pagerduty, incident_id, updates, message)
    assert [(r.actor, r.outcome) for r in audit_of(service, incident_id)] == [("U0EXT", "refused")]


def test_a_slack_lookup_that_times_out_once_is_asked_again(
    service: LiveService, sns_signer: SnsSigner, slack: SlackEmulator, pagerduty: PagerDutyEmulator
) -> None:
    incident_id, _message = page(service, sns_signer, slack, pagerduty)
    # Longer than the client's timeout (delivery.request_timeout_s, 2 s in tests).
    slack.faults.hang_next(1, seconds=5, calls=("users.info",))
    url = slack.response_url()
    click(service, render.ACKNOWLEDGE, str(incident_id), user_id="U0ALICE", response_url=url)
    [put] = wait_for(lambda: pd_calls(pagerduty, "PUT"))
    assert put["from"] == "alice@example.com"
    assert not any("cannot check" in r.get("text", "") for r in responses_to(slack, url))
    [record] = wait_for(lambda: audit_of(service, incident_id))
    assert (record.actor, record.outcome) == ("U0ALICE", "ok")


def test_someone_outside_the_channel_may_not_respond(
    service: LiveService, sns_signer: SnsSigner, slack: SlackEmulator, pagerduty: PagerDutyEmulator
) -> None:
    slack.set_channel_members("C0PRODALERTS", ["U0BOB"])
    incident_id, message = page(service, sns_signer, slack, pagerduty)
    updates = message.updates
    url = slack.response_url()
    click(service, render.RESOLVE, str(incident_id), user_id="U0ALICE", response_url=url)
    [reply] = wait_for(lambda: responses_to(slack, url))
    assert "needs the `respond` on route `prod` right" in reply["text"]
    assert "members of <#C0PRODALERTS>" in reply["text"]
    assert_untouched(service, pagerduty, incident_id, updates, message)
    [record] = audit_of(service, incident_id)
    assert (record.actor, record.outcome) == ("U0ALICE", "refused")

    # A member of the channel may.
    click(service, render.ACKNOWLEDGE, str(incident_id), user_id="U0BOB", response_url=url)
    [put] = wait_for(lambda: pd_calls(pagerduty, "PUT"))
    assert put["from"] == "bob@example.com"


@pytest.fixture
def oncall_only() -> Config:
    """The paging route: only on-call responds; anyone in the channel silences, for 1 h."""
    routes = [dict(r) for r in TEST_CONFIG["alarm_routes"]]
    routes[0]["rights"] = {
        "respond": {"groups": [ONCALL_GROUP]},
        "silence": {"channel_members": True, "max_min": 60},
    }
    return parse_config({**TEST_CONFIG, "alarm_routes": routes})


def test_a_route_names_who_may_respond_and_how_long_a_silence_may_be(
    settings: Any,
    oncall_only: Config,
    make_service: Any,
    sns_signer: SnsSigner,
    slack: SlackEmulator,
    pagerduty: PagerDutyEmulator,
) -> None:
    slack.add_usergroup(ONCALL_GROUP, "oncall", ["U0BOB"])
    service = make_service(settings, oncall_only)
    incident_id, message = page(service, sns_signer, slack, pagerduty)
    updates = message.updates

    url = slack.response_url()
    click(service, render.ESCALATE, str(incident_id), user_id="U0ALICE", response_url=url)
    [reply] = wait_for(lambda: responses_to(slack, url))
    assert "needs the `respond` on route `prod` right" in reply["text"]
    assert f"<!subteam^{ONCALL_GROUP}>" in reply["text"]

    url = slack.response_url()
    click(
        service,
        render.SILENCE,
        user_id="U0ALICE",
        response_url=url,
        selected_option=f"{incident_id}:2h",
    )
    [reply] = wait_for(lambda: responses_to(slack, url))
    assert "for 60 minutes at most, not 120" in reply["text"]
    assert_untouched(service, pagerduty, incident_id, updates, message)

    click(
        service,
        render.SILENCE,
        user_id="U0ALICE",
        response_url=url,
        selected_option=f"{incident_id}:30m",
    )
    wait_for(lambda: "silenced by <@U0ALICE>" in message_text(message))
    click(service, render.ACKNOWLEDGE, str(incident_id), user_id="U0BOB", response_url=url)
    wait_for(lambda: pd_calls(pagerduty, "PUT"))


def test_declaring_needs_the_declare_right(
    settings: Any,
    make_service: Any,
    slack: SlackEmulator,
    pagerduty: PagerDutyEmulator,
    guest: str,
) -> None:
    service = make_service(settings, rights_config(incidents={"declare": {"users": ["U0BOB"]}}))
    for who in ("U0ALICE", guest):
        url = slack.response_url()
        command(service, "/incident", "declare Checkout is down", user_id=who, response_url=url)
        [reply] = wait_for(lambda url=url: responses_to(slack, url))
        assert "needs the `declare` on route `prod` right" in reply["text"] or (
            "Guests may view incidents but not declare" in reply["text"]
        )
    wait_for(lambda: outbox_idle(service))
    assert pagerduty.events == []
    assert slack.channel_messages("C0PRODALERTS") == []
    with service.runtime.sessions() as db:
        assert db.scalar(sa.select(sa.func.count()).select_from(Incident)) == 0

    url = slack.response_url()
    command(service, "/incident", "declare Checkout is down", user_id="U0BOB", response_url=url)
    wait_for(lambda: [e for e in pagerduty.events if e["event_action"] == "trigger"])


def test_incidents_of_a_private_channel_are_hidden_from_those_outside_it(
    service: LiveService, sns_signer: SnsSigner, slack: SlackEmulator, pagerduty: PagerDutyEmulator
) -> None:
    slack.add_channel("C0PRODALERTS", "prod-alerts", private=True, members=["U0BOB"])
    incident_id, _ = page(service, sns_signer, slack, pagerduty)

    outsider = slack.response_url()
    command(service, "/incident", "list", user_id="U0ALICE", response_url=outsider)
    [listing] = wait_for(lambda: responses_to(slack, outsider))
    assert "prod-api-5xx" not in str(listing)
    command(
        service, "/incident", f"timeline {incident_id}", user_id="U0ALICE", response_url=outsider
    )
    [_, refused] = wait_for(
        lambda: responses_to(slack, outsider)[1:] and responses_to(slack, outsider)
    )
    assert "does not show you its timeline" in refused["text"]
    assert "prod-api-5xx" not in str(refused)

    member = slack.response_url()
    command(service, "/incident", "list", user_id="U0BOB", response_url=member)
    [listing] = wait_for(lambda: responses_to(slack, member))
    assert "prod-api-5xx" in str(listing)


def test_rights_fail_closed_when_slack_cannot_say_who_is_who(
    service: LiveService, sns_signer: SnsSigner, slack: SlackEmulator, pagerduty: PagerDutyEmulator
) -> None:
    incident_id, message = page(service, sns_signer, slack, pagerduty)
    updates = message.updates
    slack.faults.fail_for(30, status=500, calls=("users.info", "conversations."))
    url = slack.response_url()
    click(service, render.ACKNOWLEDGE, str(incident_id), user_id="U0BOB", response_url=url)
    [reply] = wait_for(lambda: responses_to(slack, url))
    slack.faults.clear()
    assert "cannot check your right to acknowledge" in reply["text"]
    assert_untouched(service, pagerduty, incident_id, updates, message)


# -- PagerDuty identity ---------------------------------------------------------------


def link_audit(service: LiveService) -> list[tuple[str, str, str, str]]:
    with service.runtime.sessions() as db:
        rows = db.scalars(
            sa.select(AuditRecord)
            .where(AuditRecord.action.like("people.%"))
            .order_by(AuditRecord.id)
        )
        return [(r.actor, r.action, r.target, r.outcome) for r in rows]


def test_a_first_click_reads_the_clickers_slack_profile_once(
    service: LiveService, sns_signer: SnsSigner, slack: SlackEmulator, pagerduty: PagerDutyEmulator
) -> None:
    # The rights check and the PagerDuty identity both need it: one users.info.
    incident_id, _message = page(service, sns_signer, slack, pagerduty)
    before = len(slack.calls_to("users.info"))
    click(service, render.ACKNOWLEDGE, str(incident_id), response_url=slack.response_url())
    [put] = wait_for(lambda: pd_calls(pagerduty, "PUT"))
    assert put["from"] == "alice@example.com"
    assert len(slack.calls_to("users.info")) - before == 1


def test_nobody_links_themselves_to_someone_elses_pagerduty_identity(
    service: LiveService, sns_signer: SnsSigner, slack: SlackEmulator, pagerduty: PagerDutyEmulator
) -> None:
    slack.add_user("U0CAROL", "carol", email="carol@corp.example")
    url = slack.response_url()
    command(
        service, "/opsbot", "link-pagerduty bob@example.com", user_id="U0CAROL", response_url=url
    )
    [reply] = wait_for(lambda: responses_to(slack, url))
    assert "only the email of your own Slack profile (`carol@corp.example`)" in reply["text"]
    assert service.runtime.people.current_link("U0CAROL") is None
    assert link_audit(service) == [("U0CAROL", "people.link", "slack-user:U0CAROL", "refused")]

    # Her click is not made as Bob: she is refused, with how to get an identity.
    incident_id, _ = page(service, sns_signer, slack, pagerduty)
    url = slack.response_url()
    click(service, render.ACKNOWLEDGE, str(incident_id), user_id="U0CAROL", response_url=url)
    [reply] = wait_for(lambda: responses_to(slack, url))
    assert "No PagerDuty user has your Slack email" in reply["text"]
    assert "ask an opsbot admin to link it" in reply["text"]
    assert pd_calls(pagerduty, "PUT") == []


def test_only_an_admin_links_or_unlinks_someone_else(
    service: LiveService, slack: SlackEmulator, pagerduty: PagerDutyEmulator
) -> None:
    slack.add_user("U0CAROL", "carol", email="carol@corp.example")
    url = slack.response_url()
    command(
        service,
        "/opsbot",
        "link-pagerduty <@U0CAROL|carol> alice@example.com",
        user_id="U0BOB",
        response_url=url,
    )
    command(service, "/opsbot", "unlink-pagerduty <@U0ALICE>", user_id="U0BOB", response_url=url)
    replies = wait_for(lambda: len(responses_to(slack, url)) == 2 and responses_to(slack, url))
    assert all("needs the `admin` right" in r["text"] for r in replies)
    assert service.runtime.people.current_link("U0CAROL") is None
    # The two commands are handled concurrently: their audit lines come in either order.
    assert sorted(link_audit(service)) == [
        ("U0BOB", "people.link", "slack-user:U0CAROL", "refused"),
        ("U0BOB", "people.unlink", "slack-user:U0ALICE", "refused"),
    ]


def test_linking_your_own_slack_email_is_allowed_and_audited(
    service: LiveService, slack: SlackEmulator, pagerduty: PagerDutyEmulator
) -> None:
    url = slack.response_url()
    command(service, "/opsbot", "link-pagerduty BOB@example.com", user_id="U0BOB", response_url=url)
    [reply] = wait_for(lambda: responses_to(slack, url))
    assert "Linked: you act in PagerDuty as *Bob Example*" in reply["text"]
    assert link_audit(service) == [("U0BOB", "people.link", "slack-user:U0BOB", "ok")]
