"""A post Slack answered with a 5xx or `fatal_error` may have been made all the same
("it's possible some aspect of the operation succeeded"), and may show only later: the
next attempt waits for it as after a timeout, finds it, and does not post it twice."""

from __future__ import annotations

import pytest

from sandbox.pagerduty import PagerDutyEmulator
from sandbox.slack import SlackEmulator
from sandbox.sns import SnsSigner
from tests.incidents.helpers import command, incident_message, only_incident, send_alarm
from tests.outbox.test_faults import assert_exactly_once, fire, settled
from tests.support import LiveService, wait_for

# Shorter than the lease (5 s): a post that landed shows before the next attempt looks.
SHOWS_AFTER_S = 2.0


@pytest.mark.parametrize("status", [500, 503])
def test_a_post_answered_with_a_server_error_that_landed_is_not_posted_again(
    service: LiveService,
    sns_signer: SnsSigner,
    slack: SlackEmulator,
    pagerduty: PagerDutyEmulator,
    status: int,
) -> None:
    half_done = slack.faults.fail_but_do_next(
        1, status=status, done_after_s=SHOWS_AFTER_S, calls=("chat.postMessage",)
    )
    fire(service, sns_signer, "prod-half-done", "ALARM", 0)
    wait_for(lambda: half_done.done, timeout_s=30)  # the post landed after all
    wait_for(lambda: settled(service), timeout_s=30)
    assert len(slack.channel_messages("C0PRODALERTS")) == 1
    assert len(slack.calls_to("chat.postMessage")) == 1
    assert slack.calls_to("conversations.history")  # it looked before posting again
    assert_exactly_once(service, slack, pagerduty)


def test_a_thread_reply_answered_fatal_error_that_landed_is_not_posted_again(
    service: LiveService, sns_signer: SnsSigner, slack: SlackEmulator
) -> None:
    # An incident no route pages for: its notes reach the thread straight away.
    send_alarm(service, sns_signer, "staging-queue-depth", "ALARM")
    incident = wait_for(lambda: only_incident(service, "staging-queue-depth"))
    message = wait_for(lambda: incident_message(slack, incident))
    wait_for(lambda: settled(service))
    # Answered 200 with `fatal_error`, as Slack does for an error of its own.
    half_done = slack.faults.fail_but_do_next(
        1, status=200, done_after_s=SHOWS_AFTER_S, calls=("chat.postMessage",)
    )
    command(service, "/incident", f"note {incident.id} once", response_url=slack.response_url())
    wait_for(lambda: half_done.done, timeout_s=30)  # the reply landed after all
    wait_for(lambda: settled(service), timeout_s=30)
    replies = [m.text for m in slack.thread(message.channel, message.ts)]
    assert [r.rsplit(": ", 1)[1] for r in replies] == ["once"]
    assert slack.calls_to("conversations.replies")  # it looked before posting again
