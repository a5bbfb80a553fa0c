"""Lanes: each Slack and PagerDuty method paced by its own limit, a person's click first.

Nothing here times a send: the posting pace is set so slow that a post still
owed cannot go during the test, or a pause so long that it cannot end, and
the tests assert what went out meanwhile and in which order.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import sqlalchemy as sa

from bot.config import parse_config
from bot.incidents import render
from bot.observability.metrics import family
from bot.outbox import service as outbox
from bot.outbox.models import (
    PAGERDUTY_REST,
    PENDING,
    PERSON,
    SLACK_MESSAGE,
    Delivery,
    SlackMessage,
)
from bot.outbox.pacing import SLACK_UPDATES
from bot.settings import Settings
from sandbox.pagerduty import PagerDutyEmulator
from sandbox.slack import SlackEmulator
from sandbox.sns import SnsSigner
from tests.conftest import TEST_CONFIG
from tests.incidents.helpers import (
    click,
    incident_message,
    message_text,
    only_incident,
    outbox_idle,
    page,
    pd_calls,
    send_alarm,
)
from tests.support import LiveService, statements_sent, wait_for

CHANNEL = "C0PRODALERTS"  # the paging route's channel (tests/conftest.py)
HOUR_S = 3600.0


def with_delivery(**delivery: Any) -> dict[str, Any]:
    return {**TEST_CONFIG, "delivery": {**TEST_CONFIG["delivery"], **delivery}}


def live(
    make_service: Callable[..., LiveService], settings: Settings, **delivery: Any
) -> LiveService:
    return make_service(settings, parse_config(with_delivery(**delivery)))


def pending(service: LiveService, kind: str) -> int:
    with service.runtime.sessions() as db:
        query = sa.select(sa.func.count()).where(Delivery.status == PENDING, Delivery.kind == kind)
        return int(db.scalar(query) or 0)


def unposted(service: LiveService) -> int:
    """Messages waiting for their first post."""
    with service.runtime.sessions() as db:
        query = (
            sa.select(sa.func.count())
            .select_from(Delivery)
            .join(SlackMessage, SlackMessage.key == Delivery.message_key)
            .where(
                Delivery.status == PENDING,
                Delivery.kind == SLACK_MESSAGE,
                SlackMessage.ts.is_(None),
            )
        )
        return int(db.scalar(query) or 0)


def posts(slack: SlackEmulator) -> list[str]:
    """Texts of the successful chat.postMessage calls, in the order Slack took them."""
    return [str(call.args.get("text")) for call in slack.calls_to("chat.postMessage")]


def test_clicks_update_their_messages_while_the_storms_posts_wait_for_the_channel(
    make_service: Callable[..., LiveService],
    settings: Settings,
    sns_signer: SnsSigner,
    slack: SlackEmulator,
    pagerduty: PagerDutyEmulator,
) -> None:
    # Ten posts' worth of burst, then one post every quarter of an hour in the channel.
    service = live(make_service, settings, slack_per_channel_per_s=1 / 900, slack_burst=10)
    incidents = [page(service, sns_signer, slack, pagerduty, f"prod-svc-{n}")[0] for n in range(10)]
    assert len(slack.channel_messages(CHANNEL)) == 10

    for n in range(20):  # a storm: its posts now wait for the channel
        send_alarm(service, sns_signer, f"prod-storm-{n}", "ALARM")
    wait_for(lambda: len(pagerduty.incidents) == 30)  # pages have a lane of their own
    assert unposted(service) == 20

    for incident_id in incidents:
        click(service, render.ACKNOWLEDGE, str(incident_id), response_url=slack.response_url())

    def acknowledged() -> bool:
        return all(
            "acknowledged by <@U0ALICE>" in message_text(m) for m in slack.channel_messages(CHANNEL)
        )

    wait_for(acknowledged, timeout_s=30)
    assert len(pd_calls(pagerduty, "PUT")) == 10
    assert len(slack.calls_to("chat.update")) >= 10
    # Not one storm post went out meanwhile: the updates did not wait for them, nor take their turn.
    assert len(slack.channel_messages(CHANNEL)) == 10
    assert unposted(service) == 20


def test_a_persons_delivery_goes_before_older_bulk_work_and_lifts_what_it_waits_on(
    make_service: Callable[..., LiveService], settings: Settings, slack: SlackEmulator
) -> None:
    service = live(make_service, settings, slack_per_channel_per_s=2.0, slack_burst=1)
    with service.runtime.sessions() as db:
        now = service.runtime.clock.now()
        for n in range(5):
            outbox.post_or_update(
                db,
                key=f"bulk:{n}",
                channel=CHANNEL,
                message={"text": f"bulk {n}"},
                now=now,
                new_key=True,
            )
        # Someone's answer in the thread of a message not yet posted: its post goes first.
        outbox.reply_in_thread(
            db,
            key="bulk:3",
            channel=CHANNEL,
            fold_key=None,
            item={"text": "for a person"},
            render=lambda items: {"text": items[-1]["text"], "blocks": None},
            now=now,
            priority=PERSON,
        )
        db.commit()

    wait_for(lambda: outbox_idle(service), timeout_s=30)
    assert posts(slack) == ["bulk 3", "for a person", "bulk 0", "bulk 1", "bulk 2", "bulk 4"]


def test_an_update_of_a_posted_message_leaves_its_row_as_first_posted(
    service: LiveService, sns_signer: SnsSigner, slack: SlackEmulator, pagerduty: PagerDutyEmulator
) -> None:
    def place(ts: str) -> tuple[str | None, str | None, object]:
        with service.runtime.sessions() as db:
            row = db.scalars(sa.select(SlackMessage).where(SlackMessage.ts == ts)).one()
            return row.ts, row.channel_id, row.posted_at

    incident_id, message = page(service, sns_signer, slack, pagerduty, "prod-posted")
    first = place(message.ts)
    assert first[2] is not None

    click(service, render.ACKNOWLEDGE, str(incident_id), response_url=slack.response_url())
    wait_for(lambda: "acknowledged by <@U0ALICE>" in message_text(message))
    wait_for(lambda: outbox_idle(service))

    assert message.updates >= 1
    assert place(message.ts) == first  # ts, channel and the first post's time, unwritten


def test_a_click_s_pagerduty_call_is_closed_once_in_the_transaction_that_records_it(
    service: LiveService, sns_signer: SnsSigner, slack: SlackEmulator, pagerduty: PagerDutyEmulator
) -> None:
    incident_id, message = page(service, sns_signer, slack, pagerduty, "prod-closed")
    registry = service.runtime.metrics.registry
    labels = {"target": family(PAGERDUTY_REST), "outcome": "ok"}

    def calls_done() -> float:  # counted after the worker is done with a call
        return registry.get_sample_value("opsbot_deliveries_total", labels) or 0.0

    before = calls_done()
    runtime = service.runtime
    with statements_sent(runtime.engine, runtime.outbox_engine) as sent:
        click(service, render.ACKNOWLEDGE, str(incident_id), response_url=slack.response_url())
        wait_for(lambda: "acknowledged by <@U0ALICE>" in message_text(message))
        wait_for(lambda: calls_done() == before + 1)

    with service.runtime.sessions() as db:
        call = db.scalars(sa.select(Delivery).where(Delivery.kind == PAGERDUTY_REST)).one()
        assert (call.status, call.claimed_by, call.claimed_until) == ("sent", None, None)
    closing = [
        statement
        for statement, values in sent
        if statement.startswith("UPDATE DELIVERIES SET STATUS") and call.id in values
    ]
    assert len(closing) == 1  # the sender's, with its effect; the worker writes nothing after


def test_a_429_on_chat_update_holds_updates_only(
    service: LiveService, sns_signer: SnsSigner, slack: SlackEmulator, pagerduty: PagerDutyEmulator
) -> None:
    first, message = page(service, sns_signer, slack, pagerduty, "prod-first")
    slack.faults.fail_next(1, status=429, retry_after_s=HOUR_S, calls=("chat.update",))
    click(service, render.ACKNOWLEDGE, str(first), response_url=slack.response_url())
    wait_for(lambda: SLACK_UPDATES in service.runtime.outbox.pacer.waiting())

    # Posts, pages and PagerDuty REST calls go on while updates wait out the Retry-After.
    send_alarm(service, sns_signer, "prod-second", "ALARM")
    second = wait_for(lambda: only_incident(service, "prod-second"))
    wait_for(lambda: pagerduty.incidents_for(second.dedup_key))
    wait_for(lambda: incident_message(slack, second))
    click(service, render.ACKNOWLEDGE, str(second.id), response_url=slack.response_url())
    wait_for(lambda: len(pd_calls(pagerduty, "PUT")) == 2)
    assert len(pagerduty.incidents) == 2
    assert len(slack.channel_messages(CHANNEL)) == 2

    wait_for(lambda: pending(service, SLACK_MESSAGE) == 2)  # both acks' message updates
    assert slack.calls_to("chat.update") == []
    assert "acknowledged" not in message_text(message)
    waiting = service.runtime.outbox.pacer.waiting()
    assert waiting[SLACK_UPDATES] > HOUR_S / 2
    assert not {f"slack:{CHANNEL}", "pd:rest", "pd:PD_KEY_PROD"} & waiting.keys()


def test_pagerduty_rest_is_paced_per_token_apart_from_the_events_api(
    make_service: Callable[..., LiveService],
    settings: Settings,
    sns_signer: SnsSigner,
    slack: SlackEmulator,
    pagerduty: PagerDutyEmulator,
) -> None:
    # One acknowledge (two REST requests: it looks its incident up, then changes it),
    # then one request a day: a second acknowledge must wait; pages must not.
    service = live(make_service, settings, pagerduty_rest_per_min=1 / 1440, pagerduty_rest_burst=2)
    first, _ = page(service, sns_signer, slack, pagerduty, "prod-first")
    second, _ = page(service, sns_signer, slack, pagerduty, "prod-second")
    click(service, render.ACKNOWLEDGE, str(first), response_url=slack.response_url())
    wait_for(lambda: pd_calls(pagerduty, "PUT"))
    # The first call is recorded after PagerDuty answers: until then it, too, is pending.
    wait_for(lambda: pending(service, PAGERDUTY_REST) == 0)
    click(service, render.ACKNOWLEDGE, str(second), response_url=slack.response_url())
    wait_for(lambda: pending(service, PAGERDUTY_REST) == 1)

    send_alarm(service, sns_signer, "prod-third", "ALARM")
    third = wait_for(lambda: only_incident(service, "prod-third"))
    wait_for(lambda: pagerduty.incidents_for(third.dedup_key))  # the Events API is not held
    assert len(pd_calls(pagerduty, "PUT")) == 1
    assert pending(service, PAGERDUTY_REST) == 1
    assert "pd:rest" in service.runtime.outbox.pacer.waiting()


def test_a_429_from_pagerduty_rest_holds_the_token_for_its_retry_after_and_not_the_events(
    service: LiveService, sns_signer: SnsSigner, slack: SlackEmulator, pagerduty: PagerDutyEmulator
) -> None:
    first, _ = page(service, sns_signer, slack, pagerduty, "prod-first")
    # Once: the client hands the 429 back at once (bot/adapters/pagerduty.py).
    pagerduty.faults.fail_next(1, status=429, retry_after_s=HOUR_S, calls=("/incidents/",))
    click(service, render.ACKNOWLEDGE, str(first), response_url=slack.response_url())
    wait_for(lambda: "pd:rest" in service.runtime.outbox.pacer.waiting())
    assert service.runtime.outbox.pacer.waiting()["pd:rest"] > HOUR_S / 2
    assert pd_calls(pagerduty, "PUT") == []
    assert pending(service, PAGERDUTY_REST) == 1  # kept, not given up

    send_alarm(service, sns_signer, "prod-second", "ALARM")
    second = wait_for(lambda: only_incident(service, "prod-second"))
    wait_for(lambda: pagerduty.incidents_for(second.dedup_key))
    wait_for(lambda: incident_message(slack, second))
