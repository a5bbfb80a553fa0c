"""A link made by hand while a lookup of the same person inserts their row: the link
is what is stored, and what `/opsbot link-pagerduty` answers is what is stored."""

from __future__ import annotations

from typing import Any

import pytest
import sqlalchemy as sa

from bot.db.engine import make_sessionmaker
from bot.pagerduty.rest import PagerDutyUser
from bot.people import service
from sandbox.pagerduty import PagerDutyEmulator
from sandbox.slack import SlackEmulator
from sandbox.tls import TestCA
from tests.people.helpers import make_world


def test_a_link_made_by_hand_replaces_a_lookup_inserted_at_the_same_moment(
    database_url: str,
    engine: sa.Engine,
    slack: SlackEmulator,
    pagerduty: PagerDutyEmulator,
    test_ca: TestCA,
) -> None:
    if not database_url.startswith("postgresql"):
        pytest.skip("SQLite takes the write lock at BEGIN: no other writer comes in between")
    pagerduty.add_user("PCORP", "Alice", "alice@corp.example")
    world = make_world(engine, slack, pagerduty, test_ca)
    sessions = make_sessionmaker(engine)
    old_seat = PagerDutyUser("POLD", "Alice (old)", "alice@old.example")
    armed = [True]

    def lookup_commits_first(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        # The link's first write is about to run; the lookup's row lands just before it.
        if armed[0] and statement.lstrip().upper().startswith("INSERT INTO PAGERDUTY_USER_LINKS"):
            armed[0] = False
            with sessions() as other:
                service.save(
                    other,
                    slack_user_id="U0ALICE",
                    user=old_seat,
                    linked=False,
                    now=world.clock.now(),
                )
                other.commit()

    sa.event.listen(engine, "before_cursor_execute", lookup_commits_first)
    try:
        answer = world.people.link("U0ALICE", "alice@corp.example")
    finally:
        sa.event.remove(engine, "before_cursor_execute", lookup_commits_first)
    assert not armed[0]
    stored = world.people.current_link("U0ALICE")
    assert stored == (PagerDutyUser("PCORP", "Alice", "alice@corp.example"), True)
    assert answer == stored[0]


def test_a_lookup_never_replaces_a_link_made_by_hand(
    engine: sa.Engine, slack: SlackEmulator, pagerduty: PagerDutyEmulator, test_ca: TestCA
) -> None:
    world = make_world(engine, slack, pagerduty, test_ca)
    world.people.link("U0ALICE", "bob@example.com")
    with make_sessionmaker(engine)() as db_session:
        kept = service.save(
            db_session,
            slack_user_id="U0ALICE",
            user=PagerDutyUser("PALICE", "Alice Example", "alice@example.com"),
            linked=False,
            now=world.clock.now(),
        )
        db_session.commit()
        assert kept is not None and (kept.pagerduty_user_id, kept.linked) == ("PBOB", True)
    assert world.people.current_link("U0ALICE") == (
        PagerDutyUser("PBOB", "Bob Example", "bob@example.com"),
        True,
    )
