"""Alarm groups are kept per route name and channel, and a group's first listing shows
every change its members had made when it formed.

Routes may share a name and post to different channels (docs/configuration.md): each
channel's storm has a parent of its own there, and no message is posted in the thread
of a parent in another channel.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy.orm import Session

from bot.alarms.models import AlarmGroup
from bot.alarms.service import Inbound, receive
from bot.config import Config, parse_config
from bot.db.engine import make_engine
from bot.db.migrate import alembic_config, upgrade
from bot.incidents import flows as incident_flows
from bot.incidents.models import Incident
from bot.models import metadata
from bot.outbox.models import SlackMessage
from bot.settings import Settings
from sandbox.slack import Message, SlackEmulator
from sandbox.sns import SnsSigner
from tests.alarms.test_late_and_flapping import waiting_on_a_lock
from tests.alarms.test_pipeline import T0, alarm, outbox_empty, send
from tests.conftest import TEST_CONFIG, TOPIC_ARN
from tests.support import LiveService, wait_for

DB_CHANNEL = "C0DBALERTS"
PROD_CHANNEL = "C0PRODALERTS"
SHARED_NAME_ROUTES = [
    {"name": "prod", "match": {"alarm_name": "prod-db-*"}, "channel": DB_CHANNEL},
    {"name": "prod", "match": {"alarm_name": "prod-*"}, "channel": PROD_CHANNEL},
    {"name": "default", "match": {}, "channel": "C0ALERTS"},
]


def test_0019_matches_the_model_and_downgrades_to_one_open_group_per_name(
    database_url: str,
) -> None:
    engine = make_engine(database_url)
    with engine.connect() as connection:
        differences = compare_metadata(
            MigrationContext.configure(connection, opts={"compare_type": True}), metadata
        )
    assert [d for d in differences if "alarm_groups" in repr(d)] == []
    # Two open groups of one route name, in two channels, as this revision allows.
    with Session(engine) as db, db.begin():
        for channel in (DB_CHANNEL, PROD_CHANNEL):
            db.add(AlarmGroup(route_name="prod", channel=channel, opened_at=T0, last_joined_at=T0))

    # The session's PostgreSQL database is shared by the tests after this one: it is
    # left at the head revision whatever happens here.
    try:
        command.downgrade(alembic_config(database_url), "0018")
        with Session(engine) as db:
            groups = db.scalars(sa.select(AlarmGroup).order_by(AlarmGroup.id)).all()
            closed = [(g.channel, g.closed_at) for g in groups]
            assert closed == [(DB_CHANNEL, None), (PROD_CHANNEL, T0)]
    finally:
        upgrade(database_url)
    with Session(engine) as db, db.begin():  # the wider index is back
        db.add(AlarmGroup(route_name="prod", channel=PROD_CHANNEL, opened_at=T0, last_joined_at=T0))
    engine.dispose()


def alarm_names(messages: list[Message]) -> list[str]:
    return sorted(m.text.split(" ")[2] for m in messages)


def test_routes_sharing_a_name_group_each_channel_s_alarms_under_a_parent_there(
    settings: Settings,
    sns_signer: SnsSigner,
    slack: SlackEmulator,
    make_service: Callable[..., LiveService],
) -> None:
    alarms = {**TEST_CONFIG["alarms"], "group_above": 2, "group_window_s": 600}
    config = parse_config({**TEST_CONFIG, "alarm_routes": SHARED_NAME_ROUTES, "alarms": alarms})
    slack.add_channel(DB_CHANNEL, "db-alerts")
    service = make_service(settings, config)
    # One route's storm crosses the limit, then the other's, then one more each.
    names = ["prod-db-1", "prod-db-2", "prod-db-3", "prod-api-1", "prod-api-2", "prod-api-3"]
    names += ["prod-db-4", "prod-api-4"]
    for n, name in enumerate(names):
        assert send(service, sns_signer, alarm(name, "ALARM", T0 + timedelta(seconds=n))) == 200
    wait_for(lambda: outbox_empty(service), timeout_s=30)

    with service.runtime.sessions() as db:
        messages = {m.key: m for m in db.scalars(sa.select(SlackMessage))}
        groups = db.scalars(sa.select(AlarmGroup).order_by(AlarmGroup.id)).all()
        assert [(g.route_name, g.channel, g.closed_at) for g in groups] == [
            ("prod", DB_CHANNEL, None),
            ("prod", PROD_CHANNEL, None),
        ]
    threaded = {m.key: m.parent_key for m in messages.values() if m.parent_key is not None}
    assert len(threaded) == 4
    for key, parent_key in threaded.items():
        assert messages[key].channel == messages[parent_key].channel, key

    pairs = ((DB_CHANNEL, "prod-db-", "prod-api-"), (PROD_CHANNEL, "prod-api-", "prod-db-"))
    for channel, prefix, other in pairs:
        top = slack.channel_messages(channel)
        [parent] = [m for m in top if "alarms on prod" in m.text]
        assert "4 alarms on prod, 4 in ALARM" in parent.text
        assert alarm_names([m for m in top if m is not parent]) == [f"{prefix}1", f"{prefix}2"]
        assert alarm_names(slack.thread(channel, parent.ts)) == [f"{prefix}3", f"{prefix}4"]
        listed = str(parent.blocks)
        assert all(f"{prefix}{n}" in listed for n in range(1, 5))
        assert other not in listed


def _change_member(
    db: Session, *, how: str, incident_id: int, config: Config, now: datetime
) -> str:
    """Change the member in `db`, uncommitted, holding its row; what its line shows then."""
    if how == "alarm_ok":
        # The path the review names: an alarm's transition, which locks its incident's
        # row FOR UPDATE before it reads it.
        inbound = Inbound(
            message_id="member-ok",
            via="https",
            body=alarm("prod-svc-b", "OK", T0 + timedelta(minutes=1)),
            topic_arn=TOPIC_ARN,
        )
        assert receive(db, inbound=inbound, config=config, now=now).startswith("incident")
        return f"#{incident_id} (in the channel) · resolved"
    # A change made with the row lock an UPDATE takes by itself (FOR NO KEY UPDATE), which
    # the key-share lock of a member row's foreign key does not wait for.
    incident = db.get(Incident, incident_id)
    assert incident is not None
    assert incident_flows.acknowledge(
        db, incident=incident, by="<@U0ALICE>", at=now, now=now, via="test"
    )
    db.flush()
    return f"#{incident_id} (in the channel) · acknowledged by <@U0ALICE>"


@pytest.mark.parametrize("how", ["alarm_ok", "plain_update"])
def test_a_member_s_change_in_flight_as_its_group_forms_shows_in_the_first_listing(
    how: str,
    settings: Settings,
    sns_signer: SnsSigner,
    slack: SlackEmulator,
    make_service: Callable[..., LiveService],
) -> None:
    alarms = {**TEST_CONFIG["alarms"], "group_above": 2, "group_window_s": 600}
    config = parse_config({**TEST_CONFIG, "alarms": alarms})
    service = make_service(settings, config)
    engine = service.runtime.engine
    if engine.dialect.name != "postgresql":
        pytest.skip("SQLite lets one writer at a time in: there is no race to lose")
    for n, name in enumerate(["prod-svc-a", "prod-svc-b"]):
        assert send(service, sns_signer, alarm(name, "ALARM", T0 + timedelta(seconds=n))) == 200
    wait_for(lambda: outbox_empty(service))
    with service.runtime.sessions() as db:
        member = db.scalars(sa.select(Incident).where(Incident.alarm_name == "prod-svc-b")).one()
        member_id = member.id

    formed = threading.Event()

    def form_group() -> str:
        # The third alarm on the route: the group forms, listing the other two.
        inbound = Inbound(
            message_id="third",
            via="https",
            body=alarm("prod-svc-c", "ALARM", T0 + timedelta(seconds=2)),
            topic_arn=TOPIC_ARN,
        )
        with service.runtime.sessions() as db:
            outcome = receive(db, inbound=inbound, config=config, now=service.runtime.clock.now())
            db.commit()
        formed.set()
        return outcome

    # The member's change holds its row, uncommitted, until the group's formation has
    # either committed or waits for it; then it commits.
    with service.runtime.sessions() as writer, ThreadPoolExecutor(1) as pool:
        now = service.runtime.clock.now()
        shown = _change_member(writer, how=how, incident_id=member_id, config=config, now=now)
        forming = pool.submit(form_group)
        wait_for(lambda: formed.is_set() or waiting_on_a_lock(engine) > 0)
        writer.commit()
        assert forming.result(30).startswith("incident")

    wait_for(lambda: outbox_empty(service), timeout_s=30)
    [parent] = [m for m in slack.channel_messages(PROD_CHANNEL) if "alarms on prod" in m.text]
    assert shown in str(parent.blocks)
