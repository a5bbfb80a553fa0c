"""The alarm queue: a forged envelope whose text is not text costs the poll's others nothing."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from typing import Any

import pytest

from sandbox.sns import SnsSigner
from tests.alarms.test_queue import ALARM, consumer_of, new_queue, queue_depth
from tests.conftest import TOPIC_ARN
from tests.support import LiveService, metric


def test_a_lone_surrogate_is_refused_and_the_genuine_alarm_beside_it_recorded(
    aws: Callable[[str], Any],
    service: LiveService,
    sns_signer: SnsSigner,
    caplog: pytest.LogCaptureFixture,
) -> None:
    sqs = aws("sqs")
    url = new_queue(sqs, "opsbot-surrogate")
    genuine = sns_signer.notification(ALARM, topic_arn=TOPIC_ARN)
    forged = sns_signer.notification(ALARM, topic_arn=TOPIC_ARN)
    forged["Message"] = "\ud800 not signed"  # json.dumps writes it as the escape \ud800
    sqs.send_message(QueueUrl=url, MessageBody=json.dumps(genuine))
    forged_id = sqs.send_message(QueueUrl=url, MessageBody=json.dumps(forged))["MessageId"]
    consumer = consumer_of(service, sqs, url)

    deleted = 0
    with caplog.at_level(logging.WARNING, logger="bot.alarms.queue"):
        for _ in range(5):  # moto may hand the two over in separate polls
            deleted += consumer.poll_once()
            if deleted == 2:
                break

    assert queue_depth(sqs, url) == 0
    assert metric(service, "opsbot_alarm_notifications_total", via="sqs", outcome="new") == 1
    assert metric(service, "opsbot_alarm_notifications_total", via="sqs", outcome="refused") == 1
    [refusal] = [r for r in caplog.records if forged_id in r.getMessage()]
    assert "lone surrogate" in refusal.getMessage()
