"""A storm reads like one event: transitions fold into one reply per window, alarms that
open together on one route are listed in one parent message, nothing is lost or hidden.

The fold window is held by a clock the tests move (`ManualClock`), so nothing here
depends on how fast the machine is.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa

from bot.alarms.models import AlarmGroup, AlarmGroupMember
from bot.clock import ManualClock
from bot.config import Config, parse_config
from bot.incidents.models import Incident
from bot.incidents.render import ACKNOWLEDGE
from bot.outbox.models import LATER, PENDING, SLACK_MESSAGE, SLACK_REPLY, Delivery
from bot.settings import Settings
from sandbox.pagerduty import PagerDutyEmulator
from sandbox.slack import Message, SlackEmulator
from sandbox.sns import SnsSigner
from tests.alarms.test_pipeline import T0, alarm, outbox_empty, send
from tests.conftest import TEST_CONFIG
from tests.support import LiveService, wait_for

CHANNEL = "C0PRODALERTS"  # the paging route "prod" (tests/conftest.py)


def storm_config(**alarms: Any) -> Config:
    return parse_config({**TEST_CONFIG, "alarms": {**TEST_CONFIG["alarms"], **alarms}})


def pending_replies(service: LiveService) -> list[Delivery]:
    with service.runtime.sessions() as db:
        query = sa.select(Delivery).where(Delivery.status == PENDING, Delivery.kind == SLACK_REPLY)
        return list(db.scalars(query))


def only_held_work_left(service: LiveService) -> bool:
    """Nothing pending but what waits for its time: the folded reply, a delayed resolve."""
    with service.runtime.sessions() as db:
        pending = db.scalars(sa.select(Delivery).where(Delivery.status == PENDING)).all()
        now = service.runtime.clock.now()
    return all(d.not_before > now for d in pending)


def shows(message: Message, state: str) -> bool:
    return f" {state}: " in message.text


def flap(service: LiveService, signer: SnsSigner, name: str, states: list[str]) -> None:
    for n, state in enumerate(states, start=1):
        assert send(service, signer, alarm(name, state, T0 + timedelta(minutes=n))) == 200


def test_transitions_in_a_window_fold_into_one_reply_with_the_count_and_last_state(
    settings: Settings,
    sns_signer: SnsSigner,
    slack: SlackEmulator,
    pagerduty: PagerDutyEmulator,
    make_service: Callable[..., LiveService],
) -> None:
    clock = ManualClock(datetime.now(UTC))
    config = storm_config(reopen_window_s=600, fold_window_s=30)
    service = make_service(settings, config, clock=clock)
    send(service, sns_signer, alarm("prod-flappy", "ALARM", T0))
    [message] = wait_for(lambda: slack.channel_messages(CHANNEL))

    flap(service, sns_signer, "prod-flappy", ["OK", "ALARM", "OK", "ALARM", "OK"])
    # The message shows the last state at once; the reply waits out its window.
    wait_for(lambda: only_held_work_left(service) and shows(message, "OK"))
    assert slack.thread(CHANNEL, message.ts) == []
    [held] = pending_replies(service)
    assert len(held.payload["items"]) == 5

    clock.advance(seconds=31)
    service.runtime.outbox.wake()
    [reply] = wait_for(lambda: slack.thread(CHANNEL, message.ts))
    wait_for(lambda: pending_replies(service) == [])
    assert len(slack.thread(CHANNEL, message.ts)) == 1
    assert "ALARM → OK → ALARM …* 5 times in 4 min, last: *OK*" in reply.text
    assert [m.ts for m in slack.channel_messages(CHANNEL)] == [message.ts]
    assert [e["event_action"] for e in pagerduty.events] == ["trigger"]  # resolve: reopen window
    registry = service.runtime.metrics.registry
    assert registry.get_sample_value("opsbot_slack_folded_items_total") == 4  # posts spared

    # The next transition opens a window of its own.
    send(service, sns_signer, alarm("prod-flappy", "ALARM", T0 + timedelta(minutes=9)))
    wait_for(lambda: shows(message, "ALARM") and len(pending_replies(service)) == 1)
    clock.advance(seconds=31)
    service.runtime.outbox.wake()
    replies = wait_for(lambda: slack.thread(CHANNEL, message.ts)[1:])
    assert "OK → ALARM" in replies[0].text


def test_a_restart_mid_window_loses_no_transition(
    settings: Settings,
    sns_signer: SnsSigner,
    slack: SlackEmulator,
    pagerduty: PagerDutyEmulator,
    make_service: Callable[..., LiveService],
) -> None:
    clock = ManualClock(datetime.now(UTC))
    config = storm_config(reopen_window_s=600, fold_window_s=30)
    first = make_service(settings, config, clock=clock)
    send(first, sns_signer, alarm("prod-restart", "ALARM", T0))
    [message] = wait_for(lambda: slack.channel_messages(CHANNEL))
    flap(first, sns_signer, "prod-restart", ["OK", "ALARM"])
    wait_for(lambda: only_held_work_left(first) and shows(message, "ALARM"))
    first.stop()  # what it owes is in the outbox, not in its memory

    second = make_service(settings, config, clock=clock)
    send(second, sns_signer, alarm("prod-restart", "OK", T0 + timedelta(minutes=3)))
    wait_for(lambda: only_held_work_left(second) and shows(message, "OK"))
    assert slack.thread(CHANNEL, message.ts) == []

    clock.advance(seconds=31)
    second.runtime.outbox.wake()
    [reply] = wait_for(lambda: slack.thread(CHANNEL, message.ts))
    wait_for(lambda: pending_replies(second) == [])
    assert len(slack.thread(CHANNEL, message.ts)) == 1
    assert "3 times" in reply.text and "last: *OK*" in reply.text
    assert len(slack.calls_to("chat.postMessage")) == 2  # the message and its one reply


def action_values(message: Message, action_id: str) -> list[str]:
    return [
        element.get("value", "")
        for block in message.blocks or []
        if block.get("type") == "actions"
        for element in block.get("elements", [])
        if element.get("action_id") == action_id
    ]


def test_more_alarms_than_the_limit_on_a_route_are_listed_in_one_parent(
    settings: Settings,
    sns_signer: SnsSigner,
    slack: SlackEmulator,
    pagerduty: PagerDutyEmulator,
    make_service: Callable[..., LiveService],
) -> None:
    service = make_service(settings, storm_config(group_above=3, group_window_s=600))
    names = [f"prod-svc-{n}" for n in range(6)]
    for n, name in enumerate(names):
        assert send(service, sns_signer, alarm(name, "ALARM", T0 + timedelta(seconds=n))) == 200
    wait_for(lambda: outbox_empty(service), timeout_s=30)

    top = slack.channel_messages(CHANNEL)
    [parent] = [m for m in top if "alarms on prod" in m.text]
    assert "6 alarms on prod, 6 in ALARM" in parent.text
    # The first three were posted before the group formed; the others are in its thread.
    assert sorted(m.text.split(" ")[2] for m in top if m is not parent) == names[:3]
    threaded = slack.thread(CHANNEL, parent.ts)
    assert sorted(m.text.split(" ")[2] for m in threaded) == names[3:]
    listed = str(parent.blocks)
    assert all(name in listed for name in names)
    with service.runtime.sessions() as db:
        incidents = {i.alarm_name: i for i in db.scalars(sa.select(Incident))}
        assert db.scalar(sa.select(sa.func.count()).select_from(AlarmGroupMember)) == 6
    # Grouping hides nothing: each alarm keeps its incident, its buttons and its page.
    for message in threaded:
        incident = incidents[message.text.split(" ")[2]]
        assert action_values(message, ACKNOWLEDGE) == [str(incident.id)]
    for incident in incidents.values():
        assert len(pagerduty.incidents_for(incident.dedup_key)) == 1

    # A grouped alarm changes: its own message and its line follow, in place.
    send(service, sns_signer, alarm("prod-svc-5", "OK", T0 + timedelta(minutes=5)))
    wait_for(lambda: outbox_empty(service), timeout_s=30)
    [mine] = [m for m in slack.thread(CHANNEL, parent.ts) if "prod-svc-5" in m.text]
    assert shows(mine, "OK") and mine.updates >= 1
    assert "6 alarms on prod, 5 in ALARM" in parent.text
    assert f"prod-svc-5 · #{incidents['prod-svc-5'].id} (in this thread) · resolved" in str(
        parent.blocks
    )
    assert len(slack.thread(CHANNEL, parent.ts)) == 3  # no reply of its own in the thread
    assert len(slack.channel_messages(CHANNEL)) == 4
    assert [e["event_action"] for e in pagerduty.events].count("resolve") == 1


def test_up_to_the_limit_alarms_are_not_grouped(
    settings: Settings,
    sns_signer: SnsSigner,
    slack: SlackEmulator,
    make_service: Callable[..., LiveService],
) -> None:
    service = make_service(settings, storm_config(group_above=3, group_window_s=600))
    for n in range(3):
        send(service, sns_signer, alarm(f"prod-one-{n}", "ALARM", T0 + timedelta(seconds=n)))
    wait_for(lambda: outbox_empty(service))
    assert sorted(m.text.split(" ")[2] for m in slack.channel_messages(CHANNEL)) == [
        f"prod-one-{n}" for n in range(3)
    ]
    with service.runtime.sessions() as db:
        assert db.scalars(sa.select(AlarmGroup)).all() == []


def test_a_grouped_storm_keeps_to_the_channel_budget_without_a_429(
    settings: Settings,
    sns_signer: SnsSigner,
    pagerduty: PagerDutyEmulator,
    make_service: Callable[..., LiveService],
) -> None:
    # Slack as it is: a channel takes one post a second after a burst of 5.
    slack = SlackEmulator(
        token="xoxb-sandbox", enforce_rate_limit=True, rate_limit_burst=5, rate_limit_per_s=1.0
    )
    slack.add_channel(CHANNEL, "prod-alerts")
    slack.start()
    try:
        service = make_service(
            settings.model_copy(update={"slack_api_url": slack.api_url}),
            storm_config(reopen_window_s=600, group_above=5, group_window_s=600),
        )
        names = [f"prod-node-{n}" for n in range(10)]
        for step, state in enumerate(["ALARM", "OK", "ALARM"]):
            for n, name in enumerate(names):
                at = T0 + timedelta(minutes=step, seconds=n)
                assert send(service, sns_signer, alarm(name, state, at)) == 200
        wait_for(lambda: outbox_empty(service), timeout_s=90, interval_s=0.2)

        assert [c for c in slack.calls if c.error == "ratelimited"] == []
        top = slack.channel_messages(CHANNEL)
        [parent] = [m for m in top if "alarms on prod" in m.text]
        everything = slack.all_messages()
        for name in names:  # every alarm's message shows its last state
            [mine] = [m for m in everything if m.text.startswith(f":red_circle: ALARM: {name} ")]
            assert mine.thread_ts in (None, parent.ts)
        assert "10 alarms on prod, 10 in ALARM" in parent.text
        for incident_key in {e["dedup_key"] for e in pagerduty.events}:
            assert len(pagerduty.incidents_for(incident_key)) == 1
        assert len({e["dedup_key"] for e in pagerduty.events}) == len(names)
    finally:
        slack.stop()


def test_under_the_update_tier_a_group_shows_a_change_before_the_alarm_s_own_message(
    settings: Settings,
    sns_signer: SnsSigner,
    slack: SlackEmulator,
    make_service: Callable[..., LiveService],
) -> None:
    # One chat.update may go in this test, none after it: which one goes first?
    config = {
        **TEST_CONFIG,
        "alarms": {**TEST_CONFIG["alarms"], "group_above": 1, "group_window_s": 600},
        "delivery": {
            **TEST_CONFIG["delivery"],
            "slack_updates_per_min": 0.001,
            "slack_updates_burst": 1,
        },
    }
    service = make_service(settings, parse_config(config))
    send(service, sns_signer, alarm("prod-first", "ALARM", T0))
    send(service, sns_signer, alarm("prod-second", "ALARM", T0 + timedelta(seconds=1)))
    wait_for(lambda: outbox_empty(service))
    [parent] = [m for m in slack.channel_messages(CHANNEL) if "alarms on prod" in m.text]
    [second] = slack.thread(CHANNEL, parent.ts)
    assert "2 alarms on prod, 2 in ALARM" in parent.text

    send(service, sns_signer, alarm("prod-second", "OK", T0 + timedelta(minutes=1)))
    wait_for(lambda: "2 alarms on prod, 1 in ALARM" in parent.text)
    assert shows(second, "ALARM")  # its own update waits: the group said it first

    def owed_messages() -> list[Delivery] | None:
        with service.runtime.sessions() as db:
            query = sa.select(Delivery).where(
                Delivery.status == PENDING, Delivery.kind == SLACK_MESSAGE
            )
            rows = list(db.scalars(query))
        return rows if len(rows) == 1 else None

    # The group's update may show in Slack a moment before its delivery is marked sent.
    [owed] = wait_for(owed_messages)
    assert owed.priority == LATER and owed.payload["text"].startswith(":large_green_circle: OK")
