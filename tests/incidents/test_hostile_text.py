"""Incidents fed by an attacker: PagerDuty titles, names and notes, and what people type,
reach Slack as text; opsbot's own mentions stay live."""

from __future__ import annotations

from sandbox.pagerduty import PagerDutyEmulator
from sandbox.slack import SlackEmulator
from sandbox.sns import SnsSigner
from tests.incidents.helpers import (
    ack_text,
    command,
    outbox_idle,
    page,
    responses_to,
)
from tests.incidents.test_webhooks import webhook_service  # noqa: F401 (a fixture)
from tests.slack_checks import limit_problems, live_markup, texts, urls
from tests.support import LiveService, wait_for

PINGS = "<!channel> <!here> <@U0BOB> <https://evil.example|Runbook>"


def _shown(message: dict[str, object] | object) -> str:
    text = getattr(message, "text", None) or (
        message.get("text") if isinstance(message, dict) else ""
    )
    blocks = getattr(message, "blocks", None) or (
        message.get("blocks") if isinstance(message, dict) else None
    )
    return "\n".join(texts(str(text or ""), blocks))  # type: ignore[arg-type]


def test_a_pagerduty_incident_with_a_hostile_title_names_and_note_is_posted_inert(
    webhook_service: LiveService,  # noqa: F811
    slack: SlackEmulator,
    pagerduty: PagerDutyEmulator,
) -> None:
    pagerduty.add_user("PMAL", f"Mallory <@U0ALICE> {PINGS}", "mallory@evil.example")
    pagerduty.add_service("PEVIL", f"svc {PINGS}", routing_key="R0EVIL")
    pd_incident = pagerduty.open_in_app("PEVIL", title=f"Sale ends {PINGS}", user_id="PMAL")
    [message] = wait_for(lambda: slack.channel_messages("C0ALERTS"))
    pagerduty.add_note_in_app(pd_incident["id"], content=f"look {PINGS} ```", user_id="PMAL")
    [note] = wait_for(lambda: slack.thread("C0ALERTS", message.ts))
    wait_for(lambda: outbox_idle(webhook_service))
    [message] = slack.channel_messages("C0ALERTS")

    for posted in (message, note):
        assert live_markup(posted.text, posted.blocks) == []
        assert "<@U0ALICE>" not in _shown(posted) and "<@U0BOB>" not in _shown(posted)
        assert limit_problems(posted.text, posted.blocks) == []
    assert "Sale ends &lt;!channel&gt;" in message.text
    assert "by Mallory &lt;@U0ALICE&gt;" in _shown(message)
    assert "svc &lt;!channel&gt;" in _shown(message)
    # The emulator's html_url is on loopback, not on PagerDuty's host: no link to it.
    assert urls(message.blocks) == []
    assert f"#{pd_incident['number']}" in _shown(message)
    assert "look &lt;!channel&gt;" in note.text

    url = slack.response_url()
    command(webhook_service, "/incident", "timeline 1", response_url=url)
    [timeline] = wait_for(lambda: responses_to(slack, url))
    assert live_markup(timeline["text"], timeline["blocks"]) == []
    assert "<@U0ALICE>" not in _shown(timeline)


def test_a_note_typed_in_slack_reaches_the_thread_and_timelines_inert(
    service: LiveService, sns_signer: SnsSigner, slack: SlackEmulator, pagerduty: PagerDutyEmulator
) -> None:
    incident_id, message = page(service, sns_signer, slack, pagerduty)
    # As Slack sends it: markup the person picked is live, what they typed is entities.
    note = f"{PINGS} ```\n</code> `x` &amp;lt; 5 &lt; 6 &amp;&amp;"
    command(service, "/incident", f"note {incident_id} {note}", response_url=slack.response_url())
    [reply] = wait_for(lambda: slack.thread("C0PRODALERTS", message.ts))
    assert reply.text.startswith(":memo: Note from <@U0ALICE>: &lt;!channel&gt;")
    assert live_markup(reply.text, reply.blocks) == []  # only opsbot's mention of the author
    assert "<@U0BOB>" not in reply.text
    # Escaped once on the way out: Slack shows "&lt; 5 < 6 &&", what was typed.
    assert reply.text.endswith("&amp;lt; 5 &lt; 6 &amp;&amp;")
    [post] = wait_for(lambda: [c for c in pagerduty.rest_calls if c["method"] == "POST"])
    # PagerDuty gets the words as typed, not Slack's entities.
    assert post["body"]["note"]["content"].startswith("<!channel>")
    assert post["body"]["note"]["content"].endswith("&lt; 5 < 6 &&")

    url = slack.response_url()
    command(service, "/incident", f"timeline {incident_id}", response_url=url)
    [timeline] = wait_for(lambda: responses_to(slack, url))
    assert live_markup(timeline["text"], timeline["blocks"]) == []
    assert "note by <@U0ALICE>: &lt;!channel&gt;" in _shown(timeline)

    md_url = slack.response_url()
    command(service, "/incident", f"timeline {incident_id} markdown", response_url=md_url)
    [markdown] = wait_for(lambda: responses_to(slack, md_url))
    text = markdown["text"]
    assert text.startswith("```\n## Incident #") and text.endswith("\n```")
    assert text.count("```") == 2  # the note's ``` cannot close the block
    assert "<" not in text and ">" not in text
    assert "note by @alice: &lt;!channel&gt;" in text  # Slack shows it as <!channel>
    assert "[Runbook](" not in text  # the note's link is not made into a Markdown link


def test_a_hostile_declared_summary_is_a_title_not_markup(
    service: LiveService, slack: SlackEmulator, pagerduty: PagerDutyEmulator
) -> None:
    url = slack.response_url()
    command(service, "/incident", f"declare Payments down {PINGS}", response_url=url)
    [message] = wait_for(lambda: slack.channel_messages("C0PRODALERTS"))
    assert live_markup(message.text, message.blocks) == []
    assert "<@U0BOB>" not in _shown(message)
    assert "Declared from Slack by <@U0ALICE>." in _shown(message)  # opsbot's mention: live
    assert "<!subteam^S0ONCALL>" in _shown(message)  # the route's mention: configuration
    [reply] = wait_for(lambda: responses_to(slack, url))
    assert live_markup(reply["text"], reply.get("blocks")) == []
    assert pagerduty.events[0]["payload"]["summary"] == f"Payments down {PINGS}"


def test_usage_answers_echo_what_was_typed_inside_a_code_span_it_cannot_close(
    service: LiveService, slack: SlackEmulator
) -> None:
    url = slack.response_url()
    answer = ack_text(command(service, "/incident", "timeline 1 x`<!here>`y", response_url=url))
    assert answer.startswith("`x\u02cb&lt;!here&gt;\u02cby`: say `markdown`")
    answer = ack_text(command(service, "/incident", "zap`<!channel>", response_url=url))
    assert "Unknown subcommand `zap\u02cb&lt;!channel&gt;`." in answer
