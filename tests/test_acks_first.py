"""A Slack request waiting for its ack does not hold back the work behind other acks.

Held for real: the Events API request's deduplication waits on a PostgreSQL
lock the test takes, so the request is in Bolt's dispatch for as long as the
test wants, while a click goes through: its ack and its effect both arrive
while the held request still waits (the pool has no switch that slows it while
acknowledgements are pending; it used to pause until the flood was over).
"""

from __future__ import annotations

import threading

import httpx
import pytest
import sqlalchemy as sa

from bot.db.engine import make_engine
from bot.incidents import render
from sandbox.slack import SlackEmulator
from tests.conftest import SLACK_SIGNING_SECRET
from tests.incidents.helpers import click, responses_to
from tests.support import LiveService, event_body, slack_headers, wait_for


def _waits_on_a_lock(engine: sa.Engine) -> bool:
    with engine.connect() as connection:
        query = (
            "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'"
            " AND datname = current_database()"
        )
        return bool(connection.exec_driver_sql(query).scalar())


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_a_click_takes_effect_while_another_request_waits_for_its_ack(
    service: LiveService, slack: SlackEmulator, database_url: str
) -> None:
    engine = make_engine(database_url)
    answers: list[httpx.Response] = []
    body = event_body({"type": "reaction_added", "user": "U0ALICE"}, event_id="EvHeld")
    pending = service.runtime.metrics.registry

    with engine.connect() as lock:
        lock.exec_driver_sql("LOCK TABLE inbound_receipts IN ACCESS EXCLUSIVE MODE")
        held = threading.Thread(
            target=lambda: answers.append(
                service.post(
                    "/slack/events",
                    content=body,
                    headers={
                        **slack_headers(SLACK_SIGNING_SECRET, body),
                        "Content-Type": "application/json",
                    },
                )
            )
        )
        held.start()
        try:
            wait_for(lambda: _waits_on_a_lock(engine))
            assert pending.get_sample_value("opsbot_slack_acks_pending") == 1

            during = slack.response_url()
            click(service, render.ACKNOWLEDGE, "999", response_url=during)
            # The click's work ran to its answer with the other ack still pending.
            wait_for(lambda: responses_to(slack, during))
            assert not answers
            assert pending.get_sample_value("opsbot_slack_acks_pending") == 1
        finally:
            lock.rollback()
    held.join(30)
    engine.dispose()
    # Answered once let go (no listener takes reaction_added: Bolt's 404).
    assert [a.status_code for a in answers] == [404]
    assert pending.get_sample_value("opsbot_slack_acks_pending") == 0
