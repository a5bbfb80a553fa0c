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
import yaml

from bot import commands
from bot.cli import main
from bot.commands import COMMANDS, OWN, SEPARATE, Naming, Right
from bot.config import parse_config
from bot.manifest import build_manifest
from bot.outbox.models import Delivery
from bot.settings import Settings
from bot.slack_text import unescape
from handlers.modals import MODALS
from handlers.routing import Routes
from handlers.slack_events import build_bolt_app
from sandbox.pagerduty import PagerDutyEmulator
from sandbox.slack import SlackEmulator
from sandbox.slack_home import app_home_opened
from sandbox.sns import SnsSigner
from tests.conftest import SLACK_SIGNING_SECRET, TEST_CONFIG
from tests.incidents.helpers import ack_text, command, page, responses_to
from tests.support import LiveService, slack_headers, slash_command_body, wait_for

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


def typed(naming: Naming, name: str, text: str) -> tuple[str, str]:
    """The Slack command and the text a person sends for the table's `name` and `text`."""
    selector = naming.selector(name)
    return naming.slack_name(name), f"{selector} {text}".strip() if selector else text


def registered_commands(live: LiveService, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The slash commands the handlers register, as the Bolt app's routes are asked for them."""
    seen: list[str] = []
    register = Routes.command

    def recording(self: Routes, command: str, *args: Any, **kwargs: Any) -> Any:
        seen.append(command)
        return register(self, command, *args, **kwargs)

    monkeypatch.setattr(Routes, "command", recording)
    assert build_bolt_app(live.runtime) is not None
    return seen


def readme_commands() -> list[str]:
    """The lines of the README's "In Slack" block under "## Commands"."""
    text = README.read_text()
    section = text.split("\n## Commands\n", 1)[1].split("\n## ", 1)[0]
    block = section.split("In Slack", 1)[1].split("From a shell:", 1)[0]
    return [line.strip() for line in block.splitlines() if line.startswith("    /")]


def help_for(
    live: LiveService, slack: SlackEmulator, user_id: str, naming: Naming = SEPARATE
) -> str:
    url = slack.response_url()
    answer = command(live, *typed(naming, OWN, "help"), user_id=user_id, response_url=url)
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


# -- the deploy right in help: guests, and Slack unable to list a group ------------------------

DEPLOYERS_GROUP = "S0DEPLOYERS"
DEPLOY_LINE = "• `/deploy <app>"
UNSURE = "opsbot could not ask Slack about all of your rights just now"


def deployers_live(
    settings: Settings, make_service: Callable[..., LiveService], slack: SlackEmulator
) -> LiveService:
    """checkout/prod's deployers: the admin and the guest by id, and the member by group."""
    slack.add_user(GUEST, "gina", email="gina@vendor.example", guest=True)
    slack.add_usergroup(DEPLOYERS_GROUP, "deployers", [MEMBER])
    prod = CONFIG["apps"]["checkout"]["environments"]["prod"]
    deployers = {"users": [ADMIN, GUEST], "groups": [DEPLOYERS_GROUP]}
    apps = {"checkout": {"environments": {"prod": {**prod, "deployers": deployers}}}}
    return make_service(settings, parse_config({**CONFIG, "apps": apps}))


@pytest.mark.parametrize("status", [500, 429], ids=["internal", "rate-limited"])
def test_help_counts_the_deploy_right_as_unsure_while_slack_cannot_list_the_deployers(
    settings: Settings,
    make_service: Callable[..., LiveService],
    slack: SlackEmulator,
    status: int,
) -> None:
    live = deployers_live(settings, make_service, slack)
    slack.faults.fail_next(1000, status=status, calls=("usergroups.users.list",))

    shown = help_for(live, slack, MEMBER)

    assert DEPLOY_LINE not in shown and UNSURE in shown
    slack.faults.clear()  # Slack answers again: the member's group makes them a deployer
    shown = help_for(live, slack, MEMBER)
    assert DEPLOY_LINE in shown and UNSURE not in shown


def test_help_shows_a_guest_listed_as_a_deployer_no_deploy(
    settings: Settings, make_service: Callable[..., LiveService], slack: SlackEmulator
) -> None:
    live = deployers_live(settings, make_service, slack)

    shown = help_for(live, slack, GUEST)

    assert DEPLOY_LINE not in shown and "• `/rollback <app>" not in shown
    assert "need being a deployer of an app environment" in shown
    assert UNSURE not in shown
    assert DEPLOY_LINE in help_for(live, slack, ADMIN)


@pytest.mark.parametrize(
    ("name", "text", "expected"),
    [
        ("/incident", "ack", "Usage: `/incident ack <id>`"),
        ("/incident", "frobnicate 42", commands.usage("/incident", SEPARATE)),
        ("/deploy", "history checkout prod lots", commands.usage("/deploy", SEPARATE)),
        ("/deploy", "checkout prod", commands.usage("/deploy", SEPARATE)),
        ("/rollback", "checkout", commands.usage("/rollback", SEPARATE)),
        ("/releases", "checkout prod", commands.usage("/releases", SEPARATE)),
        ("/flag", "list checkout", commands.usage("/flag", SEPARATE)),
        ("/dbrole", "drop checkout prod", commands.usage("/dbrole", SEPARATE)),
        ("/opsbot", "hlep", commands.usage("/opsbot", SEPARATE)),
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
    assert ack_text(answer) == commands.usage(name, SEPARATE)


def test_the_manifest_takes_its_commands_from_the_table() -> None:
    listed = build_manifest("https://opsbot.example.com")["features"]["slash_commands"]
    assert [(c["command"], c["description"], c["usage_hint"]) for c in listed] == [
        (c.name, c.summary, c.hint) for c in COMMANDS
    ]
    assert {c["command"] for c in listed if c["should_escape"]} == {"/opsbot"}


def test_help_names_the_rights_it_leaves_out() -> None:
    text = commands.help_text({Right.MEMBER}, SEPARATE, unsure=True)
    assert "`/deploy`, `/deploy lock`, `/deploy unlock`, `/rollback`" in text
    assert "need the `admin` right (`rights.admins`)" in text
    assert "could not ask Slack" in text
    full = commands.help_text(set(Right), SEPARATE)
    assert "Not shown" not in full and "could not ask Slack" not in full


# -- what Slack calls the commands (the config's `commands:`) ------------------------------

NAMINGS = [SEPARATE, Naming("single", "ops"), Naming("prefixed", "ops")]
STYLES = [naming.style for naming in NAMINGS]
TABLE_NAMES = re.compile(r"`/(opsbot|incident|oncall|deploy|rollback|releases|flag|dbrole)\b")


def named_live(
    settings: Settings, make_service: Callable[..., LiveService], naming: Naming
) -> LiveService:
    named = {"style": naming.style, **({"prefix": naming.prefix} if naming.prefix else {})}
    return make_service(settings, parse_config({**CONFIG, "commands": named}))


@pytest.mark.parametrize("naming", NAMINGS, ids=STYLES)
def test_each_naming_registers_helps_and_manifests_the_table_alike(
    settings: Settings,
    make_service: Callable[..., LiveService],
    slack: SlackEmulator,
    monkeypatch: pytest.MonkeyPatch,
    naming: Naming,
) -> None:
    assert naming.problems() == []
    live = named_live(settings, make_service, naming)
    registered = registered_commands(live, monkeypatch)
    assert sorted(set(registered)) == sorted(naming.slack_names())
    # One listener each, under a shared name or not, and one per modal (its bare command).
    assert len(registered) == len(COMMANDS) + len(MODALS)
    shown = help_for(live, slack, ADMIN, naming)
    for table in COMMANDS:
        assert f"*{naming.typed(table.name)}* — {table.summary}" in shown
        for use in table.uses:
            assert f"`{naming.render(use.usage)}`" in shown, use.usage
            assert f"e.g. `{naming.render(use.example)}`" in shown, use.example
        if table.name == OWN:
            continue
        # The command's own help and a wrong argument's usage, asked as this naming takes them.
        answer = command(
            live, *typed(naming, table.name, "help"), response_url=slack.response_url()
        )
        assert ack_text(answer) == table.usage(naming)
        if naming.style != "separate":
            assert not TABLE_NAMES.search(ack_text(answer)), ack_text(answer)
    wrong = command(live, *typed(naming, "/dbrole", "drop checkout prod"), response_url="")
    assert unescape(commands.usage("/dbrole", naming)) in unescape(ack_text(wrong))
    if naming.style != "separate":
        assert not TABLE_NAMES.search(shown)
    listed = build_manifest("https://opsbot.example.com", naming)["features"]["slash_commands"]
    assert [c["command"] for c in listed] == list(naming.slack_names())
    socket = build_manifest(None, naming, socket_mode=True)
    assert socket["settings"]["socket_mode_enabled"] is True
    assert [c["command"] for c in socket["features"]["slash_commands"]] == list(
        naming.slack_names()
    )
    assert "url" not in str(socket)


@pytest.mark.parametrize("naming", NAMINGS, ids=STYLES)
def test_a_command_named_as_another_style_has_is_not_answered(
    settings: Settings,
    make_service: Callable[..., LiveService],
    slack: SlackEmulator,
    naming: Naming,
) -> None:
    live = named_live(settings, make_service, naming)
    others = {n.slack_name(c.name) for n in NAMINGS for c in COMMANDS} - set(naming.slack_names())
    assert others
    url = slack.response_url()
    for name in sorted(others):
        body = slash_command_body(name, "lock checkout prod mine", user_id=ADMIN, response_url=url)
        answer = live.post(
            "/slack/events", content=body, headers=slack_headers(SLACK_SIGNING_SECRET, body)
        )
        assert answer.status_code == 404, (name, answer.text)  # Bolt: no listener for it
    later = slack.response_url()
    command(live, *typed(naming, OWN, "help"), user_id=ADMIN, response_url=later)
    wait_for(lambda: responses_to(slack, later))
    assert responses_to(slack, url) == []
    with live.runtime.sessions() as db_session:
        payloads = db_session.scalars(sa.select(Delivery.payload)).all()
    assert [p for p in payloads if p.get("response_url") == url] == []
    status = command(live, *typed(naming, "/deploy", "status checkout prod"), response_url=later)
    assert status.status_code == 200  # the same words, under this naming's name, are taken


@pytest.mark.parametrize(
    ("named", "why"),
    [
        ({"style": "single"}, "needs a prefix"),
        ({"style": "prefixed", "prefix": "Ops"}, "is not a Slack command name"),
        ({"style": "single", "prefix": "/ops"}, "is not a Slack command name"),
        ({"style": "single", "prefix": "ops bot"}, "is not a Slack command name"),
        ({"style": "prefixed", "prefix": "a" * 23}, "longer than Slack's 32 characters"),
        ({"style": "single", "prefix": "deploy"}, "/deploy is the name of opsbot's own"),
        ({"style": "prefixed", "prefix": "incident"}, "/incident is the name of opsbot's own"),
        ({"style": "single", "prefix": "remind"}, "/remind is one of Slack's own commands"),
        ({"style": "sideways", "prefix": "ops"}, "commands.style"),
    ],
)
def test_a_prefix_slack_cannot_take_is_refused_by_check_config(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], named: dict[str, str], why: str
) -> None:
    path = tmp_path / "opsbot.yaml"
    path.write_text(yaml.safe_dump({**CONFIG, "commands": named}))
    with pytest.raises(SystemExit) as exited:
        main(["check-config", str(path)])
    assert exited.value.code == 2
    assert why in capsys.readouterr().err


def test_the_table_leaves_room_for_one_command() -> None:
    # In the single style opsbot's own verbs and the other commands share the first word.
    own = set(commands.command_named(OWN).verbs)
    assert own.isdisjoint(c.name.removeprefix("/") for c in COMMANDS)
    for table in COMMANDS:
        for use in table.uses:
            assert use.usage.split()[0] == table.name and use.example.split()[0] == table.name


def test_opsbot_manifest_names_the_commands_as_the_config_does(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "opsbot.yaml"
    path.write_text(yaml.safe_dump({**CONFIG, "commands": {"style": "prefixed", "prefix": "acme"}}))
    assert main(["manifest", "--socket-mode", "--config", str(path)]) == 0
    manifest = yaml.safe_load(capsys.readouterr().out)
    assert manifest["settings"]["socket_mode_enabled"] is True
    names = [c["command"] for c in manifest["features"]["slash_commands"]]
    assert names == list(Naming("prefixed", "acme").slack_names())
    assert names[:2] == ["/acme", "/acme-incident"]
    assert main(["manifest", "--url", "https://opsbot.example.com", "--config", str(path)]) == 0
    over_http = yaml.safe_load(capsys.readouterr().out)
    assert over_http["settings"]["interactivity"]["request_url"].endswith("/slack/events")
    assert main(["manifest", "--config", str(path)]) == 2  # neither a URL nor Socket Mode
    assert "--socket-mode" in capsys.readouterr().err


@pytest.mark.parametrize("naming", NAMINGS[1:], ids=STYLES[1:])
def test_what_opsbot_says_names_the_commands_as_the_workspace_types_them(
    settings: Settings,
    make_service: Callable[..., LiveService],
    slack: SlackEmulator,
    pagerduty: PagerDutyEmulator,
    sns_signer: SnsSigner,
    naming: Naming,
) -> None:
    live = named_live(settings, make_service, naming)
    # An acknowledgement: a wrong argument's own words name /deploy history.
    wrong = command(live, *typed(naming, "/deploy", "history checkout prod many"), response_url="")
    assert f"`{naming.typed('/deploy')} history" in ack_text(wrong)
    assert not TABLE_NAMES.search(ack_text(wrong)), ack_text(wrong)
    # An answer through the outbox: the timeline names its Markdown export.
    incident_id, _message = page(live, sns_signer, slack, pagerduty)
    url = slack.response_url()
    command(live, *typed(naming, "/incident", f"timeline {incident_id}"), response_url=url)
    [reply] = wait_for(lambda: responses_to(slack, url))
    assert f"`{naming.typed('/incident')} timeline {incident_id} markdown`" in str(reply)
    assert not TABLE_NAMES.search(str(reply))
    # App Home, published with views.publish.
    body = app_home_opened(ADMIN, event_id="EvNAMED")
    headers = {**slack_headers(SLACK_SIGNING_SECRET, body), "Content-Type": "application/json"}
    assert live.post("/slack/events", content=body, headers=headers).status_code == 200
    home = wait_for(lambda: slack.home_of(ADMIN))
    assert f"`{naming.typed('/opsbot')} help`" in str(home)
    assert not TABLE_NAMES.search(str(home))
