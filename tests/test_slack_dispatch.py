"""Where Bolt's dispatch of an HTTP request runs (handlers/slack_events.py, `SlackBolt`).

A button's or a command's on the event loop, once Bolt knows who its token is;
before that, and for views, options and events, in a thread. Through a real Bolt
app over the Slack emulator, as production builds it (one token, auth.test asked
on the first request).
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from typing import Any

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
    api_url: str, engine: sa.Engine, dispatched: Callable[[], None] | None = None
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
    return SlackBolt(app, admission), Routes(app)


def _where(threads: list[str], loop_thread: list[int]) -> Callable[[], None]:
    def record() -> None:
        threads.append("loop" if threading.get_ident() in loop_thread else "thread")

    return record


def _recording(threads: list[str], loop_thread: list[int]) -> Any:
    def listener(ack: Ack) -> None:
        _where(threads, loop_thread)()
        ack()

    return listener


def _dispatch_all(bolt: SlackBolt, bodies: list[str], loop_thread: list[int]) -> list[int]:
    async def run() -> list[int]:
        loop_thread.append(threading.get_ident())
        answers: list[BoltResponse] = []
        for body in bodies:
            answers.append(await bolt.dispatch(BoltRequest(body=body, headers={})))
        return [answer.status for answer in answers]

    return asyncio.run(run())


def test_a_click_and_a_command_run_on_the_event_loop_once_bolt_knows_its_token(
    slack: SlackEmulator, engine: sa.Engine
) -> None:
    bolt, routes = _slack_bolt(slack.api_url, engine)
    threads: list[str] = []
    loop_thread: list[int] = []
    routes.action("a")(_recording(threads, loop_thread))
    routes.command("/opsbot")(_recording(threads, loop_thread))

    statuses = _dispatch_all(
        bolt,
        [
            block_action_body("a", "1"),
            block_action_body("a", "2"),
            slash_command_body("/opsbot", "help"),
        ],
        loop_thread,
    )

    assert statuses == [200, 200, 200]
    # The first asked Slack who the token is, from a thread; the rest needed no call.
    assert threads == ["thread", "loop", "loop"]
    assert len(slack.calls_to("auth.test")) == 1


def test_a_view_submission_runs_in_a_thread_whatever_bolt_knows(
    slack: SlackEmulator, engine: sa.Engine
) -> None:
    bolt, routes = _slack_bolt(slack.api_url, engine)
    threads: list[str] = []
    loop_thread: list[int] = []
    routes.action("a")(_recording(threads, loop_thread))
    routes.view("form")(_recording(threads, loop_thread))
    submission = slack_view_requests.view_submission(
        {"id": "V1", "callback_id": "form", "type": "modal"}, user_id="U0ALICE", values={}
    )

    statuses = _dispatch_all(
        bolt, [block_action_body("a", "1"), block_action_body("a", "2"), submission], loop_thread
    )

    assert statuses == [200, 200, 200]
    assert threads == ["thread", "loop", "thread"]


def test_while_slack_cannot_say_who_the_token_is_nothing_runs_on_the_event_loop(
    engine: sa.Engine,
) -> None:
    nobody_listens = f"http://127.0.0.1:{free_port()}/api/"
    threads: list[str] = []
    loop_thread: list[int] = []
    dispatched: list[str] = []
    bolt, routes = _slack_bolt(nobody_listens, engine, _where(dispatched, loop_thread))
    routes.action("a")(_recording(threads, loop_thread))

    statuses = _dispatch_all(
        bolt, [block_action_body("a", "1"), block_action_body("a", "2")], loop_thread
    )

    # Bolt refuses both (it cannot authorize them); each asked Slack again, from a thread.
    assert all(status >= 400 for status in statuses)
    assert dispatched == ["thread", "thread"]
    assert threads == []
    assert bolt.admission.authorized is False
