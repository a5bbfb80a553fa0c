"""The alarm queue: a raw-delivery alarm while raw delivery is not set is left for the
dead-letter queue, and so is a certificate URL of another region than the topic's."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from typing import Any

import pytest

from sandbox.pagerduty import PagerDutyEmulator
from sandbox.slack import SlackEmulator
from sandbox.sns import SnsSigner
from tests.alarms.test_queue import ALARM, consumer_of, new_queue, nothing_happened, queue_depth
from tests.conftest import TOPIC_ARN
from tests.sns.test_cert_regions import DeadProxy, aws_hosts, proxy
from tests.support import LiveService, metric

__all__ = ["aws_hosts", "proxy"]  # fixtures of test_cert_regions, used here


def test_a_bare_cloudwatch_alarm_is_left_for_the_dead_letter_queue_with_an_error(
    aws: Callable[[str], Any],
    service: LiveService,
    slack: SlackEmulator,
    pagerduty: PagerDutyEmulator,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """What raw message delivery sends: not a forgery to delete, a setting to fix."""
    sqs = aws("sqs")
    url = new_queue(sqs, "opsbot-raw-unset")
    sqs.send_message(QueueUrl=url, MessageBody=ALARM)
    with caplog.at_level(logging.WARNING, logger="bot.alarms.queue"):
        assert consumer_of(service, sqs, url).poll_once() == 0
    assert queue_depth(sqs, url) == 1
    assert nothing_happened(service, slack, pagerduty)
    assert metric(service, "opsbot_alarm_notifications_total", via="sqs", outcome="left") == 1
    [line] = [r for r in caplog.records if r.name == "bot.alarms.queue"]
    assert line.levelno == logging.ERROR
    assert "OPSBOT_ALARM_QUEUE_RAW_DELIVERY=true" in line.getMessage()


@pytest.mark.parametrize(
    "body",
    [json.dumps({"hello": "world"}), "not json", json.dumps({"Type": "X", "AlarmName": "a"})],
    ids=["other-json", "not-json", "with-a-type"],
)
def test_junk_that_is_no_alarm_is_still_deleted(
    aws: Callable[[str], Any], service: LiveService, body: str
) -> None:
    sqs = aws("sqs")
    url = new_queue(sqs, "opsbot-junk")
    sqs.send_message(QueueUrl=url, MessageBody=body)
    assert consumer_of(service, sqs, url).poll_once() == 1
    assert queue_depth(sqs, url) == 0


def test_a_certificate_url_of_another_region_is_left_for_the_dead_letter_queue(
    aws: Callable[[str], Any],
    aws_hosts: LiveService,
    proxy: DeadProxy,
    sns_signer: SnsSigner,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Only the topic sends to the queue: not deleted, should SNS ever sign otherwise."""
    sqs = aws("sqs")
    url = new_queue(sqs, "opsbot-other-region")
    envelope = sns_signer.notification(
        ALARM, topic_arn=TOPIC_ARN, cert_url="https://sns.eu-west-1.amazonaws.com/S.pem"
    )
    sqs.send_message(QueueUrl=url, MessageBody=json.dumps(envelope))
    with caplog.at_level(logging.WARNING, logger="bot.alarms.queue"):
        assert consumer_of(aws_hosts, sqs, url).poll_once() == 0
    assert queue_depth(sqs, url) == 1
    assert proxy.connections == 0
    [line] = [r for r in caplog.records if r.name == "bot.alarms.queue"]
    assert line.levelno == logging.ERROR
    assert "dead-letter queue" in line.getMessage()
    assert "not the topic's" in line.getMessage()
