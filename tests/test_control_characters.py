"""A typed command holding a control character is refused at the edge, before any work.

The same characters a modal's field refuses (bot/modals/state.py): a NUL, which
PostgreSQL's text columns refuse, and the rest of C0 but a newline and a tab. The
person is told at once; nothing is queued behind the ack, nothing is stored.
"""

from __future__ import annotations

import logging

import pytest
import sqlalchemy as sa

from bot.audit.models import AuditRecord
from bot.incidents.models import Incident
from sandbox.slack import SlackEmulator
from tests.incidents.helpers import ack_text, command, responses_to
from tests.support import LiveService, metric, wait_for

STARTED = "opsbot_after_ack_wait_seconds_count"  # one a piece of work behind an ack
REFUSED = "opsbot_slack_admission_refused_total"


def _rows(service: LiveService, model: type[Incident] | type[AuditRecord]) -> int:
    with service.runtime.sessions() as db:
        return int(db.scalar(sa.select(sa.func.count()).select_from(model)) or 0)


@pytest.mark.parametrize(
    ("name", "text"),
    [
        ("/incident", "declare db is \x00 down"),
        ("/incident", "declare db is down\x1b[2J"),
        ("/incident", "note 1 the failover\x0b took long"),
        ("/deploy", "lock api staging migrating\x07"),
        ("/flag", "on api staging new-cart\x00"),
        ("/oncall", "payments\x7f"),
    ],
    ids=["nul", "escape", "vertical-tab", "bell", "flag-nul", "delete"],
)
def test_a_command_holding_a_control_character_is_refused_and_does_nothing(
    service: LiveService,
    slack: SlackEmulator,
    caplog: pytest.LogCaptureFixture,
    name: str,
    text: str,
) -> None:
    started = metric(service, STARTED)
    refused_url = slack.response_url()
    with caplog.at_level(logging.INFO):
        answer = command(service, name, text, response_url=refused_url)
    assert "control character" in ack_text(answer), ack_text(answer)
    assert "Nothing was done." in ack_text(answer)

    # The pool behind acks takes work first in, first out: once a later command's
    # work has run, the refused one's would have started before it.
    later = slack.response_url()
    command(service, "/incident", "list", response_url=later)
    wait_for(lambda: responses_to(slack, later))
    assert metric(service, STARTED) == started + 1
    assert responses_to(slack, refused_url) == []
    assert _rows(service, Incident) == 0
    assert _rows(service, AuditRecord) == 0
    assert [r for r in caplog.records if r.levelno >= logging.ERROR] == []
    # Counted, and logged with who sent it.
    assert metric(service, REFUSED, reason="control_character") == 1
    [line] = [r for r in caplog.records if "holds a control character" in r.getMessage()]
    assert getattr(line, "slack_user", None) == "U0ALICE"


def test_a_newline_and_a_tab_are_taken(service: LiveService, slack: SlackEmulator) -> None:
    url = slack.response_url()
    text = "declare db is\tdown\r\nsince 10:02"  # pasted lines may end in \r\n
    answer = command(service, "/incident", text, response_url=url)
    assert ack_text(answer) == "Declaring the incident…"
    wait_for(lambda: _rows(service, Incident) == 1)
