"""Every slash command opsbot answers: its uses, a one-line example of each, the right each needs.

This table is the one source of `/opsbot help`, of each command's own `help`
and usage answer, and of the Slack app manifest's slash commands
(bot/manifest.py); a test holds the handlers' registrations and the README's
command list to it.

The table names commands as they are by default (`/deploy`); a `Naming` (the
config's `commands:` section) says what Slack calls them: the same, one command
for all (`/ops deploy …`), or a prefix on each (`/ops-deploy …`). Every text
shown to people is written through it.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Literal

from bot.slack_text import (
    BUTTON_MAX,
    CONTEXT_MAX,
    FIELD_MAX,
    HEADER_MAX,
    MESSAGE_MAX,
    SECTION_MAX,
    clip,
    escape,
)


class Right(StrEnum):
    """What a use of a command needs; bot/command_rights.py says who holds which."""

    ANYONE = "anyone"  # every member of the workspace, guests too
    MEMBER = "member"  # full members: not guests
    DECLARE = "declare"  # the incident `declare` right on some route
    RESPOND = "respond"  # the incident `respond` right on some route
    SILENCE = "silence"  # the incident `silence` right on some route
    DEPLOY = "deploy"  # a deployer of some app environment (`apps.*.environments.*.deployers`)
    ADMIN = "admin"  # `rights.admins`


# How help names a right the caller does not hold.
RIGHT_NAMES: dict[Right, str] = {
    Right.MEMBER: "full membership of the workspace",
    Right.DECLARE: "the incident `declare` right",
    Right.RESPOND: "the incident `respond` right",
    Right.SILENCE: "the incident `silence` right",
    Right.DEPLOY: "being a deployer of an app environment",
    Right.ADMIN: "the `admin` right (`rights.admins`)",
}


@dataclass(frozen=True)
class Use:
    """One way to use a command: `verb` is its subcommand (None: the command's bare form)."""

    verb: str | None
    usage: str
    does: str
    example: str
    right: Right = Right.ANYONE

    def line(self, naming: Naming) -> str:
        # Placeholders (`<app>`) are text to Slack, not markup.
        return f"`{escape(naming.render(self.usage))}` — {self.does}"


@dataclass(frozen=True)
class SlashCommand:
    name: str
    summary: str  # the manifest's description and the heading of the command's help
    hint: str  # the manifest's usage hint
    uses: tuple[Use, ...]
    escaped: bool = False  # Slack sends mentions as `<@U123|name>` (the manifest's should_escape)

    @property
    def verbs(self) -> tuple[str, ...]:
        return tuple(use.verb for use in self.uses if use.verb)

    def usage(self, naming: Naming) -> str:
        """The command's own help: every use, one line each."""
        heading = f"*{naming.typed(self.name)}* — {self.summary}"
        return "\n".join([heading, *(use.line(naming) for use in self.uses)])

    def usage_of(self, verb: str | None, naming: Naming) -> str:
        """`Usage:` and the lines of `verb` (every line when the command has no such verb)."""
        lines = [use.line(naming) for use in self.uses if verb is not None and use.verb == verb]
        if not lines:
            return self.usage(naming)
        return "Usage: " + "\n".join(lines)


COMMANDS: tuple[SlashCommand, ...] = (
    SlashCommand(
        "/opsbot",
        "opsbot help, status and your PagerDuty identity",
        "help | status | link-pagerduty [email] | unlink-pagerduty",
        (
            Use("help", "/opsbot help", "the commands you may use", "/opsbot help"),
            Use(
                "status",
                "/opsbot status",
                "opsbot's own health: outbox, dead deliveries (admins: Retry), Slack auth, "
                "instances",
                "/opsbot status",
                Right.MEMBER,
            ),
            Use(
                "link-pagerduty",
                "/opsbot link-pagerduty [<your Slack email>]",
                "show who you are in PagerDuty, or link yourself by your own Slack email",
                "/opsbot link-pagerduty alice@example.com",
            ),
            Use(
                "link-pagerduty",
                "/opsbot link-pagerduty @someone <email>",
                "link someone else to a PagerDuty email",
                "/opsbot link-pagerduty @bob bob@example.com",
                Right.ADMIN,
            ),
            Use(
                "unlink-pagerduty",
                "/opsbot unlink-pagerduty",
                "forget your link to PagerDuty",
                "/opsbot unlink-pagerduty",
            ),
            Use(
                "unlink-pagerduty",
                "/opsbot unlink-pagerduty @someone",
                "forget someone else's link",
                "/opsbot unlink-pagerduty @bob",
                Right.ADMIN,
            ),
        ),
        escaped=True,
    ),
    SlashCommand(
        "/incident",
        "Declare, acknowledge, resolve or list incidents",
        "list | ack <id> | resolve <id> [note] | note <id> <text> | timeline <id> | declare … "
        "| silence … | silences",
        (
            Use("list", "/incident list", "open incidents, newest first", "/incident list"),
            Use(
                "ack",
                "/incident ack <id>",
                "acknowledge in PagerDuty, as you",
                "/incident ack 42",
                Right.RESPOND,
            ),
            Use(
                "resolve",
                "/incident resolve <id> [note]",
                "resolve, with an optional resolution note",
                "/incident resolve 42 rolled back to 1.4.1",
                Right.RESPOND,
            ),
            Use(
                "note",
                "/incident note <id> <text>",
                "add a note to the timeline and to PagerDuty "
                "(in an incident's own channel: no number)",
                "/incident note 42 the database failed over at 10:02",
                Right.RESPOND,
            ),
            Use(
                "timeline",
                "/incident timeline <id> [markdown]",
                "the incident's events (Markdown: for a postmortem)",
                "/incident timeline 42 markdown",
            ),
            Use(
                "declare",
                "/incident declare <summary> [--severity critical|error|warning|info] "
                "[--route NAME]",
                "open an incident and page on-call",
                "/incident declare Checkout is down --severity critical --route prod",
                Right.DECLARE,
            ),
            Use(
                "silence",
                "/incident silence <route|alarm-glob> [in <duration>|at <time>] for <duration> "
                "reason <text>",
                "a maintenance window: matching alarms are posted and recorded but not paged "
                "(paged at its end if still firing)",
                "/incident silence prod-db-* at 22:00 for 2h reason database upgrade",
                Right.SILENCE,
            ),
            Use(
                "silence",
                "/incident silence end <id>",
                "end a maintenance window early (or cancel a planned one)",
                "/incident silence end 3",
                Right.SILENCE,
            ),
            Use(
                "silences",
                "/incident silences",
                "maintenance windows in force and planned, with End buttons",
                "/incident silences",
            ),
            Use("help", "/incident help", "this message", "/incident help"),
        ),
    ),
    SlashCommand(
        "/oncall",
        "Who is on call now and next",
        "[team or schedule]",
        (
            Use(
                None,
                "/oncall [team or schedule]",
                "who is on call now and next",
                "/oncall payments",
            ),
            Use("help", "/oncall help", "this message", "/oncall help"),
        ),
    ),
    SlashCommand(
        "/deploy",
        "Deploy an image to an app environment",
        '<app> <env> <tag> [--force "reason"] | status | history | lock | unlock',
        (
            Use(
                None,
                '/deploy <app> <env> <tag> [--force "<reason>"]',
                "deploy an image by tag",
                "/deploy checkout prod 1.4.2",
                Right.DEPLOY,
            ),
            Use(
                "status",
                "/deploy status <app> <env>",
                "what runs now, since when, by whom",
                "/deploy status checkout prod",
            ),
            Use(
                "history",
                "/deploy history <app> <env> [n]",
                "the last deployments",
                "/deploy history checkout prod 5",
            ),
            Use(
                "lock",
                "/deploy lock <app> <env> <reason>",
                "hold the environment: nobody else deploys it",
                "/deploy lock checkout prod migrating the orders table",
                Right.DEPLOY,
            ),
            Use(
                "unlock",
                "/deploy unlock <app> <env>",
                "release it",
                "/deploy unlock checkout prod",
                Right.DEPLOY,
            ),
            Use("help", "/deploy help", "this message", "/deploy help"),
        ),
    ),
    SlashCommand(
        "/rollback",
        "Roll an app environment back to its previous release",
        '<app> <env> [deployment-id] [--force "reason"]',
        (
            Use(
                None,
                '/rollback <app> <env> [deployment-id] [--force "<reason>"]',
                "back to the last successful deployment (or the one named)",
                "/rollback checkout prod",
                Right.DEPLOY,
            ),
            Use("help", "/rollback help", "this message", "/rollback help"),
        ),
    ),
    SlashCommand(
        "/releases",
        "Recent images of an app and where each runs",
        "<app>",
        (
            Use(
                None,
                "/releases <app>",
                "recent images and where each runs",
                "/releases checkout",
            ),
            Use("help", "/releases help", "this message", "/releases help"),
        ),
    ),
    SlashCommand(
        "/flag",
        "List or change feature flags (AWS AppConfig or SSM parameters)",
        "list | on | off | set <app> <env> [flag] [attr=value]",
        (
            Use(
                "list",
                "/flag list <app> <env>",
                "every flag, on/off, its attributes, who changed it last",
                "/flag list checkout prod",
            ),
            Use(
                "on",
                "/flag on <app> <env> <flag>",
                "turn a flag on",
                "/flag on checkout prod new-cart",
                Right.DEPLOY,
            ),
            Use(
                "off",
                "/flag off <app> <env> <flag>",
                "turn a flag off",
                "/flag off checkout prod new-cart",
                Right.DEPLOY,
            ),
            Use(
                "set",
                "/flag set <app> <env> <flag> <attribute>=<value> [...]",
                "set attributes (AppConfig)",
                "/flag set checkout prod new-cart percent=25",
                Right.DEPLOY,
            ),
            Use("help", "/flag help", "this message", "/flag help"),
        ),
    ),
    SlashCommand(
        "/dbrole",
        "Check or provision an app's database roles",
        "check | provision <app> <env>",
        (
            Use(
                "check",
                "/dbrole check <app> <env>",
                "roles, attributes, grants and whether the app's tables are reachable; "
                "changes nothing",
                "/dbrole check checkout prod",
            ),
            Use(
                "provision",
                "/dbrole provision <app> <env>",
                "create or repair the schema, the migrator and app roles and their grants "
                "(idempotent)",
                "/dbrole provision checkout prod",
                Right.DEPLOY,
            ),
            Use("help", "/dbrole help", "this message", "/dbrole help"),
        ),
    ),
)

BY_NAME: dict[str, SlashCommand] = {command.name: command for command in COMMANDS}

# The table's own command: opsbot's help and housekeeping. With a prefix, it is
# the prefix alone (`/ops help`); in `single` style its verbs are the prefix's own.
OWN = "/opsbot"

# Slack reserves these for itself: an app's command of the same name is never sent.
SLACK_BUILTINS = frozenset(
    [
        "/active",
        "/all",
        "/apps",
        "/archive",
        "/away",
        "/call",
        "/close",
        "/collapse",
        "/dm",
        "/dnd",
        "/expand",
        "/feed",
        "/feedback",
        "/giphy",
        "/help",
        "/invite",
        "/join",
        "/kick",
        "/leave",
        "/me",
        "/msg",
        "/mute",
        "/open",
        "/part",
        "/prefs",
        "/remind",
        "/remove",
        "/rename",
        "/search",
        "/shortcuts",
        "/shrug",
        "/star",
        "/status",
        "/topic",
        "/who",
    ]
)
SLACK_NAME_MAX = 32  # characters, the slash included (the manifest's limit)
PREFIX = re.compile(r"^[a-z0-9][a-z0-9_-]*$")

Style = Literal["separate", "single", "prefixed"]

# A command of the table named in backticks in a text shown to people (`/deploy history …`),
# the longest names first so that `/opsbot` is not read as a shorter one.
MENTION = re.compile(
    "`("
    + "|".join(re.escape(c.name) for c in sorted(COMMANDS, key=lambda c: -len(c.name)))
    + r")(?![\w-])"
)


@dataclass(frozen=True)
class Naming:
    """What Slack calls the table's commands.

    `separate`: the table's own names (`/deploy`, `/flag` …). `single`: one
    command, `/<prefix>`, whose first word picks the table's command (`/ops
    deploy …`; opsbot's own verbs stay first words: `/ops help`). `prefixed`:
    `/<prefix>-deploy`, `/<prefix>-flag` …, and `/<prefix>` for opsbot's own.
    """

    style: Style = "separate"
    prefix: str | None = None

    def slack_name(self, name: str) -> str:
        """The Slack command that carries the table's command `name`."""
        if self.style == "separate" or self.prefix is None:
            return name
        if self.style == "single" or name == OWN:
            return f"/{self.prefix}"
        return f"/{self.prefix}-{name.removeprefix('/')}"

    def selector(self, name: str) -> str | None:
        """`single` style: the first word that picks `name` (None: opsbot's own, other styles)."""
        if self.style != "single" or name == OWN:
            return None
        return name.removeprefix("/")

    def typed(self, name: str) -> str:
        """What a person types to start `name`: `/deploy`, `/ops deploy` or `/ops-deploy`."""
        selector = self.selector(name)
        head = self.slack_name(name)
        return f"{head} {selector}" if selector else head

    def render(self, text: str) -> str:
        """A usage line or example of the table (`/deploy lock <app>`) as people type it here."""
        for command in COMMANDS:
            if text == command.name or text.startswith(command.name + " "):
                return self.typed(command.name) + text[len(command.name) :]
        return text

    @property
    def is_default(self) -> bool:
        return self.slack_name("/deploy") == "/deploy"

    def named(self, text: str) -> str:
        """`text` with every command shown in backticks (`/deploy history …`) as typed here."""
        if self.is_default or "`/" not in text:
            return text
        return MENTION.sub(lambda found: "`" + self.typed(found.group(1)), text)

    def named_body(self, body: Any) -> Any:
        """`body` (a message, an answer, a view) with the commands its texts quote named as
        this workspace types them, every text still within Slack's limit.

        Only display text is renamed: a string under a `text` key (the message's text, a
        text object's). Values, action ids, URLs and metadata carry what a click hands
        back, and renaming or cutting them would break it. Renaming comes after the text
        was cut to fit, and lengthens each command it names (`/deploy` becomes `/ops
        deploy`): outside text full of them would pass the limit, and Slack would refuse
        the whole message or view. A lengthened text is cut again: to its limit where
        TEXT_LIMITS knows it, else to its length before.
        """
        if self.is_default:
            return body
        return _named(self, body, holder="", limit=None, key="")

    def slack_names(self) -> tuple[str, ...]:
        """Every Slack command registered, in the table's order, each once."""
        return tuple(dict.fromkeys(self.slack_name(c.name) for c in COMMANDS))

    def problems(self) -> list[str]:
        """Why Slack or the table cannot work with this naming ([] when they can)."""
        if self.style == "separate":
            return []
        if self.prefix is None:
            return [f"prefix: the `{self.style}` style needs a prefix, e.g. ops"]
        if not PREFIX.match(self.prefix):
            return [
                f"prefix: {self.prefix!r} is not a Slack command name: lower-case letters, "
                "digits, - and _, starting with a letter or digit, without the slash"
            ]
        problems: list[str] = []
        names = self.slack_names()
        for slack_name in names:
            if len(slack_name) > SLACK_NAME_MAX:
                problems.append(
                    f"prefix: {slack_name} is longer than Slack's {SLACK_NAME_MAX} characters"
                )
            if slack_name in SLACK_BUILTINS:
                problems.append(f"prefix: {slack_name} is one of Slack's own commands")
            if slack_name != OWN and slack_name in BY_NAME:
                problems.append(
                    f"prefix: {slack_name} is the name of opsbot's own {slack_name} in the "
                    "separate style: choose a prefix no command has"
                )
        own_verbs = set(BY_NAME[OWN].verbs)
        for command in COMMANDS:
            selector = self.selector(command.name)
            if selector is not None and selector in own_verbs:
                problems.append(f"{command.name} collides with `{self.typed(OWN)} {selector}`")
        return problems


SEPARATE = Naming()

HELP_HEADING = "*opsbot* — incidents and releases from Slack. The commands you may use:"
HELP_FOOTER = (
    "Alarms arrive by themselves: CloudWatch → SNS → opsbot → this workspace and PagerDuty."
)


def _head(usage: str) -> str:
    """A usage line up to its first placeholder: `/deploy lock <app> <env>` -> `/deploy lock`."""
    return re.split(r" [<\[]", usage, maxsplit=1)[0]


def command_named(name: str) -> SlashCommand:
    """The table's entry for `name` (KeyError for a command opsbot does not have)."""
    return BY_NAME[name]


def usage(name: str, naming: Naming) -> str:
    """A command's own help, from the table, as `naming` names it."""
    return BY_NAME[name].usage(naming)


def help_text(held: Iterable[Right], naming: Naming, *, unsure: bool = False) -> str:
    """`/opsbot help` for someone holding `held`: only the uses they may make, with an example.

    Uses needing a right they lack are left out; one line at the end names those
    rights, so nobody mistakes a hidden command for a missing one. `unsure`: Slack
    could not say whether they hold some right, so more may be open to them.
    """
    rights = frozenset(held) | {Right.ANYONE}
    lines = [HELP_HEADING]
    missing: dict[Right, list[str]] = {}
    for command in COMMANDS:
        shown = [use for use in command.uses if use.right in rights]
        for use in command.uses:
            if use.right not in rights:
                head = naming.render(_head(use.usage))
                missing.setdefault(use.right, []).append(f"`{escape(head)}`")
        if not shown:
            continue
        lines.append(f"*{naming.typed(command.name)}* — {command.summary}")
        lines.extend(
            f"• {use.line(naming)}  e.g. `{escape(naming.render(use.example))}`" for use in shown
        )
    if missing:
        needs = "; ".join(
            f"{', '.join(dict.fromkeys(names))} need {RIGHT_NAMES[right]}"
            for right, names in missing.items()
        )
        lines.append(f"_Not shown, because you do not hold the right: {needs}._")
    if unsure:
        lines.append(
            "_opsbot could not ask Slack about all of your rights just now: "
            "some commands may be missing. Try again in a minute._"
        )
    lines.append(HELP_FOOTER)
    return "\n".join(lines)


# Ids are kept in 32-bit INTEGER columns (PostgreSQL's): a larger number names no row.
MAX_ROW_ID = 2**31 - 1
TYPED_ID = re.compile(r"^#?([0-9]{1,10})$")


def typed_id(text: str) -> int | None:
    """The row id a person typed (`42`, `#42`), or None when `text` is not one.

    ASCII digits only (`isdigit` takes `²`, which int() refuses), and within the
    id columns' range: a larger number names no row, and is not put to the
    database, whose driver refuses one past 64 bits (SQLite's).
    """
    found = TYPED_ID.match(text.strip())
    if found is None:
        return None
    number = int(found.group(1))
    return number if 0 < number <= MAX_ROW_ID else None


# Slack's limit on a text, by what holds it (an object's `type`, else the key it sits
# under; "" the body itself) and its key there. A section's `fields` and a context's
# `elements` are lists of text objects.
TEXT_LIMITS: dict[tuple[str, str], int] = {
    ("", "text"): MESSAGE_MAX,
    ("header", "text"): HEADER_MAX,
    ("section", "text"): SECTION_MAX,
    ("section", "fields"): FIELD_MAX,
    ("context", "elements"): CONTEXT_MAX,
    ("button", "text"): BUTTON_MAX,
    ("confirm", "title"): 100,
    ("confirm", "text"): 300,
    ("confirm", "confirm"): 30,
    ("confirm", "deny"): 30,
    ("options", "text"): 75,
    ("options", "description"): 75,
}
TEXT_OBJECTS = ("mrkdwn", "plain_text")


def _named(naming: Naming, value: Any, *, holder: str, limit: int | None, key: str) -> Any:
    if isinstance(value, str):
        if key != "text":
            return value
        named = naming.named(value)
        if len(named) <= len(value):
            return named
        return clip(named, max(len(value), limit or 0))
    if isinstance(value, list):
        return [_named(naming, item, holder=holder, limit=limit, key="") for item in value]
    if not isinstance(value, dict):
        return value
    kind = str(value.get("type") or holder)
    if kind in TEXT_OBJECTS:  # its limit is where it sits
        return {
            name: _named(
                naming, item, holder=kind, limit=limit if name == "text" else None, key=name
            )
            for name, item in value.items()
        }
    return {
        name: _named(naming, item, holder=name, limit=TEXT_LIMITS.get((kind, name)), key=name)
        for name, item in value.items()
    }
