"""SNS delivers at least once: a MessageId seen before changes nothing, even mid-transaction."""

from __future__ import annotations

import threading
from datetime import UTC, datetime

import sqlalchemy as sa

from bot.alarms.intake import AlarmIntake
from bot.alarms.models import ReceivedMessage
from bot.alarms.service import Inbound, receive
from bot.clock import SystemClock
from bot.config import parse_config
from bot.db.engine import make_sessionmaker
from bot.incidents.models import Incident
from bot.outbox.models import Delivery
from sandbox.alarms import alarm_message
from tests.conftest import TEST_CONFIG, TOPIC_ARN

BODY = alarm_message(name="prod-api-5xx", state="ALARM", at=datetime(2026, 11, 25, tzinfo=UTC))


def counts(engine: sa.Engine) -> tuple[int, int, int]:
    with engine.connect() as connection:
        return tuple(  # type: ignore[return-value]
            connection.scalar(sa.select(sa.func.count()).select_from(model))
            for model in (ReceivedMessage, Incident, Delivery)
        )


def make_intake(engine: sa.Engine) -> AlarmIntake:
    return AlarmIntake(
        sessions=make_sessionmaker(engine), config=parse_config(TEST_CONFIG), clock=SystemClock()
    )


def test_a_message_id_seen_before_is_a_duplicate(engine: sa.Engine) -> None:
    intake = make_intake(engine)
    first = intake.record(Inbound(message_id="m-1", via="https", body=BODY, topic_arn=TOPIC_ARN))
    after_first = counts(engine)

    again = intake.record(Inbound(message_id="m-1", via="sqs", body=BODY, topic_arn=TOPIC_ARN))

    assert first == "incident 1 opened: ALARM, paged"
    assert again == "duplicate"
    assert counts(engine) == after_first == (1, 1, 2)


def test_a_delivery_racing_an_uncommitted_one_waits_and_is_a_duplicate(
    engine: sa.Engine,
) -> None:
    intake = make_intake(engine)
    answers: list[str] = []
    with intake.sessions() as db_session:
        inbound = Inbound(message_id="m-1", via="https", body=BODY, topic_arn=TOPIC_ARN)
        receive(db_session, inbound=inbound, config=intake.config, now=intake.clock.now())
        racer = threading.Thread(target=lambda: answers.append(intake.record(inbound)))
        racer.start()
        racer.join(timeout=0.5)
        assert racer.is_alive(), "the second delivery did not wait for the first"
        db_session.commit()
    racer.join(timeout=10)

    assert answers == ["duplicate"]
    assert counts(engine) == (1, 1, 2)
