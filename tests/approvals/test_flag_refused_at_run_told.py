"""A protected flag change refused when it came to run tells the requester, in its thread.

Bob asks for `apple_pay on` in `api/prod` and confirms; someone writes a version
in the AppConfig console meanwhile; Alice approves. The change is refused (the
flags changed since it was asked) and Alice reads why in her answer; Bob, who
asked, reads it in the request's thread, once.
"""

from __future__ import annotations

from bot.approvals import flows as approval_flows
from bot.flags import flows as flag_flows
from bot.flags.requests import Change
from tests.approvals.test_approvers_at_run import Prod, prod, the_request  # noqa: F401
from tests.flags.conftest import (  # noqa: F401  # fixtures shared with the flag and deploy tests
    FLAGS_DOCUMENT,
    RELEASES,
    app_config,
    aws_settings,
    clock,
    flag_world,
    make_runtime,
    releases,
    world,
)
from tests.support import wait_for


def test_a_flag_change_refused_at_run_tells_who_asked(prod: Prod) -> None:  # noqa: F811
    runtime = prod.instance()
    flag_flows.submit(
        runtime, Change(app="api", env="prod", actor="U0BOB", verb="on", flag="apple_pay")
    )
    request_id = the_request(runtime).id
    approval_flows.click(runtime, action_id=request_id, user_id="U0BOB", decision="confirm")
    prod.flags.write(FLAGS_DOCUMENT, "someone in the console")

    outcome = approval_flows.click(
        runtime, action_id=request_id, user_id="U0ALICE", decision="approve"
    )

    action = the_request(runtime)
    assert action.status == "failed" and outcome.text == action.result
    assert "changed since this was asked" in outcome.text
    parent = wait_for(
        lambda: next(
            (m for m in prod.slack.channel_messages(RELEASES) if f"#{request_id}" in m.text),
            None,
        )
    )
    [reply] = wait_for(lambda: prod.slack.thread(RELEASES, parent.ts))
    assert reply.text == (f":no_entry: <@U0BOB>: request #{request_id} did not run: {outcome.text}")
