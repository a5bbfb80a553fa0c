"""POST /sns: an envelope whose text is not text, and a topic that unsubscribed opsbot."""

from __future__ import annotations

import logging

import pytest

from sandbox.sns import SnsSigner, body
from tests.conftest import TOPIC_ARN
from tests.sns.test_endpoint import ALARM, HEADERS, nothing_stored
from tests.support import LiveService, metric


@pytest.mark.parametrize("field", ["Message", "MessageId", "Subject", "Timestamp"])
def test_a_lone_surrogate_in_a_field_is_a_malformed_envelope(
    service: LiveService, sns_signer: SnsSigner, field: str
) -> None:
    envelope = sns_signer.notification(ALARM, topic_arn=TOPIC_ARN, subject="ALARM")
    envelope[field] = "\ud800 not signed"  # json.dumps writes it as the escape \ud800
    answer = service.post("/sns", content=body(envelope), headers=HEADERS)
    assert answer.status_code == 400
    assert f"field {field} holds a lone surrogate" in answer.json()["message"]
    assert metric(service, "opsbot_alarm_notifications_total", via="https", outcome="refused") == 1
    assert nothing_stored(service)


def test_an_unsubscribe_confirmation_is_an_error_with_its_topic_and_counted(
    service: LiveService, sns_signer: SnsSigner, caplog: pytest.LogCaptureFixture
) -> None:
    envelope = sns_signer.subscription_confirmation(topic_arn=TOPIC_ARN)
    envelope["Type"] = "UnsubscribeConfirmation"
    with caplog.at_level(logging.INFO, logger="handlers.sns"):
        answer = service.post(
            "/sns",
            content=body(sns_signer.sign(envelope)),
            headers={"x-amz-sns-message-type": "UnsubscribeConfirmation"},
        )
    assert answer.status_code == 200
    [line] = [r for r in caplog.records if "unsubscribed" in r.getMessage()]
    assert line.levelno == logging.ERROR
    assert TOPIC_ARN in line.getMessage()
    assert getattr(line, "topic_arn", None) == TOPIC_ARN
    assert metric(service, "opsbot_sns_unsubscribed_total") == 1
    assert nothing_stored(service)


def test_an_unsubscribe_confirmation_not_signed_is_refused_and_not_counted(
    service: LiveService, sns_signer: SnsSigner
) -> None:
    envelope = sns_signer.sign(sns_signer.subscription_confirmation(topic_arn=TOPIC_ARN))
    envelope["Type"] = "UnsubscribeConfirmation"  # after signing: the signature no longer holds
    answer = service.post(
        "/sns",
        content=body(envelope),
        headers={"x-amz-sns-message-type": "UnsubscribeConfirmation"},
    )
    assert answer.status_code == 403
    assert metric(service, "opsbot_sns_unsubscribed_total") == 0
