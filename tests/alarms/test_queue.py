"""SNS → SQS → opsbot, with moto in server mode: envelope and raw message delivery."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from bot.alarms.intake import AlarmIntake
from bot.alarms.queue import AlarmQueueConsumer
from bot.clock import SystemClock
from bot.config import Config
from bot.db.engine import make_engine, make_sessionmaker
from bot.sandbox.alarms import alarm_message
from bot.sandbox.slack import SlackEmulator
from bot.settings import Settings
from tests.support import LiveService, wait_for


def queue_depth(sqs: Any, url: str) -> int:
    attributes = sqs.get_queue_attributes(
        QueueUrl=url,
        AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
    )["Attributes"]
    return int(attributes["ApproximateNumberOfMessages"]) + int(
        attributes["ApproximateNumberOfMessagesNotVisible"]
    )


@pytest.mark.parametrize("raw", [False, True], ids=["envelope", "raw"])
def test_alarms_published_to_the_topic_reach_slack_through_the_queue(
    raw: bool,
    aws: Callable[[str], Any],
    moto_server: str,
    settings: Settings,
    config: Config,
    slack: SlackEmulator,
    make_service: Callable[..., LiveService],
) -> None:
    sns, sqs = aws("sns"), aws("sqs")
    suffix = "raw" if raw else "env"
    topic_arn = sns.create_topic(Name=f"alarms-{suffix}")["TopicArn"]
    queue_url = sqs.create_queue(QueueName=f"opsbot-alarms-{suffix}")["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])[
        "Attributes"
    ]["QueueArn"]
    subscription = sns.subscribe(TopicArn=topic_arn, Protocol="sqs", Endpoint=queue_arn)[
        "SubscriptionArn"
    ]
    if raw:
        sns.set_subscription_attributes(
            SubscriptionArn=subscription, AttributeName="RawMessageDelivery", AttributeValue="true"
        )
    sns.publish(
        TopicArn=topic_arn,
        Message=alarm_message(name="staging-queue-age", state="ALARM"),
        Subject="ALARM: staging-queue-age",
    )
    sns.publish(TopicArn=topic_arn, Message="hello from a cron job")

    service = make_service(
        settings.model_copy(
            update={
                "alarm_queue_url": queue_url,
                "aws_endpoint_url": moto_server,
                "sns_topic_arns": [topic_arn],
            }
        ),
        config,
    )
    messages = wait_for(
        lambda: len(slack.channel_messages("C0ALERTS")) == 2 and slack.channel_messages("C0ALERTS")
    )
    texts = sorted(m.text for m in messages)
    assert any("staging-queue-age" in t for t in texts)
    assert any("hello from a cron job" in t for t in texts)
    wait_for(lambda: queue_depth(sqs, queue_url) == 0)  # deleted once recorded
    assert service.runtime.queue_consumer is not None


def test_a_message_is_kept_when_it_cannot_be_recorded(
    aws: Callable[[str], Any], config: Config
) -> None:
    """The database is down: nothing is deleted, the message comes back after its visibility timeout."""
    sqs = aws("sqs")
    queue_url = sqs.create_queue(
        QueueName="opsbot-alarms-broken", Attributes={"VisibilityTimeout": "1"}
    )["QueueUrl"]
    sqs.send_message(QueueUrl=queue_url, MessageBody=alarm_message(name="prod-x", state="ALARM"))
    unreachable = make_sessionmaker(make_engine("postgresql+psycopg://nobody:x@127.0.0.1:9/none"))
    intake = AlarmIntake(sessions=unreachable, config=config, clock=SystemClock())
    consumer = AlarmQueueConsumer(
        sqs=sqs, queue_url=queue_url, record=intake.record, allowed_topics=[], wait_s=1
    )
    assert consumer.poll_once() == 0
    assert queue_depth(sqs, queue_url) == 1
    wait_for(
        lambda: sqs.receive_message(QueueUrl=queue_url, WaitTimeSeconds=1).get("Messages"),
        timeout_s=10,
    )
