"""SNS → SQS → opsbot, with moto in server mode: verified envelopes, and raw delivery."""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Callable
from typing import Any

import pytest
import sqlalchemy as sa

from bot.alarms.intake import AlarmIntake
from bot.alarms.models import ReceivedMessage
from bot.alarms.queue import AlarmQueueConsumer
from bot.alarms.service import Inbound
from bot.clock import SystemClock
from bot.config import Config
from bot.db.engine import make_engine, make_sessionmaker
from bot.incidents.models import Incident
from bot.outbox.models import Delivery
from bot.settings import Settings
from sandbox.alarms import alarm_message
from sandbox.pagerduty import PagerDutyEmulator
from sandbox.server import free_port
from sandbox.slack import SlackEmulator
from sandbox.sns import SnsSigner
from tests.conftest import TOPIC_ARN
from tests.support import LiveService, metric, wait_for

ALARM = alarm_message(name="prod-api-5xx", state="ALARM")
OTHER_TOPIC = "arn:aws:sns:us-east-1:999999999999:other"


def queue_depth(sqs: Any, url: str) -> int:
    attributes = sqs.get_queue_attributes(
        QueueUrl=url,
        AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
    )["Attributes"]
    return int(attributes["ApproximateNumberOfMessages"]) + int(
        attributes["ApproximateNumberOfMessagesNotVisible"]
    )


def new_queue(sqs: Any, name: str) -> str:
    """A queue of this test's own (moto lives as long as the session)."""
    url: str = sqs.create_queue(QueueName=f"{name}-{uuid.uuid4().hex[:8]}")["QueueUrl"]
    return url


def subscribed_queue(sns: Any, sqs: Any, name: str) -> tuple[str, str, str]:
    """A moto topic and a queue subscribed to it: (topic ARN, queue URL, subscription ARN)."""
    topic_arn: str = sns.create_topic(Name=f"{name}-{uuid.uuid4().hex[:8]}")["TopicArn"]
    queue_url = new_queue(sqs, f"opsbot-{name}")
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])[
        "Attributes"
    ]["QueueArn"]
    subscription: str = sns.subscribe(TopicArn=topic_arn, Protocol="sqs", Endpoint=queue_arn)[
        "SubscriptionArn"
    ]
    return topic_arn, queue_url, subscription


def consumer_of(service: LiveService, sqs: Any, queue_url: str) -> AlarmQueueConsumer:
    """The consumer the service would run, polled by the test."""
    return AlarmQueueConsumer(
        sqs=sqs,
        queue_url=queue_url,
        record=service.runtime.intake.record,
        record_batch=service.runtime.intake.record_batch,
        allowed_topics=service.runtime.settings.sns_topic_arns,
        verifier=service.runtime.sns_verifier,
        metrics=service.runtime.metrics,
        wait_s=1,
    )


def nothing_happened(
    service: LiveService, slack: SlackEmulator, pagerduty: PagerDutyEmulator
) -> bool:
    """No row, and nobody was told: no Slack post, no PagerDuty event."""
    with service.runtime.sessions() as db:
        counts = [
            db.scalar(sa.select(sa.func.count()).select_from(model))
            for model in (ReceivedMessage, Incident, Delivery)
        ]
    return counts == [0, 0, 0] and not slack.all_messages() and not pagerduty.events


def test_a_signed_envelope_from_an_allowed_topic_pages(
    aws: Callable[[str], Any],
    moto_server: str,
    settings: Settings,
    config: Config,
    sns_signer: SnsSigner,
    slack: SlackEmulator,
    pagerduty: PagerDutyEmulator,
    make_service: Callable[..., LiveService],
) -> None:
    sqs = aws("sqs")
    queue_url = new_queue(sqs, "opsbot-alarms-signed")
    envelope = sns_signer.notification(ALARM, topic_arn=TOPIC_ARN, subject="ALARM: prod-api-5xx")
    sqs.send_message(QueueUrl=queue_url, MessageBody=json.dumps(envelope))
    make_service(
        settings.model_copy(update={"alarm_queue_url": queue_url, "aws_endpoint_url": moto_server}),
        config,
    )
    wait_for(lambda: slack.channel_messages("C0PRODALERTS"))
    wait_for(lambda: pagerduty.events)
    wait_for(lambda: queue_depth(sqs, queue_url) == 0)  # deleted once recorded


def _no_topic(signer: SnsSigner) -> dict[str, Any]:
    envelope = signer.notification(ALARM, topic_arn=TOPIC_ARN)
    del envelope["TopicArn"]
    return envelope


def _empty_topic(signer: SnsSigner) -> dict[str, Any]:
    return signer.notification(ALARM, topic_arn="")


def _bad_signature(signer: SnsSigner) -> dict[str, Any]:
    envelope = signer.notification(alarm_message(name="prod-db", state="OK"), topic_arn=TOPIC_ARN)
    return {**envelope, "Message": ALARM}


def _forged_foreign_topic(signer: SnsSigner) -> dict[str, Any]:
    return {**signer.notification(ALARM, topic_arn=TOPIC_ARN), "TopicArn": OTHER_TOPIC}


def _log_forging_topic(signer: SnsSigner) -> dict[str, Any]:
    forged = TOPIC_ARN + "\n2026-12-04 01:00:00 INFO bot.alarms.intake: forged line"
    return {**signer.notification(ALARM, topic_arn=TOPIC_ARN), "TopicArn": forged}


def _certificate_off_the_pattern(signer: SnsSigner) -> dict[str, Any]:
    url = "https://sns.us-east-1.amazonaws.com/SimpleNotificationService-x.pem"
    return signer.notification(ALARM, topic_arn=TOPIC_ARN, cert_url=url)


def _subscription_confirmation(signer: SnsSigner) -> dict[str, Any]:
    return signer.subscription_confirmation(topic_arn=TOPIC_ARN)


FORGED: dict[str, Callable[[SnsSigner], dict[str, Any] | str]] = {
    "no-topic": _no_topic,
    "empty-topic": _empty_topic,
    "bad-signature": _bad_signature,
    "forged-foreign-topic": _forged_foreign_topic,
    "log-forging-topic": _log_forging_topic,
    "certificate-off-the-pattern": _certificate_off_the_pattern,
    "subscription-confirmation": _subscription_confirmation,
    "not-json": lambda signer: "hello\nworld",
}


@pytest.mark.parametrize("forge", FORGED.values(), ids=FORGED.keys())
def test_forged_or_junk_messages_are_deleted_and_change_nothing(
    aws: Callable[[str], Any],
    service: LiveService,
    sns_signer: SnsSigner,
    slack: SlackEmulator,
    pagerduty: PagerDutyEmulator,
    caplog: pytest.LogCaptureFixture,
    forge: Callable[[SnsSigner], dict[str, Any] | str],
) -> None:
    sqs = aws("sqs")
    queue_url = new_queue(sqs, "opsbot-alarms-forged")
    forged = forge(sns_signer)
    sqs.send_message(
        QueueUrl=queue_url, MessageBody=forged if isinstance(forged, str) else json.dumps(forged)
    )
    with caplog.at_level(logging.INFO, logger="bot.alarms.queue"):
        assert consumer_of(service, sqs, queue_url).poll_once() == 1
    assert queue_depth(sqs, queue_url) == 0
    refusals = [r.getMessage() for r in caplog.records if "refused and deleted" in r.getMessage()]
    assert len(refusals) == 1
    assert "\n" not in refusals[0]
    assert nothing_happened(service, slack, pagerduty)


@pytest.mark.parametrize("case", ["foreign-topic", "signature-version-1"])
def test_a_genuine_message_the_configuration_refuses_is_left_for_the_dead_letter_queue(
    aws: Callable[[str], Any],
    service: LiveService,
    sns_signer: SnsSigner,
    slack: SlackEmulator,
    pagerduty: PagerDutyEmulator,
    case: str,
) -> None:
    """Correctly signed, so not a forgery: redriven from the DLQ once the setting is fixed."""
    sqs = aws("sqs")
    queue_url = new_queue(sqs, f"opsbot-alarms-{case}")
    if case == "foreign-topic":
        envelope = sns_signer.notification(ALARM, topic_arn=OTHER_TOPIC)
    else:
        envelope = sns_signer.notification(ALARM, topic_arn=TOPIC_ARN, version="1")
    sqs.send_message(QueueUrl=queue_url, MessageBody=json.dumps(envelope))
    assert consumer_of(service, sqs, queue_url).poll_once() == 0
    assert queue_depth(sqs, queue_url) == 1
    assert nothing_happened(service, slack, pagerduty)
    assert metric(service, "opsbot_alarm_notifications_total", via="sqs", outcome="left") == 1


def test_signature_version_1_is_taken_when_the_operator_allows_it(
    aws: Callable[[str], Any],
    settings: Settings,
    config: Config,
    sns_signer: SnsSigner,
    pagerduty: PagerDutyEmulator,
    make_service: Callable[..., LiveService],
) -> None:
    service = make_service(settings.model_copy(update={"sns_allow_signature_v1": True}), config)
    sqs = aws("sqs")
    queue_url = new_queue(sqs, "opsbot-alarms-v1-allowed")
    envelope = sns_signer.notification(ALARM, topic_arn=TOPIC_ARN, version="1")
    sqs.send_message(QueueUrl=queue_url, MessageBody=json.dumps(envelope))
    assert consumer_of(service, sqs, queue_url).poll_once() == 1
    wait_for(lambda: pagerduty.events)


def test_a_message_whose_certificate_cannot_be_fetched_now_is_left_for_redelivery(
    aws: Callable[[str], Any],
    settings: Settings,
    config: Config,
    sns_signer: SnsSigner,
    slack: SlackEmulator,
    pagerduty: PagerDutyEmulator,
    make_service: Callable[..., LiveService],
) -> None:
    service = make_service(
        settings.model_copy(update={"sns_url_pattern": r"^https://127\.0\.0\.1:\d+/"}), config
    )
    sqs = aws("sqs")
    queue_url = new_queue(sqs, "opsbot-alarms-no-certificate")
    closed = f"https://127.0.0.1:{free_port()}/SimpleNotificationService-x.pem"  # nobody listens
    envelope = sns_signer.notification(ALARM, topic_arn=TOPIC_ARN, cert_url=closed)
    sqs.send_message(QueueUrl=queue_url, MessageBody=json.dumps(envelope))
    assert consumer_of(service, sqs, queue_url).poll_once() == 0
    assert queue_depth(sqs, queue_url) == 1
    assert nothing_happened(service, slack, pagerduty)
    assert metric(service, "opsbot_alarm_notifications_total", via="sqs", outcome="left") == 1


def test_a_genuine_message_whose_certificate_is_refused_is_left_for_the_dead_letter_queue(
    aws: Callable[[str], Any],
    service: LiveService,
    sns_signer: SnsSigner,
    slack: SlackEmulator,
    pagerduty: PagerDutyEmulator,
) -> None:
    # On the signer's own host, but nothing there (a certificate retired before a
    # redrive, an egress proxy answering 403): only the topic sends to the queue.
    retired = sns_signer.cert_url.rsplit("/", 1)[0] + "/SimpleNotificationService-retired.pem"
    sqs = aws("sqs")
    queue_url = new_queue(sqs, "opsbot-alarms-retired-certificate")
    envelope = sns_signer.notification(ALARM, topic_arn=TOPIC_ARN, cert_url=retired)
    sqs.send_message(QueueUrl=queue_url, MessageBody=json.dumps(envelope))
    assert consumer_of(service, sqs, queue_url).poll_once() == 0
    assert queue_depth(sqs, queue_url) == 1
    assert nothing_happened(service, slack, pagerduty)
    assert metric(service, "opsbot_alarm_notifications_total", via="sqs", outcome="left") == 1


@pytest.mark.parametrize("raw", [False, True], ids=["envelope", "raw"])
def test_with_raw_delivery_configured_the_queue_policy_is_the_trust_boundary(
    raw: bool,
    aws: Callable[[str], Any],
    moto_server: str,
    settings: Settings,
    config: Config,
    slack: SlackEmulator,
    make_service: Callable[..., LiveService],
) -> None:
    """What SNS puts on the queue is taken as it is: moto's envelopes are not signed by SNS."""
    sns, sqs = aws("sns"), aws("sqs")
    topic_arn, queue_url, subscription = subscribed_queue(
        sns, sqs, "alarms-raw" if raw else "alarms-env"
    )
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
                "alarm_queue_raw_delivery": True,
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


def test_without_raw_delivery_an_envelope_sns_did_not_sign_is_deleted(
    aws: Callable[[str], Any],
    service: LiveService,
    slack: SlackEmulator,
    pagerduty: PagerDutyEmulator,
) -> None:
    """moto signs with a key of its own behind an SNS-looking URL: not one this service trusts."""
    sns, sqs = aws("sns"), aws("sqs")
    topic_arn, queue_url, _ = subscribed_queue(sns, sqs, "alarms-unsigned")
    sns.publish(TopicArn=topic_arn, Message=ALARM)
    consumer = consumer_of(service, sqs, queue_url)
    consumer.allowed_topics = {topic_arn}
    assert consumer.poll_once() == 1
    assert queue_depth(sqs, queue_url) == 0
    assert nothing_happened(service, slack, pagerduty)


def test_a_queue_is_not_consumed_when_no_topic_is_allowed(
    aws: Callable[[str], Any],
    moto_server: str,
    settings: Settings,
    config: Config,
    sns_signer: SnsSigner,
    make_service: Callable[..., LiveService],
) -> None:
    """Every envelope would be refused: the alarms stay on the queue, whose age alarm pages."""
    sqs = aws("sqs")
    queue_url = new_queue(sqs, "opsbot-alarms-no-topics")
    envelope = sns_signer.notification(ALARM, topic_arn=TOPIC_ARN)
    sqs.send_message(QueueUrl=queue_url, MessageBody=json.dumps(envelope))
    service = make_service(
        settings.model_copy(
            update={
                "alarm_queue_url": queue_url,
                "aws_endpoint_url": moto_server,
                "sns_topic_arns": [],
            }
        ),
        config,
    )
    assert service.runtime.queue_consumer is None
    assert any("NOT CONSUMED" in note for note in service.runtime.notes)
    assert queue_depth(sqs, queue_url) == 1


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
        sqs=sqs,
        queue_url=queue_url,
        record=intake.record,
        record_batch=intake.record_batch,
        allowed_topics=[],
        verifier=None,
        wait_s=1,
    )
    assert consumer.poll_once() == 0
    assert queue_depth(sqs, queue_url) == 1
    wait_for(
        lambda: sqs.receive_message(QueueUrl=queue_url, WaitTimeSeconds=1).get("Messages"),
        timeout_s=10,
    )


def test_a_recorded_message_that_is_not_deleted_is_logged_and_counted(
    aws: Callable[[str], Any],
    service: LiveService,
    sns_signer: SnsSigner,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Redelivered, it is a duplicate; failing every time, it would reach the dead-letter
    queue (and its alarm) for an alarm that was handled: the operator sees it coming."""
    sqs = aws("sqs")
    queue_url = new_queue(sqs, "opsbot-alarms-undeleted")
    envelope = sns_signer.notification(ALARM, topic_arn=TOPIC_ARN)
    sent_id = sqs.send_message(QueueUrl=queue_url, MessageBody=json.dumps(envelope))["MessageId"]
    consumer = consumer_of(service, sqs, queue_url)
    record_batch = service.runtime.intake.record_batch

    def record_then_purge(inbounds: list[Inbound]) -> list[str | BaseException]:
        recorded = record_batch(inbounds)
        sqs.purge_queue(QueueUrl=queue_url)  # the receipt handle is no longer valid
        return recorded

    consumer.record_batch = record_then_purge
    with caplog.at_level(logging.WARNING, logger="bot.alarms.queue"):
        assert consumer.poll_once() == 0

    [warning] = [r.getMessage() for r in caplog.records if "not deleted" in r.getMessage()]
    assert repr(sent_id) in warning and "ReceiptHandleIsInvalid" in warning
    assert metric(service, "opsbot_alarm_queue_errors_total", call="delete") == 1
    assert metric(service, "opsbot_alarm_notifications_total", via="sqs", outcome="new") == 1


def test_a_poll_that_fails_is_counted(aws: Callable[[str], Any], service: LiveService) -> None:
    sqs = aws("sqs")
    queue_url = new_queue(sqs, "opsbot-alarms-gone")
    sqs.delete_queue(QueueUrl=queue_url)
    consumer = consumer_of(service, sqs, queue_url)
    with pytest.raises(Exception, match=r"QueueDoesNotExist|NonExistentQueue"):
        consumer.poll_once()
    assert metric(service, "opsbot_alarm_queue_errors_total", call="receive") == 1
