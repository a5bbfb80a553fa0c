"""A channel per incident, through Bolt and the Slack and PagerDuty emulators.

`/incident declare` and the Start a channel button create the channel, invite the
responders and on-call, pin the summary; the timeline shows in both places; a
resolve posts the postmortem draft and plans the archive. Slack's refusals
(a taken name, a missing scope) and a double click or a person without the
right are tried as well, each with what must not have happened.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import Any

import pytest
import sqlalchemy as sa

from bot.audit.models import AuditRecord
from bot.clock import ManualClock
from bot.config import Config, parse_config
from bot.incidents import render
from bot.incidents.channels import CLAIM_S, SUMMARY_EVENT, channel_name, slug
from bot.incidents.models import Incident
from bot.settings import Settings
from sandbox.pagerduty import PagerDutyEmulator
from sandbox.slack import Message, SlackEmulator
from sandbox.sns import SnsSigner
from tests.conftest import TEST_CONFIG
from tests.incidents.helpers import (
    T0,
    ack_text,
    audit_of,
    click,
    command,
    events_of,
    incident_message,
    incident_row,
    message_text,
    outbox_idle,
    page,
    pd_calls,
    responses_to,
    send_alarm,
)
from tests.support import LiveService, wait_for

TITLE = "Checkout 5xx after the deploy"
NAME = "inc-1-checkout-5xx-after-the-deploy"


def channel_config(reopen_window_s: int = 0, **channels: Any) -> Config:
    """TEST_CONFIG with on-call teams and an `incident_channels` section."""
    data: dict[str, Any] = copy.deepcopy(TEST_CONFIG)
    data["alarms"]["reopen_window_s"] = reopen_window_s
    data["oncall"] = {
        "pagerduty_from": "opsbot@example.com",
        "default_team": "prod",
        "teams": {"prod": {"escalation_policies": ["PPOLICY"]}},
    }
    data["incident_channels"] = channels
    return parse_config(data)


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(T0)


@pytest.fixture
def start(
    settings: Settings,
    make_service: Callable[..., LiveService],
    sns_signer: SnsSigner,
    clock: ManualClock,
) -> Iterator[Callable[[Config], LiveService]]:
    """A service on the test clock whose jobs run when the test says (`run_due`)."""
    stamped_by, sns_signer.clock = sns_signer.clock, clock
    yield lambda config: make_service(settings, config, clock=clock, run_jobs=False)
    sns_signer.clock = stamped_by


def declare(service: LiveService, slack: SlackEmulator, *, user_id: str = "U0BOB") -> str:
    url = slack.response_url()
    command(
        service, "/incident", f"declare {TITLE} --route prod", user_id=user_id, response_url=url
    )
    return url


def channel_of(service: LiveService, incident_id: int) -> str | None:
    """The incident's channel once it is set up (it is held on the incident before)."""
    with service.runtime.sessions() as db:
        found = db.get(Incident, incident_id)
        return found.slack_channel_id if found is not None and found.has_channel else None


def texts_in(slack: SlackEmulator, channel: str) -> str:
    return " ".join(message_text(m) for m in slack.channel_messages(channel))


def thread_of(slack: SlackEmulator, message: Message) -> str:
    return " ".join(m.text for m in slack.thread(message.channel, message.ts))


def said(slack: SlackEmulator, url: str) -> str:
    return " ".join(str(r.get("text")) for r in responses_to(slack, url))


def test_names_follow_slacks_rules() -> None:
    incident = Incident(id=42, title="Checkout: 5xx — Ünïcode & CAPS!!", route_name="prod")
    incident.severity = "critical"
    assert slug(incident.title) == "checkout-5xx-unicode-caps"
    assert channel_name("inc-{number}-{slug}", incident) == "inc-42-checkout-5xx-unicode-caps"
    assert channel_name("{severity}_{route}-{number}", incident, suffix=3) == "critical_prod-42-3"
    incident.title = "x" * 200
    long = channel_name("inc-{number}-{slug}", incident, suffix=2)
    assert len(long) == 80 and long.endswith("x-2")
    incident.title = "!!!"
    assert channel_name("inc-{number}-{slug}", incident) == "inc-42"


def test_a_bad_pattern_is_refused_by_its_key() -> None:
    for pattern, problem in (
        ("inc-{slug}", "must contain {number}"),
        ("inc-{number}-{title}", "not {title}"),
        ("Inc-{number}", "may hold only"),
    ):
        with pytest.raises(Exception, match="name_pattern") as raised:
            channel_config(name_pattern=pattern)
        assert problem in str(raised.value)


def test_declare_creates_the_channel_invites_pins_and_mirrors_notes_both_ways(
    start: Callable[[Config], LiveService], slack: SlackEmulator, pagerduty: PagerDutyEmulator
) -> None:
    service = start(channel_config(create_on_declare=True))
    url = declare(service, slack, user_id="U0BOB")
    channel = wait_for(lambda: channel_of(service, 1))
    info = slack.channels[channel]
    assert info["name"] == NAME
    # The declarer, and Alice, on call at level 1 of the team's policy (mapped by email).
    assert {"U0BOB", "U0ALICE"} <= set(info["members"])
    assert "Incident #1" in info["topic"]
    wait_for(lambda: outbox_idle(service))
    [pinned_ts] = slack.pins(channel)
    pinned = next(m for m in slack.channel_messages(channel) if m.ts == pinned_ts)
    assert "Incident #1 " in str(pinned.blocks)  # the summary, with the same buttons
    for action in (render.ACKNOWLEDGE, render.RESOLVE, render.ESCALATE):
        assert action in str(pinned.blocks)
    assert render.START_CHANNEL not in str(pinned.blocks)
    original = wait_for(lambda: incident_message(slack, incident_row(service, 1)))
    assert original.channel == "C0PRODALERTS"
    assert f"channel <#{channel}>" in message_text(original)
    assert render.START_CHANNEL not in str(original.blocks)
    wait_for(lambda: f"started <#{channel}>" in thread_of(slack, original))
    wait_for(lambda: f"Started <#{channel}>" in said(slack, url))
    actions = [(r.action, r.outcome) for r in audit_of(service, 1)]
    assert actions == [("incident.declare", "ok"), ("incident.start_channel", "ok")]

    # A note typed in the channel needs no number: timeline, original thread, channel.
    in_channel = slack.response_url()
    command(
        service,
        "/incident",
        "note 500s began with the 10:02 deploy",
        user_id="U0BOB",
        response_url=in_channel,
        channel_id=channel,
    )
    wait_for(lambda: [e for e in events_of(service, 1) if e.kind == "note"])
    [note] = [e for e in events_of(service, 1) if e.kind == "note"]
    assert (note.text, note.actor) == ("500s began with the 10:02 deploy", "<@U0BOB>")
    wait_for(lambda: "Note from <@U0BOB>: 500s began with the 10:02 deploy" in thread_of(
        slack, original
    ))  # fmt: skip
    wait_for(lambda: "500s began with the 10:02 deploy" in texts_in(slack, channel))
    # PagerDuty's note is a delivery of its own, in no order with the Slack posts.
    wait_for(lambda: [c for c in pagerduty.rest_calls if c["path"].endswith("/notes")])

    # ... and one typed elsewhere with the number shows in the channel too.
    command(service, "/incident", "note 1 failover done", response_url=slack.response_url())
    wait_for(lambda: "failover done" in texts_in(slack, channel))


def test_a_note_elsewhere_still_needs_a_number(service: LiveService, slack: SlackEmulator) -> None:
    url = slack.response_url()
    command(service, "/incident", "note the database failed over", response_url=url)
    wait_for(lambda: responses_to(slack, url))
    assert "`the` is not an incident number" in said(slack, url)
    single = slack.response_url()
    command(service, "/incident", "note fixed", response_url=single)
    wait_for(lambda: responses_to(slack, single))
    assert "`note` needs an incident number and the text" in said(slack, single)
    bare = command(service, "/incident", "note 7", response_url=slack.response_url())
    assert "`note` needs the text of the note" in ack_text(bare)
    with service.runtime.sessions() as db:
        assert db.scalar(sa.select(sa.func.count()).select_from(Incident)) == 0


def test_resolve_posts_the_postmortem_draft_and_archives_after_n_days(
    start: Callable[[Config], LiveService],
    slack: SlackEmulator,
    pagerduty: PagerDutyEmulator,
    clock: ManualClock,
) -> None:
    service = start(channel_config(create_on_declare=True, archive_after_days=2))
    declare(service, slack, user_id="U0BOB")
    channel = wait_for(lambda: channel_of(service, 1))
    wait_for(lambda: pagerduty.incidents_for(incident_row(service, 1).dedup_key))
    clock.advance(minutes=42)
    command(service, "/incident", "resolve 1 rolled back", response_url=slack.response_url())
    wait_for(lambda: incident_row(service, 1).status == "resolved")
    draft = wait_for(
        lambda: next(
            (m for m in slack.channel_messages(channel) if "Postmortem draft" in m.text), None
        )
    )
    for heading in ("## Summary", "## Impact window", "## Timeline", "## Who acted"):
        assert heading in draft.text
    assert f"- Start: {T0.strftime('%Y-%m-%d %H:%M:%S')} UTC" in draft.text
    assert "(after 42 min)" in draft.text
    assert "| declared by @Bob Example: " in draft.text  # names as PagerDuty knows them
    assert "- @Bob Example: declared, channel started" in draft.text
    row = incident_row(service, 1)
    assert row.channel_archive_at == row.resolved_at + timedelta(days=2)

    clock.advance(days=1)
    assert service.runtime.scheduler.run_due(clock.now()) == []
    assert not slack.channels[channel].get("is_archived")
    clock.advance(days=1, minutes=1)
    assert service.runtime.scheduler.run_due(clock.now()) == ["incident:1:archive_channel"]
    assert slack.channels[channel]["is_archived"]
    assert incident_row(service, 1).channel_archived_at is not None


def test_a_taken_name_gets_a_suffix(
    start: Callable[[Config], LiveService], slack: SlackEmulator
) -> None:
    slack.add_channel("C0OLDINC", NAME)
    slack.add_channel("C0OLDINC2", NAME + "-2")
    service = start(channel_config(create_on_declare=True))
    declare(service, slack)
    channel = wait_for(lambda: channel_of(service, 1))
    assert slack.channels[channel]["name"] == NAME + "-3"
    assert incident_row(service, 1).slack_channel_name == NAME + "-3"
    assert [c.error for c in slack.calls if c.method == "conversations.create"] == [
        "name_taken",
        "name_taken",
        None,
    ]


def test_a_missing_scope_is_explained_and_the_thread_goes_on(
    service: LiveService, sns_signer: SnsSigner, slack: SlackEmulator, pagerduty: PagerDutyEmulator
) -> None:
    incident_id, message = page(service, sns_signer, slack, pagerduty)
    assert render.START_CHANNEL in str(message.blocks)
    slack.revoke_scope("channels:manage")
    url = slack.response_url()
    click(service, render.START_CHANNEL, str(incident_id), response_url=url)
    wait_for(lambda: responses_to(slack, url))
    answer = said(slack, url)
    assert "lacks the `channels:manage` permission (scope)" in answer
    assert f"Incident #{incident_id} goes on in its thread in <#C0PRODALERTS>" in answer
    row = incident_row(service, incident_id)
    assert row.slack_channel_id is None and row.channel_requested_at is None
    assert [
        c.method for c in slack.calls if c.method.startswith(("conversations.inv", "pins"))
    ] == []
    [record] = [r for r in audit_of(service, incident_id) if r.action == "incident.start_channel"]
    assert record.outcome == "failed"
    # The thread goes on: a note lands there, and the button is still offered.
    command(service, "/incident", f"note {incident_id} still here", response_url=url)
    wait_for(lambda: "still here" in thread_of(slack, message))
    assert render.START_CHANNEL in str(message.blocks)
    # With the scope back, the button works.
    slack.revoked_scopes.clear()
    click(service, render.START_CHANNEL, str(incident_id), response_url=slack.response_url())
    wait_for(lambda: channel_of(service, incident_id))


def test_a_double_click_makes_one_channel(
    service: LiveService, sns_signer: SnsSigner, slack: SlackEmulator, pagerduty: PagerDutyEmulator
) -> None:
    incident_id, _message = page(service, sns_signer, slack, pagerduty)
    first, second = slack.response_url(), slack.response_url()
    click(service, render.START_CHANNEL, str(incident_id), response_url=first)
    click(service, render.START_CHANNEL, str(incident_id), user_id="U0BOB", response_url=second)
    wait_for(lambda: responses_to(slack, first) and responses_to(slack, second))
    wait_for(lambda: outbox_idle(service))
    assert len(slack.calls_to("conversations.create")) == 1
    channel = channel_of(service, incident_id)
    assert channel is not None
    answers = said(slack, first) + " " + said(slack, second)
    assert f"Started <#{channel}>" in answers
    assert "already has its channel" in answers or "is starting a channel" in answers
    outcomes = [r.outcome for r in audit_of(service, incident_id) if "start_channel" in r.action]
    assert sorted(outcomes) == ["ok", "refused"]
    # Clicking again later says where the channel is.
    later = slack.response_url()
    click(service, render.START_CHANNEL, str(incident_id), response_url=later)
    wait_for(lambda: f"already has its channel <#{channel}>" in said(slack, later))
    assert len(slack.calls_to("conversations.create")) == 1


def test_ack_in_the_channel_updates_both_messages(
    service: LiveService, sns_signer: SnsSigner, slack: SlackEmulator, pagerduty: PagerDutyEmulator
) -> None:
    incident_id, message = page(service, sns_signer, slack, pagerduty)
    click(service, render.START_CHANNEL, str(incident_id), response_url=slack.response_url())
    channel = wait_for(lambda: channel_of(service, incident_id))
    wait_for(lambda: outbox_idle(service))
    # Acknowledge from the pinned copy (the same button, the same gate).
    click(
        service, render.ACKNOWLEDGE, str(incident_id), user_id="U0BOB",
        response_url=slack.response_url(),
    )  # fmt: skip
    wait_for(lambda: "acknowledged by <@U0BOB>" in message_text(message))
    [pinned_ts] = slack.pins(channel)
    pinned = next(m for m in slack.channel_messages(channel) if m.ts == pinned_ts)
    wait_for(lambda: "acknowledged by <@U0BOB>" in message_text(pinned))
    wait_for(lambda: "acknowledged by <@U0BOB>" in texts_in(slack, channel).replace(
        message_text(pinned), ""
    ))  # fmt: skip


def test_without_the_respond_right_nothing_is_created(
    settings: Settings,
    make_service: Callable[..., LiveService],
    sns_signer: SnsSigner,
    slack: SlackEmulator,
    pagerduty: PagerDutyEmulator,
) -> None:
    data: dict[str, Any] = copy.deepcopy(TEST_CONFIG)
    data["alarm_routes"][0]["rights"] = {"respond": {"users": ["U0BOB"]}}
    service = make_service(settings, parse_config(data))
    incident_id, message = page(service, sns_signer, slack, pagerduty)
    updates = message.updates
    url = slack.response_url()
    click(service, render.START_CHANNEL, str(incident_id), response_url=url)
    wait_for(lambda: responses_to(slack, url))
    assert "`respond` on route `prod`" in said(slack, url)
    wait_for(lambda: outbox_idle(service))
    assert slack.calls_to("conversations.create") == []
    row = incident_row(service, incident_id)
    assert row.slack_channel_id is None and row.channel_requested_at is None
    assert message.updates == updates
    with service.runtime.sessions() as db:
        records = db.scalars(
            sa.select(AuditRecord).where(AuditRecord.action == "incident.start_channel")
        ).all()
    assert [(r.actor, r.outcome) for r in records] == [("U0ALICE", "refused")]


def test_an_incident_of_a_private_channel_gets_a_private_channel(
    service: LiveService, sns_signer: SnsSigner, slack: SlackEmulator, pagerduty: PagerDutyEmulator
) -> None:
    slack.channels["C0PRODALERTS"]["is_private"] = True
    incident_id, _message = page(service, sns_signer, slack, pagerduty)
    click(service, render.START_CHANNEL, str(incident_id), response_url=slack.response_url())
    channel = wait_for(lambda: channel_of(service, incident_id))
    assert slack.channels[channel]["is_private"] is True
    # Without groups:write Slack refuses a private one, and the person is told which scope.
    slack.revoke_scope("groups:write")
    incident_id, _message = page(service, sns_signer, slack, pagerduty, "prod-db-cpu")
    url = slack.response_url()
    click(service, render.START_CHANNEL, str(incident_id), response_url=url)
    wait_for(lambda: "lacks the `groups:write` permission" in said(slack, url))
    assert channel_of(service, incident_id) is None


def test_an_alarm_that_recovers_gets_its_draft_and_a_reopen_withdraws_the_archive(
    start: Callable[[Config], LiveService],
    sns_signer: SnsSigner,
    slack: SlackEmulator,
    pagerduty: PagerDutyEmulator,
    clock: ManualClock,
) -> None:
    service = start(channel_config(reopen_window_s=300, archive_after_days=1))
    incident_id, _message = page(service, sns_signer, slack, pagerduty, at=clock.now())
    click(service, render.START_CHANNEL, str(incident_id), response_url=slack.response_url())
    channel = wait_for(lambda: channel_of(service, incident_id))
    clock.advance(minutes=5)
    send_alarm(service, sns_signer, "prod-api-5xx", "OK", at=clock.now())
    wait_for(lambda: "Postmortem draft" in texts_in(slack, channel))
    assert incident_row(service, incident_id).channel_archive_at is not None
    clock.advance(minutes=1)
    send_alarm(service, sns_signer, "prod-api-5xx", "ALARM", at=clock.now())
    wait_for(lambda: incident_row(service, incident_id).status == "open")
    assert incident_row(service, incident_id).channel_archive_at is None
    clock.advance(days=2)
    assert service.runtime.scheduler.run_due(clock.now()) == []
    assert not slack.channels[channel].get("is_archived")


def test_on_call_invited_to_the_incident_channel_may_respond_there(
    start: Callable[[Config], LiveService], slack: SlackEmulator, pagerduty: PagerDutyEmulator
) -> None:
    # Alice is on call but not in the alert channel; opsbot invites her to the incident's.
    slack.set_channel_members("C0PRODALERTS", ["U0BOB"])
    slack.add_user("U0CAROL", "carol", email="carol@example.com")
    service = start(channel_config(create_on_declare=True))
    declare(service, slack, user_id="U0BOB")
    channel = wait_for(lambda: channel_of(service, 1))
    assert "U0ALICE" in slack.channels[channel]["members"]
    wait_for(lambda: outbox_idle(service))
    assert pd_calls(pagerduty, "PUT") == []

    # Carol is in neither channel: refused, told which channels' members may.
    url = slack.response_url()
    click(service, render.ACKNOWLEDGE, "1", user_id="U0CAROL", response_url=url)
    wait_for(lambda: responses_to(slack, url))
    assert "needs the `respond` on route `prod` right" in said(slack, url)
    assert f"members of <#C0PRODALERTS> or <#{channel}>" in said(slack, url)
    wait_for(lambda: outbox_idle(service))
    assert pd_calls(pagerduty, "PUT") == []
    assert incident_row(service, 1).acknowledged_at is None

    # Alice acknowledges from the incident's channel, as herself.
    url = slack.response_url()
    click(service, render.ACKNOWLEDGE, "1", user_id="U0ALICE", response_url=url)
    [put] = wait_for(lambda: pd_calls(pagerduty, "PUT"))
    assert put["from"] == "alice@example.com"
    wait_for(lambda: incident_row(service, 1).acknowledged_at is not None)
    outcomes = [(r.actor, r.action, r.outcome) for r in audit_of(service, 1)]
    assert ("U0CAROL", "incident.acknowledge", "refused") in outcomes
    assert ("U0ALICE", "incident.acknowledge", "ok") in outcomes


def test_the_incident_channels_members_see_an_incident_of_a_private_channel(
    start: Callable[[Config], LiveService], slack: SlackEmulator
) -> None:
    slack.add_channel("C0PRODALERTS", "prod-alerts", private=True, members=["U0BOB"])
    slack.add_user("U0CAROL", "carol", email="carol@example.com")
    service = start(channel_config(create_on_declare=True))
    declare(service, slack, user_id="U0BOB")
    channel = wait_for(lambda: channel_of(service, 1))
    assert slack.channels[channel]["is_private"] is True

    invited = slack.response_url()
    command(service, "/incident", "list", user_id="U0ALICE", response_url=invited)
    wait_for(lambda: responses_to(slack, invited))
    assert "Checkout 5xx after the deploy" in str(responses_to(slack, invited))

    outsider = slack.response_url()
    command(service, "/incident", "list", user_id="U0CAROL", response_url=outsider)
    wait_for(lambda: responses_to(slack, outsider))
    assert "Checkout 5xx" not in str(responses_to(slack, outsider))


def test_a_start_that_outlives_its_claim_stops_where_another_took_over(
    start: Callable[[Config], LiveService],
    clock: ManualClock,
    sns_signer: SnsSigner,
    slack: SlackEmulator,
    pagerduty: PagerDutyEmulator,
) -> None:
    # Slack may take up to 15 s to answer. The first channel made waits 8 s for Slack's
    # answer, past the claim of the start that asked for it (the test's clock jumps):
    # the other start takes over, and exactly one of the two sets the channel up.
    data: dict[str, Any] = copy.deepcopy(TEST_CONFIG)
    data["delivery"] = {**data["delivery"], "request_timeout_s": 15.0, "lease_s": 30.0}
    service = start(parse_config(data))
    incident_id, _message = page(service, sns_signer, slack, pagerduty)
    slack.faults.hang_next(1, seconds=8, calls=("conversations.create",))
    first = slack.response_url()
    click(service, render.START_CHANNEL, str(incident_id), user_id="U0BOB", response_url=first)
    wait_for(lambda: incident_row(service, incident_id).channel_requested_at)
    clock.advance(seconds=CLAIM_S + 1)
    second = slack.response_url()
    click(service, render.START_CHANNEL, str(incident_id), user_id="U0ALICE", response_url=second)
    made = wait_for(lambda: channel_of(service, incident_id))
    answers = wait_for(
        lambda: (said(slack, first) and said(slack, second)) and sorted(
            [said(slack, first), said(slack, second)], key=lambda text: "took it over" in text
        ),
        timeout_s=30,
    )  # fmt: skip
    wait_for(lambda: outbox_idle(service))

    assert answers[0].startswith(f":hash: Started <#{made}>")
    assert "another start took it over and set" in answers[1]
    summaries = [
        m
        for m in slack.channel_messages(made)
        if (m.metadata or {}).get("event_type") == SUMMARY_EVENT
    ]
    assert len(summaries) == 1 and slack.pins(made) == [summaries[0].ts]
    created = [c.args.get("name") for c in slack.calls_to("conversations.create") if c.ok]
    others = [cid for cid, info in slack.channels.items() if info.get("name") in created]
    assert made in others and len(others) <= 2
    for other in set(others) - {made}:  # made in vain by the start that was taken over
        assert slack.channels[other].get("is_archived") is True
    starts = [r.outcome for r in audit_of(service, incident_id) if "start" in r.action]
    assert sorted(starts) == ["cancelled", "ok"]


def test_a_slow_start_takes_its_claim_back_when_the_start_that_took_it_over_failed(
    start: Callable[[Config], LiveService],
    clock: ManualClock,
    sns_signer: SnsSigner,
    slack: SlackEmulator,
    pagerduty: PagerDutyEmulator,
) -> None:
    data: dict[str, Any] = copy.deepcopy(TEST_CONFIG)
    data["delivery"] = {**data["delivery"], "request_timeout_s": 15.0, "lease_s": 30.0}
    service = start(parse_config(data))
    incident_id, _message = page(service, sns_signer, slack, pagerduty)
    slack.faults.hang_next(1, seconds=8, calls=("conversations.create",))
    first = slack.response_url()
    click(service, render.START_CHANNEL, str(incident_id), user_id="U0BOB", response_url=first)
    wait_for(lambda: incident_row(service, incident_id).channel_requested_at)
    clock.advance(seconds=CLAIM_S + 1)
    # The start that takes over fails (Slack refuses it), dropping the claim.
    slack.revoke_scope("channels:manage")
    second = slack.response_url()
    click(service, render.START_CHANNEL, str(incident_id), user_id="U0ALICE", response_url=second)
    wait_for(lambda: "lacks the `channels:manage` permission" in said(slack, second))
    slack.revoked_scopes.clear()

    made = wait_for(lambda: channel_of(service, incident_id), timeout_s=30)
    wait_for(lambda: f"Started <#{made}>" in said(slack, first))
    assert slack.channels[made].get("is_archived") is False
    outcomes = [(r.actor, r.outcome) for r in audit_of(service, incident_id) if "start" in r.action]
    assert sorted(outcomes) == [("U0ALICE", "failed"), ("U0BOB", "ok")]


def test_a_summary_posted_by_a_start_taken_over_is_deleted(
    start: Callable[[Config], LiveService],
    clock: ManualClock,
    sns_signer: SnsSigner,
    slack: SlackEmulator,
    pagerduty: PagerDutyEmulator,
) -> None:
    data: dict[str, Any] = copy.deepcopy(TEST_CONFIG)
    data["delivery"] = {**data["delivery"], "request_timeout_s": 15.0, "lease_s": 30.0}
    service = start(parse_config(data))
    incident_id, _message = page(service, sns_signer, slack, pagerduty)
    wait_for(lambda: outbox_idle(service))
    # Bob's start posts its summary past its claim: Alice's start took over meanwhile,
    # found no summary yet, and posted its own.
    slack.faults.hang_next(1, seconds=6, calls=("chat.postMessage",))
    first = slack.response_url()
    click(service, render.START_CHANNEL, str(incident_id), user_id="U0BOB", response_url=first)
    wait_for(lambda: slack.calls_to("conversations.setTopic"))
    clock.advance(seconds=CLAIM_S + 1)
    second = slack.response_url()
    click(service, render.START_CHANNEL, str(incident_id), user_id="U0ALICE", response_url=second)
    wait_for(lambda: said(slack, first) and said(slack, second), timeout_s=30)
    wait_for(lambda: outbox_idle(service))

    made = incident_row(service, incident_id).slack_channel_id
    assert made is not None
    summaries = [
        m.ts
        for m in slack.channel_messages(made)
        if (m.metadata or {}).get("event_type") == SUMMARY_EVENT
    ]
    assert len(summaries) == 1 and slack.pins(made) == summaries
    outcomes = sorted(r.outcome for r in audit_of(service, incident_id) if "start" in r.action)
    assert outcomes == ["cancelled", "ok"]
