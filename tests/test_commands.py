"""The command table (bot/commands.py) against what the bot registers, says and documents.

Every Bolt command the handlers register is in the table, in `/opsbot help` for
an admin who deploys, and in the README; others see less; a wrong argument and
`help` answer from the table, through signed slash commands and the Slack emulator.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from slack_bolt import App

from bot import commands
from bot.commands import COMMANDS, Right
from bot.config import parse_config
from bot.manifest import build_manifest
from bot.outbox.models import Delivery
from bot.settings import Settings
from bot.slack_text import unescape
from handlers.slack_events import build_bolt_app
from sandbox.slack import SlackEmulator
from tests.conftest import TEST_CONFIG
from tests.incidents.helpers import ack_text, command, responses_to
from tests.support import LiveService, wait_for

README = Path(__file__).resolve().parents[1] / "README.md"
ADMIN = "U0ALICE"  # an admin and a deployer of checkout/prod
MEMBER = "U0BOB"  # a full member with no configured right
GUEST = "U0GUEST"

CONFIG: dict[str, Any] = {
    **TEST_CONFIG,
    "rights": {"admins": {"users": [ADMIN]}},
    "apps": {
        "checkout": {
            "environments": {
                "prod": {
                    "cluster": "prod",
                    "service": "checkout",
                    "container": "app",
                    "repository": "checkout",
                    "deployers": {"users": [ADMIN]},
                }
            }
        }
    },
}


@pytest.fixture
def live(
    settings: Settings, make_service: Callable[..., LiveService], slack: SlackEmulator
) -> LiveService:
    slack.add_user(GUEST, "gina", email="gina@vendor.example", guest=True)
    return make_service(settings, parse_config(CONFIG))


def registered_commands(live: LiveService, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The slash commands the handlers register on a Bolt app, as Bolt is asked for them."""
    seen: list[str] = []
    register = App.command

    def recording(self: App, command: Any, *args: Any, **kwargs: Any) -> Any:
        seen.append(command)
        return register(self, command, *args, **kwargs)

    monkeypatch.setattr(App, "command", recording)
    assert build_bolt_app(live.runtime) is not None
    return seen


def readme_commands() -> list[str]:
    """The lines of the README's "In Slack" block under "## Commands"."""
    text = README.read_text()
    section = text.split("\n## Commands\n", 1)[1].split("\n## ", 1)[0]
    block = section.split("In Slack", 1)[1].split("From a shell:", 1)[0]
    return [line.strip() for line in block.splitlines() if line.startswith("    /")]


def help_for(live: LiveService, slack: SlackEmulator, user_id: str) -> str:
    url = slack.response_url()
    answer = command(live, "/opsbot", "help", user_id=user_id, response_url=url)
    assert ack_text(answer) == ""  # rights may ask Slack: the help comes after the ack
    [reply] = wait_for(lambda: responses_to(slack, url))
    assert reply["response_type"] == "ephemeral"
    # Placeholders reach Slack as text (`&lt;app&gt;`), never as markup.
    assert "<" not in str(reply["text"]).replace("<@", "").replace("<!subteam", "")
    return unescape(str(reply["text"]))


def test_every_registered_command_is_in_the_table_the_help_and_the_readme(
    live: LiveService, slack: SlackEmulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A command may have several listeners (its modal's, for the bare command, first).
    registered = sorted(set(registered_commands(live, monkeypatch)))
    assert registered == sorted(c.name for c in COMMANDS)
    shown = help_for(live, slack, ADMIN)
    readme = readme_commands()
    for name in registered:
        table = commands.command_named(name)
        for use in table.uses:
            assert f"`{use.usage}`" in shown, use.usage
            assert f"e.g. `{use.example}`" in shown, use.example
        lines = [line for line in readme if line.split()[0] == name]
        assert lines, f"README's command list lacks {name}"
        for verb in set(table.verbs) - {"help"}:
            assert any(re.search(rf"(^|[\s|]){re.escape(verb)}\b", x) for x in lines), (name, verb)
    assert "Not shown" not in shown


def test_a_guest_and_a_member_see_only_what_they_may_use(
    live: LiveService, slack: SlackEmulator
) -> None:
    everything = help_for(live, slack, ADMIN)
    member = help_for(live, slack, MEMBER)
    guest = help_for(live, slack, GUEST)
    assert len(guest) < len(member) < len(everything)
    for text in (guest, member):
        assert "`/incident list`" in text and "`/oncall [team or schedule]`" in text
        assert "`/deploy status <app> <env>`" in text and "`/flag list <app> <env>`" in text
        assert "• `/deploy <app>" not in text and "• `/flag on" not in text
        assert "• `/opsbot link-pagerduty @someone <email>`" not in text
        assert "• `/dbrole provision" not in text
        assert "need being a deployer of an app environment" in text
    # A full member may respond where they are in the channel, and declare (the defaults).
    assert "`/incident ack <id>`" in member and "`/incident declare <summary>" in member
    assert "`/opsbot status`" in member
    # A guest holds no incident right unless a route says `guests: true`.
    assert "• `/incident ack <id>`" not in guest and "• `/incident declare" not in guest
    assert "• `/opsbot status`" not in guest
    assert "`/incident ack`, `/incident resolve`, `/incident note` need the incident" in guest


@pytest.mark.parametrize(
    ("name", "text", "expected"),
    [
        ("/incident", "ack", "Usage: `/incident ack <id>`"),
        ("/incident", "frobnicate 42", commands.usage("/incident")),
        ("/deploy", "history checkout prod lots", commands.usage("/deploy")),
        ("/deploy", "checkout prod", commands.usage("/deploy")),
        ("/rollback", "checkout", commands.usage("/rollback")),
        ("/releases", "checkout prod", commands.usage("/releases")),
        ("/flag", "list checkout", commands.usage("/flag")),
        ("/dbrole", "drop checkout prod", commands.usage("/dbrole")),
        ("/opsbot", "hlep", commands.usage("/opsbot")),
        ("/opsbot", "unlink-pagerduty now", "Usage: `/opsbot unlink-pagerduty`"),
    ],
)
def test_a_wrong_argument_answers_the_commands_usage_and_does_nothing(
    live: LiveService, slack: SlackEmulator, name: str, text: str, expected: str
) -> None:
    url = slack.response_url()
    answer = command(live, name, text, user_id=ADMIN, response_url=url)
    assert unescape(expected) in unescape(ack_text(answer))
    # Nothing was queued behind the ack: a later command's answer comes, this one's never.
    later = slack.response_url()
    command(live, "/opsbot", "help", user_id=ADMIN, response_url=later)
    wait_for(lambda: responses_to(slack, later))
    assert responses_to(slack, url) == []
    with live.runtime.sessions() as db_session:
        payloads = db_session.scalars(sa.select(Delivery.payload)).all()
    assert [p for p in payloads if p.get("response_url") == url] == []


@pytest.mark.parametrize("name", [c.name for c in COMMANDS])
def test_each_commands_help_is_its_table_usage(
    live: LiveService, slack: SlackEmulator, name: str
) -> None:
    if name == "/opsbot":
        return  # `/opsbot help` is the whole list, tested above
    answer = command(live, name, "help", response_url=slack.response_url())
    assert ack_text(answer) == commands.usage(name)


def test_the_manifest_takes_its_commands_from_the_table() -> None:
    listed = build_manifest("https://opsbot.example.com")["features"]["slash_commands"]
    assert [(c["command"], c["description"], c["usage_hint"]) for c in listed] == [
        (c.name, c.summary, c.hint) for c in COMMANDS
    ]
    assert {c["command"] for c in listed if c["should_escape"]} == {"/opsbot"}


def test_help_names_the_rights_it_leaves_out() -> None:
    text = commands.help_text({Right.MEMBER}, unsure=True)
    assert "`/deploy`, `/deploy lock`, `/deploy unlock`, `/rollback`" in text
    assert "need the `admin` right (`rights.admins`)" in text
    assert "could not ask Slack" in text
    full = commands.help_text(set(Right))
    assert "Not shown" not in full and "could not ask Slack" not in full
