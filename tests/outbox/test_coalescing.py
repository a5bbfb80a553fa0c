"""Updates owed to one Slack message coalesce: Slack gets the latest render, once."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

import sqlalchemy as sa

from bot.config import parse_config
from bot.outbox.models import PENDING, SLACK_MESSAGE, Delivery
from bot.settings import Settings
from sandbox.slack import SlackEmulator
from sandbox.sns import SnsSigner
from tests.alarms.test_pipeline import T0, alarm, outbox_empty, send
from tests.conftest import TEST_CONFIG
from tests.support import LiveService, wait_for

CHANNEL = "C0PRODALERTS"


def refused_update(service: LiveService) -> bool:
    """An update of the message is owed and Slack has refused it at least once."""
    with service.runtime.sessions() as db:
        query = sa.select(Delivery).where(
            Delivery.status == PENDING,
            Delivery.kind == SLACK_MESSAGE,
            Delivery.last_error.is_not(None),
        )
        return db.scalars(query).first() is not None


def test_many_updates_of_one_message_reach_slack_as_the_latest_in_fewer_calls(
    settings: Settings,
    sns_signer: SnsSigner,
    slack: SlackEmulator,
    make_service: Callable[..., LiveService],
) -> None:
    # One incident throughout: every re-ALARM is within the reopen window.
    alarms = {**TEST_CONFIG["alarms"], "reopen_window_s": 600}
    service = make_service(settings, parse_config({**TEST_CONFIG, "alarms": alarms}))
    send(service, sns_signer, alarm("prod-busy", "ALARM", T0))
    [message] = wait_for(lambda: slack.channel_messages(CHANNEL))
    wait_for(lambda: outbox_empty(service))
    # Slack refuses every chat.update until all the transitions are in: what is owed
    # piles up in the outbox and must coalesce there.
    slack.faults.fail_for(3600, status=503, calls=("chat.update",))
    states = ["OK", "ALARM"] * 4
    for n, state in enumerate(states, start=1):
        assert (
            send(service, sns_signer, alarm("prod-busy", state, T0 + timedelta(minutes=n))) == 200
        )
    wait_for(lambda: refused_update(service))
    slack.faults.clear()
    wait_for(lambda: outbox_empty(service), timeout_s=30)

    updates = slack.calls_to("chat.update")
    assert 1 <= len(updates) < len(states)
    assert " ALARM: prod-busy" in message.text
    assert f"{len(states) + 1} transitions" in str(message.blocks)
    assert message.updates == len(updates)
