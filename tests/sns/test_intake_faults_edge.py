"""POST /sns: what is refused before the body is parsed, and what the refusals log.

SNS names the topic in the `x-amz-sns-topic-arn` header of every request; a
request without it, or naming a topic not allowed, is refused before its body
is read, so a hostile body costs the event loop nothing. Refusals name the
message and topic they know of. A certificate URL on SNS's host of a region
other than the topic's is refused before anything is fetched.
"""

from __future__ import annotations

import json
import logging
from typing import Any

import pytest

from bot.sns.verify import FETCHES_AT_ONCE
from sandbox.alarms import alarm_message
from sandbox.sns import SnsSigner, body
from tests.conftest import TOPIC_ARN
from tests.sns.test_cert_regions import DeadProxy, aws_hosts, forged, proxy
from tests.support import LiveService, metric

__all__ = ["aws_hosts", "proxy"]  # fixtures of test_cert_regions, used here

ALARM = alarm_message(name="prod-api-5xx", state="ALARM")
OTHER_TOPIC = "arn:aws:sns:us-east-1:999999999999:other"


def headers(envelope: dict[str, Any] | None = None, **extra: str) -> dict[str, str]:
    """The headers SNS sends with `envelope`."""
    sent = {"content-type": "text/plain; charset=UTF-8"}
    if envelope is not None:
        sent |= {
            "x-amz-sns-message-type": envelope["Type"],
            "x-amz-sns-message-id": envelope["MessageId"],
            "x-amz-sns-topic-arn": envelope["TopicArn"],
        }
    return sent | extra


def nested(size: int) -> bytes:
    """A body of many small nested arrays: dear to parse, refused only after parsing."""
    item = b"[[[[[[[[1]]]]]]]]"
    return b"[" + b",".join([item] * (size // (len(item) + 1))) + b"]"


@pytest.mark.parametrize(
    "topic_header", [None, OTHER_TOPIC], ids=["no-topic-header", "topic-not-allowed"]
)
def test_a_request_whose_topic_header_is_not_an_allowed_topic_is_refused_before_parsing(
    service: LiveService, caplog: pytest.LogCaptureFixture, topic_header: str | None
) -> None:
    sent = {"x-amz-sns-message-type": "Notification", "x-amz-sns-message-id": "m-hostile"}
    if topic_header is not None:
        sent["x-amz-sns-topic-arn"] = topic_header
    with caplog.at_level(logging.INFO, logger="handlers.sns"):
        answer = service.post("/sns", content=nested(400 * 1024), headers=headers(**sent))
    assert answer.status_code == 403
    assert answer.json()["message"] == "topic not allowed"
    [line] = [r.getMessage() for r in caplog.records if r.name == "handlers.sns"]
    assert "before reading the body" in line
    assert "'m-hostile'" in line
    assert "not an SNS message" not in line
    refused = metric(service, "opsbot_alarm_notifications_total", via="https", outcome="refused")
    assert refused == 1


def test_a_body_whose_topic_is_not_the_headers_is_refused(
    service: LiveService, sns_signer: SnsSigner
) -> None:
    """The header names an allowed topic; the signed body another: not what SNS sends."""
    envelope = sns_signer.notification(ALARM, topic_arn=OTHER_TOPIC)
    sent = headers(envelope, **{"x-amz-sns-topic-arn": TOPIC_ARN})
    answer = service.post("/sns", content=body(envelope), headers=sent)
    assert answer.status_code == 400
    assert "x-amz-sns-topic-arn" in answer.json()["message"]


def test_a_notification_with_the_headers_sns_sends_is_recorded(
    service: LiveService, sns_signer: SnsSigner
) -> None:
    envelope = sns_signer.notification(ALARM, topic_arn=TOPIC_ARN)
    answer = service.post("/sns", content=body(envelope), headers=headers(envelope))
    assert answer.status_code == 200


def test_a_large_notification_is_parsed_and_recorded(
    service: LiveService, sns_signer: SnsSigner
) -> None:
    """Past PARSE_IN_THREAD_BYTES, parsed in a thread: the same answer."""
    message = json.loads(ALARM)
    message["AlarmDescription"] = "d" * (100 * 1024)
    envelope = sns_signer.notification(json.dumps(message), topic_arn=TOPIC_ARN)
    answer = service.post("/sns", content=body(envelope), headers=headers(envelope))
    assert answer.status_code == 200


def test_a_type_mismatch_is_logged_with_the_message_and_topic(
    service: LiveService, sns_signer: SnsSigner, caplog: pytest.LogCaptureFixture
) -> None:
    envelope = sns_signer.notification(ALARM, topic_arn=TOPIC_ARN)
    sent = headers(envelope, **{"x-amz-sns-message-type": "SubscriptionConfirmation"})
    with caplog.at_level(logging.INFO, logger="handlers.sns"):
        answer = service.post("/sns", content=body(envelope), headers=sent)
    assert answer.status_code == 400
    [line] = [r.getMessage() for r in caplog.records if r.name == "handlers.sns"]
    assert repr(envelope["MessageId"]) in line
    assert repr(TOPIC_ARN) in line


def test_a_body_too_large_is_logged_with_the_message_and_topic_of_its_headers(
    service: LiveService, caplog: pytest.LogCaptureFixture
) -> None:
    sent = {
        "x-amz-sns-message-type": "Notification",
        "x-amz-sns-message-id": "m-large",
        "x-amz-sns-topic-arn": TOPIC_ARN,
    }
    with caplog.at_level(logging.INFO, logger="handlers.sns"):
        answer = service.post("/sns", content=b" " * (600 * 1024), headers=headers(**sent))
    assert answer.status_code == 413
    [line] = [r.getMessage() for r in caplog.records if r.name == "handlers.sns"]
    assert "'m-large'" in line
    assert repr(TOPIC_ARN) in line


@pytest.mark.parametrize(
    "host",
    [
        "sns.eu-west-1.amazonaws.com",
        "sns.cn-north-1.amazonaws.com.cn",
        "sns.us-west-2.amazonaws.com",
    ],
)
def test_a_certificate_url_of_another_region_than_the_topics_is_refused_without_a_fetch(
    aws_hosts: LiveService, proxy: DeadProxy, host: str, caplog: pytest.LogCaptureFixture
) -> None:
    """More of them than there are fetch slots: none holds one, none is fetched."""
    url = f"https://{host}/SimpleNotificationService-x.pem"
    sent = headers(**{"x-amz-sns-message-type": "Notification", "x-amz-sns-topic-arn": TOPIC_ARN})
    with caplog.at_level(logging.WARNING, logger="handlers.sns"):
        for attempt in range(FETCHES_AT_ONCE + 2):
            answer = aws_hosts.post(
                "/sns", content=forged(url, message_id=f"m-{attempt}"), headers=sent
            )
            assert answer.status_code == 403
            assert answer.json()["message"] == "signing certificate URL not allowed"
    assert proxy.connections == 0
    refused = metric(aws_hosts, "opsbot_alarm_notifications_total", via="https", outcome="refused")
    assert refused == FETCHES_AT_ONCE + 2
    lines = [r.getMessage() for r in caplog.records if "not the topic's" in r.getMessage()]
    assert len(lines) == FETCHES_AT_ONCE + 2
    assert "'m-0'" in lines[0]


def test_a_certificate_url_of_the_topics_region_is_fetched(
    aws_hosts: LiveService, proxy: DeadProxy
) -> None:
    """The topic's own region is out of reach here: an outage, 503, as before."""
    url = "https://sns.us-east-1.amazonaws.com/SimpleNotificationService-x.pem"
    sent = headers(**{"x-amz-sns-message-type": "Notification", "x-amz-sns-topic-arn": TOPIC_ARN})
    answer = aws_hosts.post("/sns", content=forged(url), headers=sent)
    assert answer.status_code == 503
    assert proxy.connections >= 1
