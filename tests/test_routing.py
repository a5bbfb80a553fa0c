"""Buttons and slash commands reach their listener through opsbot's routes (handlers/routing.py).

Through a real Bolt app: which listener Bolt's dispatch ends in, with what, and
what Slack is answered when no listener takes a request. Then through the
served app: a request nobody listens for changes nothing.
"""

from __future__ import annotations

import re
from typing import Any

import pytest
import sqlalchemy as sa
from slack_bolt import Ack, App, BoltRequest
from slack_bolt.authorization import AuthorizeResult

from bot.audit.models import AuditRecord
from bot.outbox.models import Delivery
from handlers.routing import Routes
from tests.conftest import SLACK_SIGNING_SECRET
from tests.support import LiveService, block_action_body, slack_headers, slash_command_body


@pytest.fixture
def routes() -> Routes:
    # Authorized here, without asking Slack (auth.test) who the token is.
    bot = AuthorizeResult(enterprise_id=None, team_id="T0000", bot_token="xoxb-t", bot_id="B0")
    app = App(
        signing_secret="unused",
        request_verification_enabled=False,
        authorize=lambda **_: bot,
        process_before_response=True,
    )
    return Routes(app)


def _dispatch(routes: Routes, body: str) -> tuple[int, Any]:
    answer = routes.app.dispatch(BoltRequest(body=body, headers={}))
    return answer.status, answer.body


def _acking(name: str, seen: list[str]) -> Any:
    def listener(ack: Ack) -> None:
        seen.append(name)
        ack(text=name)

    return listener


def test_an_action_goes_to_the_first_registered_of_an_id_and_a_pattern_that_match(
    routes: Routes,
) -> None:
    seen: list[str] = []
    routes.action("undo:7")(_acking("exact before", seen))
    routes.action(re.compile(r"^undo:\d+$"))(_acking("pattern", seen))
    routes.action("undo:8")(_acking("exact after", seen))

    assert _dispatch(routes, block_action_body("undo:7", "v")) == (200, "exact before")
    assert _dispatch(routes, block_action_body("undo:8", "v")) == (200, "pattern")
    assert _dispatch(routes, block_action_body("undo:9", "v")) == (200, "pattern")
    assert seen == ["exact before", "pattern", "pattern"]


def test_a_listener_is_given_only_what_it_names(routes: Routes) -> None:
    given: dict[str, Any] = {}

    @routes.action("ack")
    def listener(ack: Ack, action: dict[str, Any], body: dict[str, Any]) -> None:
        given.update(action=action, user=body["user"]["id"])
        ack()

    assert _dispatch(routes, block_action_body("ack", "42", user_id="U0BOB"))[0] == 200
    assert given["action"]["value"] == "42" and given["user"] == "U0BOB"


def test_a_listener_naming_an_argument_routes_do_not_give_is_refused_at_registration(
    routes: Routes,
) -> None:
    def listener(ack: Ack, say: Any) -> None:
        ack()

    with pytest.raises(TypeError, match="say"):
        routes.action("x")(listener)


def test_a_command_goes_to_the_first_listener_whose_matchers_take_it_prepared_for_it(
    routes: Routes,
) -> None:
    seen: list[tuple[str, str]] = []

    def recording(name: str) -> Any:
        def listener(ack: Ack, command: dict[str, Any]) -> None:
            seen.append((name, command["text"]))
            ack()

        return listener

    def strip_first_word(body: dict[str, Any]) -> None:
        body["text"] = body["text"].split(None, 1)[1]

    routes.command("/ops", matchers=[lambda body: body["text"] == ""])(recording("bare"))
    routes.command(
        "/ops",
        matchers=[lambda body: body["text"].startswith("deploy ")],
        prepare=strip_first_word,
    )(recording("deploy"))
    routes.command("/ops")(recording("rest"))

    for text in ("", "deploy api prod v1", "flag on"):
        assert _dispatch(routes, slash_command_body("/ops", text))[0] == 200
    assert seen == [("bare", ""), ("deploy", "api prod v1"), ("rest", "flag on")]


def test_what_no_listener_takes_is_answered_as_bolt_answers_it(routes: Routes) -> None:
    seen: list[str] = []
    routes.action("known")(_acking("known", seen))
    routes.command("/known")(_acking("known", seen))

    unhandled = (404, '{"error": "unhandled request"}')
    assert _dispatch(routes, block_action_body("unknown", "v")) == unhandled
    assert _dispatch(routes, slash_command_body("/unknown", "")) == unhandled
    assert seen == []


@pytest.mark.parametrize(
    ("body", "kind"),
    [
        (block_action_body("no_such_button", "1"), "action"),
        (slash_command_body("/no-such-command", "help"), "command"),
    ],
    ids=["button", "command"],
)
def test_a_signed_request_no_listener_takes_gets_404_and_changes_nothing(
    service: LiveService, body: str, kind: str
) -> None:
    answer = service.post(
        "/slack/events", content=body, headers=slack_headers(SLACK_SIGNING_SECRET, body)
    )
    assert answer.status_code == 404
    with service.runtime.sessions() as db_session:
        assert db_session.scalar(sa.select(sa.func.count()).select_from(Delivery)) == 0
        assert db_session.scalar(sa.select(sa.func.count()).select_from(AuditRecord)) == 0
    # Counted for the operator: the Slack app sends what this version does not know.
    counted = service.runtime.metrics.registry.get_sample_value(
        "opsbot_slack_unhandled_total", {"kind": kind}
    )
    assert counted == 1
