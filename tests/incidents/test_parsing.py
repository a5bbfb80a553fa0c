"""Pure pieces of on-call: webhook signatures, command parsing, mention questions, config checks."""

from __future__ import annotations

import copy

import pytest

from bot.commands import SEPARATE
from bot.config import ConfigError, parse_config
from bot.pagerduty.webhooks import MalformedWebhook, parse_event, signature_valid
from handlers.incidents import Usage, parse
from handlers.oncall import mention_question
from handlers.opsbot_command import email_argument
from sandbox.pagerduty import PagerDutyEmulator
from tests.conftest import TEST_CONFIG

BODY = b'{"event": {"id": "E1", "event_type": "pagey.ping", "data": {}}}'


def sign(secret: str, body: bytes = BODY) -> str:
    return PagerDutyEmulator.sign(body, secret)


@pytest.mark.parametrize(
    ("header", "valid"),
    [
        (sign("current"), True),
        (sign("previous"), True),
        (f"{sign('unknown')},{sign('previous')}", True),  # rotation: several signatures
        (f"{sign('unknown')}, {sign('current').upper().replace('V1=', 'v1=')}", True),
        (sign("unknown"), False),
        (sign("current", BODY + b" "), False),  # the raw body, byte for byte
        ("v0=" + sign("current")[3:], False),
        ("", False),
        (None, False),
    ],
)
def test_signature_is_checked_against_every_secret(header: str | None, valid: bool) -> None:
    assert signature_valid(BODY, header, ["current", "previous"]) is valid


def test_no_secret_accepts_nothing() -> None:
    assert signature_valid(BODY, sign(""), []) is False


def test_event_parsing_dispatches_on_data_type() -> None:
    note = parse_event(
        b'{"event": {"id": "E2", "event_type": "incident.annotated", "occurred_at": '
        b'"2026-11-25T10:00:00Z", "agent": {"id": "PBOB", "type": "user_reference", '
        b'"summary": "Bob"}, "data": {"id": "N1", "type": "incident_note", "content": "hi", '
        b'"incident": {"id": "Q1", "type": "incident_reference", "summary": "x"}}}}'
    )
    assert note.note is not None and note.note.content == "hi"
    assert note.incident is not None and note.incident.id == "Q1"
    assert note.agent is not None and note.agent.is_user
    with pytest.raises(MalformedWebhook):
        parse_event(b'{"event": {"event_type": "incident.triggered"}}')


@pytest.mark.parametrize(
    ("text", "name", "fields"),
    [
        ("", "help", {}),
        ("list", "list", {}),
        ("ack #42", "ack", {"ref": "#42"}),
        ("acknowledge Q1ABC2DEF3", "ack", {"ref": "Q1ABC2DEF3"}),
        ("resolve 7 rolled back v41", "resolve", {"ref": "7", "text": "rolled back v41"}),
        ("note 7 it's the DB", "note", {"ref": "7", "text": "it's the DB"}),
        ("timeline 7 markdown", "timeline", {"ref": "7", "markdown": True}),
        (
            "declare API 5xx --route prod --severity=Critical in eu-west-1",
            "declare",
            {"text": "API 5xx in eu-west-1", "route": "prod", "severity": "critical"},
        ),
    ],
)
def test_incident_commands_parse(text: str, name: str, fields: dict[str, object]) -> None:
    command = parse(text)
    assert command.name == name
    for key, value in fields.items():
        assert getattr(command, key) == value


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("ack", "`ack` needs an incident number"),
        ("ack 4 now", "`ack` takes only the incident number"),
        ("note 4", "`note` needs the text of the note"),
        ("timeline 4 pdf", "say `markdown` for Markdown"),
        ("declare x --severity", "`--severity` needs a value"),
        ("declare x --force", "Unknown option `--force`"),
        ("list all", "`list` takes nothing after it"),
        ("page 4", "Unknown subcommand `page`"),
        ("ack <@U1>", "is not an incident number"),
    ],
)
def test_bad_incident_commands_say_what_is_wrong(text: str, problem: str) -> None:
    with pytest.raises(Usage) as caught:
        parse(text)
    assert problem in caught.value.answer(SEPARATE)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("<@U0OPSBOT> who is on call?", (True, None)),
        ("<@U0OPSBOT> oncall payments", (True, "payments")),
        ("<@U0OPSBOT> who's on-call for Primary?", (True, "Primary")),
        ("<@U0OPSBOT> hello", (False, None)),
        # Slack sends a message's `&`, `<`, `>` as entities: the name is the one typed.
        ("<@U0OPSBOT> oncall for R&amp;D &lt;EU&gt;", (True, "R&D <EU>")),
    ],
)
def test_mention_questions(text: str, expected: tuple[bool, str | None]) -> None:
    assert mention_question(text) == expected


def test_slack_formatted_email_is_unwrapped() -> None:
    assert email_argument("<mailto:bob@example.com|bob@example.com>") == "bob@example.com"
    assert email_argument("bob@example.com") == "bob@example.com"


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        (
            {"alarm_routes": [{"match": {}, "channel": "C0ALERTS", "remind_after_min": 5}]},
            "alarm_routes[0]: remind_after_min and escalate_after_min need "
            "pagerduty_routing_key_env",
        ),
        (
            {"oncall": {"declare_route": "default"}},
            "oncall.declare_route: route 'default' has no pagerduty_routing_key_env",
        ),
        (
            {"oncall": {"teams": {"pay": {}}}},
            "oncall.teams.pay: name at least one of escalation_policies or schedules",
        ),
        (
            {"oncall": {"handoffs": [{"channel": "C0ALERTS", "at": "9am", "team": "x"}]}},
            "oncall.handoffs[0].at: must be a time of day as HH:MM",
        ),
        ({"oncall": {"pagerduty_from": "opsbot"}}, "oncall.pagerduty_from: must be the email"),
    ],
)
def test_oncall_configuration_errors_name_the_key(change: dict[str, object], problem: str) -> None:
    data = {**copy.deepcopy(TEST_CONFIG), **change}
    with pytest.raises(ConfigError) as caught:
        parse_config(data)
    assert any(p.startswith(problem) for p in caught.value.problems), caught.value.problems
