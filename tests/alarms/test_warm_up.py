"""The intake's warm-up at start: the first page's statements run once, and nothing stays."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa

from bot.alarms.intake import AlarmIntake
from bot.alarms.models import ReceivedMessage
from bot.alarms.service import Inbound
from bot.clock import SystemClock
from bot.config import Config, parse_config
from bot.db.engine import make_sessionmaker
from bot.incidents.models import Incident, IncidentEvent
from bot.outbox.models import Delivery, SlackMessage
from sandbox.alarms import alarm_message
from tests.conftest import TEST_CONFIG, TOPIC_ARN

TABLES = (ReceivedMessage, Incident, IncidentEvent, SlackMessage, Delivery)


def statements_of_warm_up(engine: sa.Engine, config: Config) -> list[str]:
    seen: list[str] = []

    def note(*args: Any) -> None:
        seen.append(" ".join(str(args[2]).split()))

    intake = AlarmIntake(sessions=make_sessionmaker(engine), config=config, clock=SystemClock())
    sa.event.listen(engine, "before_cursor_execute", note)
    try:
        intake.warm_up()
    finally:
        sa.event.remove(engine, "before_cursor_execute", note)
    return seen


def rows(engine: sa.Engine) -> dict[str, int]:
    with engine.connect() as connection:
        return {
            model.__tablename__: connection.scalar(sa.select(sa.func.count()).select_from(model))
            or 0
            for model in TABLES
        }


def test_warm_up_opens_and_pages_an_incident_and_keeps_nothing(engine: sa.Engine) -> None:
    statements = statements_of_warm_up(engine, parse_config(TEST_CONFIG))

    assert any(s.startswith("INSERT INTO incidents ") for s in statements)
    assert any(s.startswith("INSERT INTO incident_events ") for s in statements)
    assert any(s.startswith("INSERT INTO deliveries ") for s in statements)
    assert any(s.startswith("UPDATE incidents SET paged=") for s in statements)
    assert rows(engine) == dict.fromkeys((m.__tablename__ for m in TABLES), 0)


def test_the_first_alarm_after_a_warm_up_is_incident_1(engine: sa.Engine) -> None:
    config = parse_config(TEST_CONFIG)
    statements_of_warm_up(engine, config)
    intake = AlarmIntake(sessions=make_sessionmaker(engine), config=config, clock=SystemClock())

    body = alarm_message(name="prod-api-5xx", state="ALARM", at=datetime.now(UTC))
    outcome = intake.record(Inbound(message_id="m-1", via="https", body=body, topic_arn=TOPIC_ARN))

    assert outcome == "incident 1 opened: ALARM, paged"


def test_warm_up_without_a_paging_route_opens_an_incident_all_the_same(engine: sa.Engine) -> None:
    config = parse_config({"alarm_routes": [{"match": {}, "channel": "C0ALERTS"}]})

    statements = statements_of_warm_up(engine, config)

    assert any(s.startswith("INSERT INTO incidents ") for s in statements)
    assert rows(engine) == dict.fromkeys((m.__tablename__ for m in TABLES), 0)
