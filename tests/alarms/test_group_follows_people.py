"""A storm's parent message follows what people do to its alarms, not only the alarms.

Each line of the parent says whether its alarm's incident is acknowledged (and by whom)
or resolved; a click in Slack (or a change in PagerDuty) changes that as surely as an
alarm's transition does.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import pytest
import sqlalchemy as sa

from bot.alarms.service import Inbound, receive
from bot.config import parse_config
from bot.incidents import render
from bot.incidents.models import Incident
from bot.settings import Settings
from sandbox.pagerduty import PagerDutyEmulator
from sandbox.slack import Message, SlackEmulator
from sandbox.sns import SnsSigner
from tests.alarms.test_late_and_flapping import waiting_on_a_lock
from tests.alarms.test_pipeline import T0, alarm, outbox_empty, send
from tests.conftest import TEST_CONFIG, TOPIC_ARN
from tests.incidents.helpers import click, incident_row
from tests.support import LiveService, wait_for

CHANNEL = "C0PRODALERTS"
NAMES = ["prod-svc-a", "prod-svc-b", "prod-svc-c"]


def grouped(service: LiveService, slack: SlackEmulator, sns_signer: SnsSigner) -> Message:
    """Three alarms open together on route `prod`: one parent lists them."""
    slack.set_channel_members(CHANNEL, ["U0ALICE"])
    for n, name in enumerate(NAMES):
        assert send(service, sns_signer, alarm(name, "ALARM", T0 + timedelta(seconds=n))) == 200
    parents: list[Message] = wait_for(
        lambda: [m for m in slack.channel_messages(CHANNEL) if "alarms on" in m.text]
    )
    [parent] = parents
    wait_for(lambda: "3 alarms on prod, 3 in ALARM" in parent.text)
    return parent


def incident_ids(service: LiveService) -> dict[str, int]:
    with service.runtime.sessions() as db:
        return {i.alarm_name or "": i.id for i in db.scalars(sa.select(Incident))}


def test_acknowledging_and_resolving_a_grouped_alarm_shows_in_its_group_s_message(
    settings: Settings,
    sns_signer: SnsSigner,
    slack: SlackEmulator,
    pagerduty: PagerDutyEmulator,
    make_service: Callable[..., LiveService],
) -> None:
    alarms = {**TEST_CONFIG["alarms"], "group_above": 1, "group_window_s": 600}
    service = make_service(settings, parse_config({**TEST_CONFIG, "alarms": alarms}))
    parent = grouped(service, slack, sns_signer)
    wait_for(lambda: outbox_empty(service))
    ids = incident_ids(service)

    click(service, render.ACKNOWLEDGE, str(ids["prod-svc-a"]), response_url=slack.response_url())
    wait_for(
        lambda: (
            f"prod-svc-a · #{ids['prod-svc-a']} (in the channel) · acknowledged by <@U0ALICE>"
            in str(parent.blocks)
        )
    )
    click(service, render.RESOLVE, str(ids["prod-svc-b"]), response_url=slack.response_url())
    wait_for(
        lambda: (
            f"prod-svc-b · #{ids['prod-svc-b']} (in this thread) · resolved" in str(parent.blocks)
        )
    )
    # The alarm itself still fires: the headline counts it.
    assert "3 alarms on prod, 3 in ALARM" in parent.text
    assert "acknowledged by <@U0ALICE>" in str(parent.blocks)


def test_two_acknowledgements_at_once_both_show_in_the_group_s_message(
    settings: Settings,
    sns_signer: SnsSigner,
    slack: SlackEmulator,
    pagerduty: PagerDutyEmulator,
    make_service: Callable[..., LiveService],
) -> None:
    alarms = {**TEST_CONFIG["alarms"], "group_above": 1, "group_window_s": 600}
    service = make_service(settings, parse_config({**TEST_CONFIG, "alarms": alarms}))
    engine = service.runtime.engine
    if engine.dialect.name != "postgresql":
        pytest.skip("SQLite lets one writer at a time in: there is no race to lose")
    parent = grouped(service, slack, sns_signer)
    wait_for(lambda: outbox_empty(service))
    ids = incident_ids(service)
    first, second = ids["prod-svc-a"], ids["prod-svc-b"]

    # The first acknowledgement's transaction stops right after it has read the group's
    # lines, uncommitted, until the second has either committed or waits for it.
    held, release = threading.Event(), threading.Event()

    def hold(_conn: object, _cursor: object, statement: str, *_args: object) -> None:
        rendering = "alarm_group_members.threaded" in statement and "acknowledged_by" in statement
        if rendering and not held.is_set():
            held.set()
            release.wait(30)

    sa.event.listen(engine, "after_cursor_execute", hold)
    try:
        with ThreadPoolExecutor(2) as pool:
            url = slack.response_url()
            pool.submit(click, service, render.ACKNOWLEDGE, str(first), response_url=url)
            assert held.wait(15), "the first acknowledgement never rendered the group"
            pool.submit(click, service, render.ACKNOWLEDGE, str(second), response_url=url)
            wait_for(
                lambda: (
                    waiting_on_a_lock(engine)
                    or incident_row(service, second).acknowledged_at is not None
                )
            )
            release.set()
    finally:
        release.set()
        sa.event.remove(engine, "after_cursor_execute", hold)

    wait_for(lambda: outbox_empty(service))
    lines = str(parent.blocks)
    assert f"prod-svc-a · #{first} (in the channel) · acknowledged by <@U0ALICE>" in lines
    assert f"prod-svc-b · #{second} (in this thread) · acknowledged by <@U0ALICE>" in lines


def test_two_alarms_joining_a_group_at_once_both_open_and_page(
    settings: Settings,
    sns_signer: SnsSigner,
    slack: SlackEmulator,
    pagerduty: PagerDutyEmulator,
    make_service: Callable[..., LiveService],
) -> None:
    alarms = {**TEST_CONFIG["alarms"], "group_above": 1, "group_window_s": 600}
    config = parse_config({**TEST_CONFIG, "alarms": alarms})
    service = make_service(settings, config)
    engine = service.runtime.engine
    if engine.dialect.name != "postgresql":
        pytest.skip("SQLite lets one writer at a time in: there is no race to lose")
    grouped(service, slack, sns_signer)
    wait_for(lambda: outbox_empty(service))

    # Two transactions (two instances) each add an alarm to the open group, and both
    # have done so before either commits: adding a member share-locks the group's key.
    both_joined = threading.Barrier(2, timeout=15)
    joining: set[int] = set()

    def after_joining(_conn: object, _cursor: object, statement: str, *_args: object) -> None:
        me = threading.get_ident()
        if "INSERT INTO alarm_group_members" in statement and me in joining:
            joining.discard(me)
            both_joined.wait()

    def apply(name: str, n: int) -> str:
        joining.add(threading.get_ident())
        body = alarm(name, "ALARM", T0 + timedelta(seconds=10 + n))
        inbound = Inbound(message_id=f"join-{name}", via="https", body=body, topic_arn=TOPIC_ARN)
        with service.runtime.sessions() as db:
            outcome = receive(db, inbound=inbound, config=config, now=service.runtime.clock.now())
            db.commit()
            return outcome

    sa.event.listen(engine, "after_cursor_execute", after_joining)
    try:
        with ThreadPoolExecutor(2) as pool:
            joins = [
                pool.submit(apply, name, n) for n, name in enumerate(["prod-svc-d", "prod-svc-e"])
            ]
            outcomes = [join.result(60) for join in joins]
    finally:
        sa.event.remove(engine, "after_cursor_execute", after_joining)

    assert all(outcome.startswith("incident") for outcome in outcomes), outcomes
    assert {"prod-svc-d", "prod-svc-e"} <= set(incident_ids(service))
    wait_for(lambda: len(pagerduty.incidents) == 5)  # the group's three and the two joined
