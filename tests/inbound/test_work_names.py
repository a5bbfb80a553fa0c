"""The name of a command's work behind its ack holds none of the person's text.

It is stored in the journal of work owed (bot/inbound/after_ack_journal.py) and
shown to the person when the work never finishes or fails: a link typed as the
first word of a command (`/releases <https://evil.example|here>`) must not come
back as opsbot's own words. The journal escapes a name all the same.
"""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.orm import Session, sessionmaker

from bot.clock import ManualClock
from bot.commands import Naming
from bot.inbound.after_ack_journal import LEASE_S, AfterAckJournal
from bot.inbound.models import AfterAckWork
from bot.outbox.models import Delivery
from handlers.replies import answer_after_ack, work_name
from sandbox.slack import SlackEmulator
from tests.incidents.helpers import responses_to
from tests.support import LiveService, wait_for

LINK = "<https://evil.example|here>"
T0 = datetime(2026, 12, 2, 3, 0, tzinfo=UTC)


def owed(engine: sa.Engine) -> list[str]:
    with Session(engine) as db_session:
        return list(db_session.scalars(sa.select(AfterAckWork.what)))


def test_a_typed_link_is_neither_stored_nor_shown_as_the_works_name(
    service: LiveService, slack: SlackEmulator, engine: sa.Engine
) -> None:
    url = slack.response_url()
    # As Bolt hands it over: Slack's entities decoded (handlers/slack_events.py).
    command = {"command": "/releases", "text": LINK, "user_id": "U0BOB", "response_url": url}
    release = threading.Event()
    answer_after_ack(
        service.runtime, command, lambda _user, _channel: str(release.wait(10)), refusals=()
    )
    try:
        assert wait_for(lambda: owed(engine)) == ["/releases"]
        # The instance looks dead to another one: that one answers for the work.
        later = ManualClock(datetime.now(UTC) + timedelta(seconds=2 * LEASE_S))
        other = AfterAckJournal(sessions=service.runtime.sessions, clock=later, owner="other")
        other.tend()
        assert other.tend() == 1
    finally:
        release.set()
    said = wait_for(lambda: len(responses_to(slack, url)) == 2 and responses_to(slack, url))
    texts = [str(r.get("text")) for r in said]
    [stopped] = [text for text in texts if text.startswith("opsbot stopped")]
    assert stopped.startswith("opsbot stopped before it finished your /releases (")
    assert "True" in texts  # the work's own answer, once it was let go
    assert not [text for text in texts if "evil.example" in text]


def test_the_journal_escapes_the_name_it_shows(engine: sa.Engine) -> None:
    clock = ManualClock(T0)
    notes = AfterAckJournal(sessions=sessionmaker(engine), clock=clock, owner="alive")
    url = "https://hooks.slack.com/commands/T0000/1/x"
    key = notes.write(f"/releases {LINK}", url)
    notes.failed(key)
    notes.flush()
    with Session(engine) as db_session:
        [text] = [d.payload["body"]["text"] for d in db_session.scalars(sa.select(Delivery))]
    assert "&lt;https://evil.example|here&gt;" in text
    assert "<https://" not in text


def test_a_works_name_is_the_command_and_a_subcommand_of_the_table() -> None:
    separate, single = Naming(), Naming("single", "ops")
    assert work_name({"command": "/deploy", "text": "status api prod"}, separate) == (
        "/deploy status"
    )
    assert work_name({"command": "/deploy", "text": "api prod v1.2"}, separate) == "/deploy"
    assert work_name({"command": "/ops", "text": "lock api prod why"}, single) == "/ops lock"
    assert work_name({"command": "/releases", "text": LINK}, separate) == "/releases"
    assert work_name({"command": "/x <https://evil.example|y>", "text": ""}, separate) == "command"
