"""`/oncall`, `@opsbot oncall` and `/opsbot` fed by an attacker: PagerDuty's policy,
schedule and user names and what is typed reach Slack as text (no ping, no link)."""

from __future__ import annotations

from typing import Any

from sandbox.pagerduty import PagerDutyEmulator
from sandbox.slack import SlackEmulator
from tests.deploys.test_hostile_text import PINGS, assert_inert
from tests.incidents.helpers import ack_text, command, responses_to
from tests.oncall.test_oncall import (  # noqa: F401  # fixtures
    ask,
    deliver,
    mention_event,
    oncall_config,
    oncall_service,
    user_message,
)
from tests.support import LiveService, event_body, wait_for

# Bob is on call in the emulator's world: his mention is opsbot's. Eve's is typed.
EVIL = PINGS.replace("<@U0BOB>", "<@U0EVE>")


def inert(text: str | None, blocks: list[dict[str, Any]] | None = None) -> str:
    return assert_inert(text, blocks, typed="<@U0EVE>")


def evil_rota(pagerduty: PagerDutyEmulator) -> None:
    pagerduty.add_user("PMAL", f"Mallory {EVIL}", "mallory@evil.example")
    pagerduty.add_escalation_policy("PEVIL", f"Payments {EVIL}")
    pagerduty.add_schedule("PEVILS", "<https://evil.example|weekly>")
    pagerduty.add_oncall(policy_id="PEVIL", level=1, user_id="PMAL", schedule_id="PEVILS")


def test_pagerduty_names_are_shown_inert(
    oncall_service: LiveService,  # noqa: F811
    slack: SlackEmulator,
    pagerduty: PagerDutyEmulator,
) -> None:
    evil_rota(pagerduty)
    reply = ask(oncall_service, slack, "")
    shown = inert(reply["text"], reply["blocks"])
    assert "*Payments &lt;!channel&gt; &lt;!here&gt;" in shown
    assert "Mallory &lt;!channel&gt;" in shown
    assert "(&lt;https://evil.example|weekly&gt;)" in shown

    reply = ask(oncall_service, slack, "<https://evil.example|weekly>")
    shown = inert(reply["text"], reply["blocks"])
    assert "On call for *&lt;https://evil.example|weekly&gt; (schedule)*" in shown


def test_typed_names_are_echoed_inert(
    oncall_service: LiveService,  # noqa: F811
    slack: SlackEmulator,
    pagerduty: PagerDutyEmulator,
) -> None:
    reply = ask(oncall_service, slack, "<!channel> & <@U0EVE>")
    assert inert(reply["text"]).startswith(
        "No team, schedule or escalation policy is called `&lt;!channel&gt; &amp; &lt;@U0EVE&gt;`."
    )

    pagerduty.faults.fail_next(4, status=500, calls=("/oncalls",))
    reply = ask(oncall_service, slack, "payments")
    inert(reply["text"], reply.get("blocks"))

    # A mention in a channel: the answer goes to the channel's thread, for all to see.
    text = "<@U0OPSBOT> who is on call for <!here> <https://evil.example|x>?"
    user_message(slack, "C0ALERTS", "1700000000.000300", text)
    body = event_body(mention_event("1700000000.000300", text), event_id="Ev0HOSTILE")
    assert deliver(oncall_service, body) == 200
    [reply_message] = wait_for(lambda: slack.thread("C0ALERTS", "1700000000.000300"))
    shown = inert(reply_message.text, reply_message.blocks)
    assert "`&lt;!here&gt; &lt;https://evil.example|x&gt;`" in shown


def test_opsbot_answers_show_pagerduty_names_and_typed_words_inert(
    oncall_service: LiveService,  # noqa: F811
    slack: SlackEmulator,
    pagerduty: PagerDutyEmulator,
) -> None:
    evil_rota(pagerduty)
    url = slack.response_url()
    answer = command(oncall_service, "/opsbot", "<!channel>", response_url=url)
    assert "Unknown subcommand `&lt;!channel&gt;`." in inert(ack_text(answer))
    answer = command(oncall_service, "/opsbot", "link-pagerduty <!here> x", response_url=url)
    assert inert(ack_text(answer)).startswith("`&lt;!here&gt; x` is not one email")

    # Mallory's own Slack email is her PagerDuty one: she may link it, nothing else.
    slack.add_user("U0MAL", "mallory", email="mallory@evil.example")
    for typed, expected in (
        ("link-pagerduty <!channel>@evil.example", "only the email of your own Slack profile"),
        ("link-pagerduty mallory@evil.example", "as *Mallory &lt;!channel&gt;"),
        ("link-pagerduty", "as *Mallory &lt;!channel&gt;"),
    ):
        url = slack.response_url()
        command(oncall_service, "/opsbot", typed, user_id="U0MAL", response_url=url)
        [reply] = wait_for(lambda url=url: responses_to(slack, url))
        assert expected in inert(reply["text"], reply.get("blocks"))
