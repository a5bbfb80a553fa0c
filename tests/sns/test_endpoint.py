"""POST /sns: only verified messages from allowed topics change anything."""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable

import pytest
import sqlalchemy as sa

from bot.alarms.models import ReceivedMessage
from bot.config import Config
from bot.incidents.models import Incident
from bot.outbox.models import Delivery
from bot.sandbox.alarms import alarm_message
from bot.sandbox.slack import SlackEmulator
from bot.sandbox.sns import SnsSigner, body
from bot.settings import Settings
from tests.conftest import TOPIC_ARN
from tests.support import LiveService

ALARM = alarm_message(name="prod-api-5xx", state="ALARM")
HEADERS = {"x-amz-sns-message-type": "Notification", "content-type": "text/plain; charset=UTF-8"}


def rows(service: LiveService) -> dict[str, int]:
    with service.runtime.sessions() as db:
        return {
            model.__tablename__: int(db.scalar(sa.select(sa.func.count()).select_from(model)) or 0)
            for model in (ReceivedMessage, Incident, Delivery)
        }


def nothing_stored(service: LiveService) -> bool:
    return rows(service) == {"received_messages": 0, "incidents": 0, "deliveries": 0}


def test_a_verified_alarm_is_accepted(service: LiveService, sns_signer: SnsSigner) -> None:
    answer = service.post(
        "/sns", content=body(sns_signer.notification(ALARM, topic_arn=TOPIC_ARN)), headers=HEADERS
    )
    assert answer.status_code == 200
    assert rows(service)["incidents"] == 1


def test_forged_signature_gets_403_and_stores_nothing(
    service: LiveService, sns_signer: SnsSigner
) -> None:
    envelope = sns_signer.notification(ALARM, topic_arn=TOPIC_ARN)
    envelope["Message"] = alarm_message(name="prod-db-down", state="ALARM")
    answer = service.post("/sns", content=body(envelope), headers=HEADERS)
    assert answer.status_code == 403
    assert nothing_stored(service)


def test_topic_not_allowed_gets_403_and_stores_nothing(
    service: LiveService, sns_signer: SnsSigner
) -> None:
    envelope = sns_signer.notification(ALARM, topic_arn="arn:aws:sns:us-east-1:999999999999:other")
    answer = service.post("/sns", content=body(envelope), headers=HEADERS)
    assert answer.status_code == 403
    assert nothing_stored(service)


def test_a_newline_in_the_topic_or_message_id_cannot_forge_a_log_line(
    service: LiveService, sns_signer: SnsSigner, caplog: pytest.LogCaptureFixture
) -> None:
    forged = "\n2026-12-04 10:00:00 INFO handlers.sns: confirmed the subscription"
    other_topic = sns_signer.notification(ALARM, topic_arn=f"arn:aws:sns:us-east-1:9:x{forged}")
    bad_signature = sns_signer.notification(ALARM, topic_arn=TOPIC_ARN)
    bad_signature["MessageId"] = f"m-1{forged}"
    with caplog.at_level(logging.INFO, logger="handlers.sns"):
        for envelope in (other_topic, bad_signature):
            answer = service.post("/sns", content=body(envelope), headers=HEADERS)
            assert answer.status_code == 403
    assert nothing_stored(service)
    lines = [r.getMessage() for r in caplog.records if r.name == "handlers.sns"]
    assert len(lines) == 2
    assert all("\n" not in line for line in lines)
    assert "x\\n2026-12-04 10:00:00 INFO" in lines[0] and "m-1\\n2026" in lines[1]


@pytest.mark.parametrize(
    "cert_url",
    [
        "http://127.0.0.1:{port}/SimpleNotificationService-sandbox.pem",  # plain http
        "https://sns.us-east-1.amazonaws.com.evil.example/SimpleNotificationService-x.pem",
        "https://127.0.0.1:{port}@evil.example/SimpleNotificationService-sandbox.pem",
        "https://127.0.0.1:{port}/SimpleNotificationService-sandbox.txt",
    ],
)
def test_cert_url_off_the_pattern_gets_403(
    service: LiveService, sns_signer: SnsSigner, cert_url: str
) -> None:
    envelope = sns_signer.notification(ALARM, topic_arn=TOPIC_ARN)
    envelope["SigningCertURL"] = cert_url.format(port=sns_signer.server.port)
    fetches = sns_signer.cert_fetches
    answer = service.post("/sns", content=body(envelope), headers=HEADERS)
    assert answer.status_code == 403
    assert nothing_stored(service)
    assert sns_signer.cert_fetches == fetches  # nothing was fetched from a URL off the pattern


def test_default_pattern_refuses_a_loopback_certificate(
    settings: Settings,
    config: Config,
    sns_signer: SnsSigner,
    make_service: Callable[..., LiveService],
) -> None:
    service = make_service(
        settings.model_copy(update={"sns_url_pattern": Settings().sns_url_pattern}), config
    )
    answer = service.post(
        "/sns", content=body(sns_signer.notification(ALARM, topic_arn=TOPIC_ARN)), headers=HEADERS
    )
    assert answer.status_code == 403
    assert nothing_stored(service)


@pytest.mark.parametrize(
    "raw", [b"", b"{", b"[]", b'{"Type": "Notification"}', json.dumps({"Type": "Nope"}).encode()]
)
def test_malformed_body_gets_400(service: LiveService, raw: bytes) -> None:
    assert service.post("/sns", content=raw, headers=HEADERS).status_code == 400
    assert nothing_stored(service)


def test_header_type_must_match_the_body(service: LiveService, sns_signer: SnsSigner) -> None:
    envelope = sns_signer.notification(ALARM, topic_arn=TOPIC_ARN)
    answer = service.post(
        "/sns",
        content=body(envelope),
        headers={"x-amz-sns-message-type": "SubscriptionConfirmation"},
    )
    assert answer.status_code == 400


def test_subscription_confirmation_is_confirmed(
    service: LiveService, sns_signer: SnsSigner
) -> None:
    envelope = sns_signer.subscription_confirmation(topic_arn=TOPIC_ARN, version="2")
    before = len(sns_signer.confirmations)
    answer = service.post(
        "/sns",
        content=body(envelope),
        headers={"x-amz-sns-message-type": "SubscriptionConfirmation"},
    )
    assert answer.status_code == 200
    assert len(sns_signer.confirmations) == before + 1
    assert sns_signer.confirmations[-1]["Token"] == [envelope["Token"]]


def test_subscription_confirmation_for_another_topic_is_not_visited(
    service: LiveService, sns_signer: SnsSigner
) -> None:
    envelope = sns_signer.subscription_confirmation(
        topic_arn="arn:aws:sns:us-east-1:999999999999:other"
    )
    before = len(sns_signer.confirmations)
    answer = service.post(
        "/sns",
        content=body(envelope),
        headers={"x-amz-sns-message-type": "SubscriptionConfirmation"},
    )
    assert answer.status_code == 403
    assert len(sns_signer.confirmations) == before


def test_subscribe_url_off_the_pattern_is_not_visited(
    service: LiveService, sns_signer: SnsSigner
) -> None:
    envelope = sns_signer.subscription_confirmation(topic_arn=TOPIC_ARN)
    envelope["SubscribeURL"] = "https://evil.example/confirm?Token=x"
    signed = sns_signer.sign(envelope)  # correctly signed, but the URL is not SNS's
    before = len(sns_signer.confirmations)
    answer = service.post(
        "/sns", content=body(signed), headers={"x-amz-sns-message-type": "SubscriptionConfirmation"}
    )
    assert answer.status_code == 403
    assert len(sns_signer.confirmations) == before


def test_unsubscribe_confirmation_changes_nothing(
    service: LiveService, sns_signer: SnsSigner
) -> None:
    envelope = sns_signer.subscription_confirmation(topic_arn=TOPIC_ARN)
    envelope["Type"] = "UnsubscribeConfirmation"
    signed = sns_signer.sign(envelope)
    before = len(sns_signer.confirmations)
    answer = service.post(
        "/sns", content=body(signed), headers={"x-amz-sns-message-type": "UnsubscribeConfirmation"}
    )
    assert answer.status_code == 200
    assert len(sns_signer.confirmations) == before
    assert nothing_stored(service)


def test_no_allowed_topics_refuses_everything(
    settings: Settings,
    config: Config,
    sns_signer: SnsSigner,
    make_service: Callable[..., LiveService],
) -> None:
    service = make_service(settings.model_copy(update={"sns_topic_arns": []}), config)
    answer = service.post(
        "/sns", content=body(sns_signer.notification(ALARM, topic_arn=TOPIC_ARN)), headers=HEADERS
    )
    assert answer.status_code == 403


def test_content_type_is_not_required_to_be_json(
    service: LiveService, sns_signer: SnsSigner, slack: SlackEmulator
) -> None:
    answer = service.post(
        "/sns",
        content=body(sns_signer.notification(ALARM, topic_arn=TOPIC_ARN)),
        headers={"content-type": "text/plain; charset=UTF-8"},
    )
    assert answer.status_code == 200


def test_pattern_is_a_regex(sns_signer: SnsSigner) -> None:
    assert re.compile(sns_signer.url_pattern).match(sns_signer.cert_url)
