"""A Slack request waiting for its ack holds the work behind acks to its budget.

Held for real: the Events API request's deduplication waits on a PostgreSQL
lock the test takes, so the request is in Bolt's dispatch for as long as the
test wants, while a click goes through and its work runs in the lane.
"""

from __future__ import annotations

import threading
import time

import httpx
import pytest
import sqlalchemy as sa

from bot.after_ack import MAX_PAUSE_S, QUIET_S, AfterAck
from bot.db.engine import make_engine
from bot.incidents import render
from sandbox.slack import SlackEmulator
from tests.conftest import SLACK_SIGNING_SECRET
from tests.incidents.helpers import click, responses_to
from tests.support import LiveService, event_body, slack_headers, wait_for


def _waits_on_a_lock(engine: sa.Engine) -> bool:
    with engine.connect() as connection:
        query = "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'"
        return bool(connection.exec_driver_sql(query).scalar())


def _some_cpu() -> None:
    # Work that takes measurable CPU: a pause would follow it if a request still counted.
    sum(range(200_000))


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_the_lane_pauses_only_while_a_request_waits_for_its_ack(
    service: LiveService, slack: SlackEmulator, database_url: str
) -> None:
    pauses: list[float] = []
    service.runtime.after_ack.stop()

    def pause(seconds: float) -> None:
        pauses.append(seconds)
        time.sleep(seconds)

    service.runtime.after_ack = AfterAck(1, pause=pause)
    engine = make_engine(database_url)
    answers: list[httpx.Response] = []
    body = event_body({"type": "reaction_added", "user": "U0ALICE"}, event_id="EvHeld")

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
        wait_for(lambda: _waits_on_a_lock(engine))

        during = slack.response_url()
        click(service, render.ACKNOWLEDGE, "999", response_url=during)
        wait_for(lambda: responses_to(slack, during))
        wait_for(lambda: pauses)
        lock.rollback()
    held.join(30)
    assert answers, "the held request was never answered"

    # Every request answered and none for QUIET_S: work runs without a pause.
    time.sleep(QUIET_S)
    before: list[int] = []

    def after_the_flood() -> None:
        before.append(len(pauses))  # the click's pause is over: one piece at a time
        _some_cpu()

    service.runtime.after_ack.run("work after the flood", after_the_flood, response_url=None)
    service.runtime.after_ack.stop()
    engine.dispose()

    [clicked] = before
    assert pauses[clicked:] == []
    # The click's work paused, in steps no longer than QUIET_S, MAX_PAUSE_S at most in all.
    assert 0 < sum(pauses[:clicked]) <= MAX_PAUSE_S
    assert all(step <= QUIET_S for step in pauses)
