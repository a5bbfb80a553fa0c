"""Alarms written by an attacker: whatever they put in a name, description, reason, ARN
or SNS subject reaches Slack as text (no ping, no link), within Slack's limits."""

from __future__ import annotations

import json
from datetime import timedelta
from urllib.parse import urlsplit

from sandbox.alarms import alarm_message
from sandbox.pagerduty import PagerDutyEmulator
from sandbox.slack import SlackEmulator
from sandbox.sns import SnsSigner
from tests.alarms.test_pipeline import T0, alarm, outbox_empty, send
from tests.slack_checks import limit_problems, live_markup, texts, urls
from tests.support import LiveService, wait_for

HOSTILE = "<!channel> <!here> <@U0ALICE> <https://evil.example|Runbook> &lt;!here&gt; ``` @here"


def test_hostile_alarm_text_reaches_slack_inert_and_the_route_mention_stays_live(
    service: LiveService, sns_signer: SnsSigner, slack: SlackEmulator, pagerduty: PagerDutyEmulator
) -> None:
    name = "prod-api <!channel> <https://evil.example|Runbook>"
    send(service, sns_signer, alarm(name, "ALARM", T0, description=HOSTILE, reason=HOSTILE))
    [message] = wait_for(lambda: slack.channel_messages("C0PRODALERTS"))
    wait_for(lambda: pagerduty.events)

    assert live_markup(message.text, message.blocks) == []
    assert limit_problems(message.text, message.blocks) == []
    shown = "\n".join(texts(message.text, message.blocks))
    assert "<!subteam^S0ONCALL>" in shown  # the route's mention is configuration: live
    assert "&lt;!channel&gt;" in shown and "&lt;https://evil.example|Runbook&gt;" in shown
    assert "&amp;lt;!here&amp;gt;" in shown  # a typed entity shows as typed
    [console] = urls(message.blocks)  # the alarm's name is quoted into the console's own URL
    assert urlsplit(console).hostname == "us-east-1.console.aws.amazon.com"
    assert console.endswith(
        "#alarmsV2:alarm/prod-api%20%3C%21channel%3E%20%3Chttps%3A%2F%2Fevil.example%7CRunbook%3E"
    )
    # PagerDuty is not Slack: it gets the words as they were written.
    assert pagerduty.events[0]["payload"]["summary"].startswith(f"ALARM: {name}")

    send(
        service,
        sns_signer,
        alarm(name, "OK", T0 + timedelta(minutes=1), description=HOSTILE, reason=HOSTILE),
    )
    [reply] = wait_for(lambda: slack.thread("C0PRODALERTS", message.ts))
    assert "ALARM → OK" in reply.text
    assert live_markup(reply.text, reply.blocks) == []
    wait_for(lambda: outbox_empty(service))
    [updated] = slack.channel_messages("C0PRODALERTS")
    assert live_markup(updated.text, updated.blocks) == []


def test_a_crafted_region_in_the_arn_gives_no_console_link(
    service: LiveService, sns_signer: SnsSigner, slack: SlackEmulator, pagerduty: PagerDutyEmulator
) -> None:
    send(service, sns_signer, alarm("prod-a", "ALARM", T0, region="evil.example/x"))
    [message] = wait_for(lambda: slack.channel_messages("C0PRODALERTS"))
    [event] = wait_for(lambda: pagerduty.events)
    assert urls(message.blocks) == []  # no console button, no link
    assert "links" not in event
    assert "evil.example/x" in "\n".join(texts(message.text, message.blocks))  # shown as text


def test_the_console_link_follows_the_region_not_the_arn_partition(
    service: LiveService, sns_signer: SnsSigner, slack: SlackEmulator
) -> None:
    body = json.loads(alarm("prod-b", "ALARM", T0, region="us-west-2"))
    body["AlarmArn"] = "arn:evil.example:cloudwatch:us-west-2:123456789012:alarm:prod-b"
    send(service, sns_signer, json.dumps(body))
    [message] = wait_for(lambda: slack.channel_messages("C0PRODALERTS"))
    assert urls(message.blocks) == [
        "https://us-west-2.console.aws.amazon.com/cloudwatch/home?region=us-west-2"
        "#alarmsV2:alarm/prod-b"
    ]


def test_a_very_long_reason_is_cut_to_fit_and_the_message_is_taken(
    service: LiveService, sns_signer: SnsSigner, slack: SlackEmulator
) -> None:
    reason = "threshold & <crossed> " * 2000  # 44,000 characters of entities to cut through
    description = "d&" * 5000
    send(service, sns_signer, alarm("prod-c", "ALARM", T0, reason=reason, description=description))
    [message] = wait_for(lambda: slack.channel_messages("C0PRODALERTS"))
    assert limit_problems(message.text, message.blocks) == []
    assert live_markup(message.text, message.blocks) == []
    body = message.blocks[1]["text"]["text"]
    assert body.endswith("…") and len(body) <= 3000
    assert "&amp;" in body and not body[:-1].endswith(("&", "&a", "&am", "&amp", "&l", "&lt"))
    send(service, sns_signer, alarm("prod-c", "OK", T0 + timedelta(minutes=1), reason=reason))
    [reply] = wait_for(lambda: slack.thread("C0PRODALERTS", message.ts))
    assert limit_problems(reply.text, reply.blocks) == [] and len(reply.text) <= 3000


def test_a_notice_with_a_hostile_subject_and_body_is_posted_inert(
    service: LiveService, sns_signer: SnsSigner, slack: SlackEmulator
) -> None:
    send(service, sns_signer, f"Backup done {HOSTILE}" * 200, subject=f"Backup {HOSTILE}")
    [notice] = wait_for(lambda: slack.channel_messages("C0ALERTS"))
    assert live_markup(notice.text, notice.blocks) == []
    assert limit_problems(notice.text, notice.blocks) == []
    assert "Backup &lt;!channel&gt;" in notice.blocks[0]["text"]["text"]


def test_composite_and_metric_math_words_are_escaped(
    service: LiveService, sns_signer: SnsSigner, slack: SlackEmulator
) -> None:
    for kind, name in (("composite", "prod-<!here>-composite"), ("metric-math", "prod-<!here>-m")):
        send(service, sns_signer, alarm_message(name=name, state="ALARM", at=T0, kind=kind))
    messages = wait_for(lambda: len(slack.channel_messages("C0PRODALERTS")) == 2 and slack)
    for message in messages.channel_messages("C0PRODALERTS"):
        assert live_markup(message.text, message.blocks) == []
        assert "&lt;!here&gt;" in message.text
