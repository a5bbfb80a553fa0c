"""Where Bolt's dispatch of an HTTP request runs (handlers/slack_events.py, `SlackBolt`).

A button's or a command's on the event loop, once Bolt knows who its token is;
before that, and for views, options and events, in a thread. Through a real Bolt
app over the Slack emulator, as production builds it (one token, auth.test asked
on the first request).
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable

import pytest
import sqlalchemy as sa
from slack_bolt import Ack, App, BoltRequest, BoltResponse
from slack_sdk import WebClient

from bot.clock import SystemClock
from bot.db.engine import make_sessionmaker
from bot.inbound.receipts import SlackEventReceipts
from bot.inbound.replay import ReplayGuard
from handlers.routing import Routes
from handlers.slack_events import Admission, SlackBolt
from sandbox import slack_view_requests
from sandbox.server import free_port
from sandbox.slack import SlackEmulator
from tests.conftest import SLACK_TOKEN
from tests.support import block_action_body, slash_command_body


def _slack_bolt(
    api_url: str,
    engine: sa.Engine,
    dispatched: Callable[[], None] | None = None,
    *,
    stall_s: float = 0.25,
    on_stall: Callable[[str], None] = lambda kind: None,
) -> tuple[SlackBolt, Routes]:
    """`dispatched` is called at the start of each dispatch, before Bolt authorizes."""

    def before_authorize(next: Callable[[], BoltResponse]) -> BoltResponse:
        if dispatched is not None:
            dispatched()
        return next()

    app = App(
        before_authorize=before_authorize,
        signing_secret="unused",
        request_verification_enabled=False,
        client=WebClient(token=SLACK_TOKEN, base_url=api_url, timeout=5),
        token_verification_enabled=False,
        process_before_response=True,
    )
    receipts = SlackEventReceipts(sessions=make_sessionmaker(engine), clock=SystemClock())
    admission = Admission(receipts, ReplayGuard())
    app.use(admission)
    return SlackBolt(app, admission, stall_s=stall_s, on_stall=on_stall), Routes(app)


class Where:
    """Where the calls it is told of ran: on the event loop `dispatch_all` runs, or a thread."""

    def __init__(self) -> None:
        self.loop_thread: int | None = None
        self.seen: list[str] = []

    def note(self) -> None:
        self.seen.append("loop" if threading.get_ident() == self.loop_thread else "thread")

    def listener(self, ack: Ack) -> None:
        self.note()
        ack()

    def dispatch_all(self, bolt: SlackBolt, bodies: list[str]) -> list[int]:
        async def run() -> list[int]:
            self.loop_thread = threading.get_ident()
            return [
                (await bolt.dispatch(BoltRequest(body=body, headers={}))).status for body in bodies
            ]

        return asyncio.run(run())


def test_a_click_and_a_command_run_on_the_event_loop_once_bolt_knows_its_token(
    slack: SlackEmulator, engine: sa.Engine
) -> None:
    bolt, routes = _slack_bolt(slack.api_url, engine)
    where = Where()
    routes.action("a")(where.listener)
    routes.command("/opsbot")(where.listener)

    statuses = where.dispatch_all(
        bolt,
        [
            block_action_body("a", "1"),
            block_action_body("a", "2"),
            slash_command_body("/opsbot", "help"),
        ],
    )

    assert statuses == [200, 200, 200]
    # The first asked Slack who the token is, from a thread; the rest needed no call.
    assert where.seen == ["thread", "loop", "loop"]
    assert len(slack.calls_to("auth.test")) == 1


def test_a_view_submission_runs_in_a_thread_whatever_bolt_knows(
    slack: SlackEmulator, engine: sa.Engine
) -> None:
    bolt, routes = _slack_bolt(slack.api_url, engine)
    where = Where()
    routes.action("a")(where.listener)
    routes.view("form")(where.listener)
    submission = slack_view_requests.view_submission(
        {"id": "V1", "callback_id": "form", "type": "modal"}, user_id="U0ALICE", values={}
    )

    statuses = where.dispatch_all(
        bolt, [block_action_body("a", "1"), block_action_body("a", "2"), submission]
    )

    assert statuses == [200, 200, 200]
    assert where.seen == ["thread", "loop", "thread"]


def test_while_slack_cannot_say_who_the_token_is_nothing_runs_on_the_event_loop(
    engine: sa.Engine,
) -> None:
    nobody_listens = f"http://127.0.0.1:{free_port()}/api/"
    dispatched, listened = Where(), Where()
    bolt, routes = _slack_bolt(nobody_listens, engine, dispatched.note)
    routes.action("a")(listened.listener)

    statuses = dispatched.dispatch_all(
        bolt, [block_action_body("a", "1"), block_action_body("a", "2")]
    )

    # Bolt refuses both (it cannot authorize them); each asked Slack again, from a thread.
    assert all(status >= 400 for status in statuses)
    assert dispatched.seen == ["thread", "thread"]
    assert listened.seen == []
    assert bolt.admission.authorized is False


def test_a_listener_that_waits_on_the_event_loop_is_named_and_counted(
    slack: SlackEmulator, engine: sa.Engine, caplog: pytest.LogCaptureFixture
) -> None:
    stalls: list[str] = []
    bolt, routes = _slack_bolt(slack.api_url, engine, stall_s=0.05, on_stall=stalls.append)
    where = Where()

    @routes.action("slow_button")
    def waits(ack: Ack) -> None:
        where.note()
        time.sleep(0.1)  # what a listener must never do: wait before it returns
        ack()

    with caplog.at_level(logging.WARNING, logger="handlers.slack_events"):
        statuses = where.dispatch_all(
            bolt, [block_action_body("slow_button", "1"), block_action_body("slow_button", "2")]
        )

    assert statuses == [200, 200]
    # The first ran in a thread (Bolt asked who its token is): it held nothing.
    assert where.seen == ["thread", "loop"]
    assert stalls == ["action"]
    [line] = [r for r in caplog.records if "held the event loop" in r.getMessage()]
    assert "'slow_button'" in line.getMessage()
    assert line.name == "handlers.slack_events"
    assert getattr(line, "held_s", 0) >= 0.1
