"""POST /sns: only verified messages from allowed topics change anything."""

from __future__ import annotations

import json
import logging
import re
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
import sqlalchemy as sa

from bot.alarms.models import ReceivedMessage
from bot.clock import ManualClock
from bot.config import Config
from bot.incidents.models import Incident
from bot.outbox.models import Delivery
from bot.settings import Settings
from bot.sns.verify import FAILURE_TTL, FETCHES_AT_ONCE, TRANSIENT_FAILURE_TTL
from sandbox.alarms import alarm_message
from sandbox.pagerduty import PagerDutyEmulator
from sandbox.slack import SlackEmulator
from sandbox.sns import SnsSigner, body
from tests.conftest import TOPIC_ARN
from tests.sns.conftest import CertHost
from tests.support import LiveService, wait_for

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


def nothing_happened(
    service: LiveService, slack: SlackEmulator, pagerduty: PagerDutyEmulator
) -> bool:
    """No row, and nobody was told: no Slack post, no PagerDuty event."""
    return nothing_stored(service) and not slack.all_messages() and not pagerduty.events


def post(service: LiveService, envelope: dict[str, Any]) -> httpx.Response:
    return service.post("/sns", content=body(envelope), headers=HEADERS)


def trusting(settings: Settings, *hosts: int, **update: Any) -> Settings:
    """Settings whose certificate URL pattern admits these loopback ports."""
    ports = "|".join(str(port) for port in hosts)
    return settings.model_copy(
        update={"sns_url_pattern": rf"^https://127\.0\.0\.1:({ports})/", **update}
    )


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
    # The header names the allowed topic (a newline cannot travel in a header): the
    # body's topic disagrees with it (400), the forged message id fails its signature.
    headers = {**HEADERS, "x-amz-sns-topic-arn": TOPIC_ARN}
    with caplog.at_level(logging.INFO, logger="handlers.sns"):
        for envelope, status in ((other_topic, 400), (bad_signature, 403)):
            answer = service.post("/sns", content=body(envelope), headers=headers)
            assert answer.status_code == status
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
    # Named as an allowed topic's, as SNS names it: without, it is refused (403) unread.
    headers = {**HEADERS, "x-amz-sns-topic-arn": TOPIC_ARN}
    assert service.post("/sns", content=raw, headers=headers).status_code == 400
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


# -- an attacker's certificate URLs ---------------------------------------------------------


def test_slow_certificates_in_flight_do_not_delay_a_genuine_alarm(
    settings: Settings,
    config: Config,
    sns_signer: SnsSigner,
    cert_host: CertHost,
    slack: SlackEmulator,
    pagerduty: PagerDutyEmulator,
    make_service: Callable[..., LiveService],
) -> None:
    # The held fetches must not time out while the test runs: whatever happens to
    # the genuine alarm happens while they hang.
    service = make_service(
        trusting(
            settings, sns_signer.server.port, cert_host.server.port, sns_cert_fetch_timeout_s=30.0
        ),
        config,
    )
    # One message has been verified with the genuine certificate: it is known.
    notice = sns_signer.notification("hello from a cron job", topic_arn=TOPIC_ARN)
    assert post(service, notice).status_code == 200

    def bogus(n: int) -> dict[str, Any]:
        url = cert_host.url(f"/held/SimpleNotificationService-{n}.pem")
        return sns_signer.notification(ALARM, topic_arn=TOPIC_ARN, cert_url=url)

    with ThreadPoolExecutor(max_workers=FETCHES_AT_ONCE + 1) as pool:
        pending = [pool.submit(post, service, bogus(n)) for n in range(FETCHES_AT_ONCE)]
        wait_for(lambda: cert_host.holding == FETCHES_AT_ONCE)
        # Another message for a certificate being fetched waits for that fetch...
        pending.append(pool.submit(post, service, bogus(0)))
        # ...and one for yet another certificate is told to come back: no fifth fetch.
        assert post(service, bogus(FETCHES_AT_ONCE)).status_code == 503

        genuine = sns_signer.notification(ALARM, topic_arn=TOPIC_ARN)
        answer = post(service, genuine)
        assert answer.status_code == 200, answer.text
        wait_for(lambda: slack.channel_messages("C0PRODALERTS"))
        wait_for(lambda: pagerduty.events)
        # All of that while every slow certificate is still being waited for.
        assert cert_host.answered_held == 0
        assert not any(request.done() for request in pending)

        cert_host.release()
        assert [request.result().status_code for request in pending] == [403] * len(pending)
    assert sum(cert_host.requests.values()) == FETCHES_AT_ONCE
    # The notice and the alarm, nothing else: a Slack post each and one page.
    assert rows(service) == {"received_messages": 2, "incidents": 1, "deliveries": 3}
    assert len(pagerduty.events) == 1


def test_a_failing_certificate_url_costs_one_fetch_until_its_failure_expires(
    settings: Settings,
    config: Config,
    sns_signer: SnsSigner,
    cert_host: CertHost,
    slack: SlackEmulator,
    pagerduty: PagerDutyEmulator,
    make_service: Callable[..., LiveService],
) -> None:
    clock = ManualClock(datetime.now(UTC))
    service = make_service(trusting(settings, cert_host.server.port), config, clock=clock)
    path = "/missing/SimpleNotificationService-gone.pem"

    def attempt() -> int:
        envelope = sns_signer.notification(
            ALARM, topic_arn=TOPIC_ARN, cert_url=cert_host.url(path), timestamp=clock.now()
        )
        return post(service, envelope).status_code

    assert [attempt() for _ in range(3)] == [403, 403, 403]
    assert cert_host.requests[path] == 1
    clock.advance(seconds=FAILURE_TTL.total_seconds() + 1)
    assert attempt() == 403
    assert cert_host.requests[path] == 2
    assert nothing_happened(service, slack, pagerduty)


def test_a_certificate_host_failing_for_now_gets_503_so_sns_retries(
    settings: Settings,
    config: Config,
    sns_signer: SnsSigner,
    cert_host: CertHost,
    slack: SlackEmulator,
    pagerduty: PagerDutyEmulator,
    make_service: Callable[..., LiveService],
) -> None:
    service = make_service(trusting(settings, cert_host.server.port), config)
    url = cert_host.url("/flaky/SimpleNotificationService-x.pem")
    for _ in range(2):
        envelope = sns_signer.notification(ALARM, topic_arn=TOPIC_ARN, cert_url=url)
        assert post(service, envelope).status_code == 503
    assert cert_host.requests["/flaky/SimpleNotificationService-x.pem"] == 1
    assert nothing_happened(service, slack, pagerduty)


def test_no_thread_to_fetch_the_certificate_gets_503_and_the_retry_is_accepted(
    settings: Settings,
    config: Config,
    sns_signer: SnsSigner,
    slack: SlackEmulator,
    pagerduty: PagerDutyEmulator,
    make_service: Callable[..., LiveService],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The process out of threads for a moment, as the certificate's GET starts: ours to
    # fix, not the certificate's fault. A 403 there is cached and SNS does not retry it.
    clock = ManualClock(datetime.now(UTC))
    service = make_service(settings, config, clock=clock)
    real_start = threading.Thread.start
    refused: list[str] = []

    def start(thread: threading.Thread) -> None:
        if thread.name == "bounded-fetch" and not refused:
            refused.append(thread.name)
            raise RuntimeError("can't start new thread")
        real_start(thread)

    monkeypatch.setattr(threading.Thread, "start", start)

    def deliver() -> int:
        envelope = sns_signer.notification(ALARM, topic_arn=TOPIC_ARN, timestamp=clock.now())
        return post(service, envelope).status_code

    assert deliver() == 503
    assert refused and nothing_happened(service, slack, pagerduty)
    # SNS's next attempt comes 20 s later, by when the failure is no longer remembered.
    clock.advance(seconds=TRANSIENT_FAILURE_TTL.total_seconds() + 1)
    assert deliver() == 200
    assert rows(service)["incidents"] == 1


@pytest.mark.parametrize(
    "cert_url",
    [
        "https://sns.s3.amazonaws.com/SimpleNotificationService-x.pem",
        "https://sns.evil.amazonaws.com.attacker.net/SimpleNotificationService-x.pem",
        "http://sns.us-east-1.amazonaws.com/SimpleNotificationService-x.pem",
        "https://sns.us-east-1.amazonaws.com/SimpleNotificationService-x.txt",
        "https://sns.us-east-1.amazonaws.com/SimpleNotificationService-x.pem?x=.pem",
    ],
    ids=["s3", "lookalike", "http", "not-pem", "query"],
)
def test_the_default_pattern_refuses_certificate_hosts_that_are_not_sns_regions(
    settings: Settings,
    config: Config,
    sns_signer: SnsSigner,
    slack: SlackEmulator,
    pagerduty: PagerDutyEmulator,
    make_service: Callable[..., LiveService],
    caplog: pytest.LogCaptureFixture,
    cert_url: str,
) -> None:
    service = make_service(
        settings.model_copy(update={"sns_url_pattern": Settings().sns_url_pattern}), config
    )
    with caplog.at_level(logging.WARNING, logger="handlers.sns"):
        answer = post(
            service, sns_signer.notification(ALARM, topic_arn=TOPIC_ARN, cert_url=cert_url)
        )
    assert answer.status_code == 403
    # Refused before anything was fetched: the check is on the URL, not on what it serves.
    assert any(
        "URL not allowed" in r.getMessage() or ".pem file" in r.getMessage() for r in caplog.records
    )
    assert nothing_happened(service, slack, pagerduty)


def test_signature_version_1_is_refused_unless_the_operator_allows_it(
    settings: Settings,
    config: Config,
    sns_signer: SnsSigner,
    slack: SlackEmulator,
    pagerduty: PagerDutyEmulator,
    make_service: Callable[..., LiveService],
) -> None:
    envelope = sns_signer.notification(ALARM, topic_arn=TOPIC_ARN, version="1")
    strict = make_service(settings, config)
    assert post(strict, envelope).status_code == 403
    assert nothing_happened(strict, slack, pagerduty)

    allowing = make_service(settings.model_copy(update={"sns_allow_signature_v1": True}), config)
    assert post(allowing, envelope).status_code == 200
    assert rows(allowing)["incidents"] == 1


@pytest.mark.parametrize("offset", [timedelta(hours=-2), timedelta(hours=2)], ids=["old", "ahead"])
def test_a_message_stamped_more_than_an_hour_from_now_is_refused(
    service: LiveService,
    sns_signer: SnsSigner,
    slack: SlackEmulator,
    pagerduty: PagerDutyEmulator,
    offset: timedelta,
) -> None:
    moment = datetime.now(UTC) + offset
    answer = post(service, sns_signer.notification(ALARM, topic_arn=TOPIC_ARN, timestamp=moment))
    assert answer.status_code == 403
    assert nothing_happened(service, slack, pagerduty)


def test_a_message_stamped_on_the_service_clock_is_accepted(
    settings: Settings,
    config: Config,
    sns_signer: SnsSigner,
    make_service: Callable[..., LiveService],
) -> None:
    """The window is the service's clock's, not the machine's: tests and replays move it."""
    clock = ManualClock(datetime(2026, 11, 25, 10, 0, tzinfo=UTC))
    service = make_service(settings, config, clock=clock)
    envelope = sns_signer.notification(ALARM, topic_arn=TOPIC_ARN, timestamp=clock.now())
    assert post(service, envelope).status_code == 200


@pytest.mark.parametrize(
    "field, value",
    [
        ("TopicArn", TOPIC_ARN + "\n2026-12-04 01:00:00 INFO bot.alarms.intake: forged line"),
        ("MessageId", "m\r\n2026-12-04 01:00:00 INFO handlers.sns: forged line"),
        ("SigningCertURL", "https://evil.example/x.pem\n2026-12-04 01:00:00 INFO x: forged"),
        ("Timestamp", "2026\n2026-12-04 01:00:00 INFO x: forged"),
    ],
)
def test_attacker_fields_cannot_forge_a_log_line(
    service: LiveService,
    sns_signer: SnsSigner,
    slack: SlackEmulator,
    pagerduty: PagerDutyEmulator,
    caplog: pytest.LogCaptureFixture,
    field: str,
    value: str,
) -> None:
    envelope = {**sns_signer.notification(ALARM, topic_arn=TOPIC_ARN), field: value}
    headers = {**HEADERS, "x-amz-sns-topic-arn": TOPIC_ARN}
    # A body naming another topic than its header is refused for that (400), the rest
    # for their signature or certificate (403).
    status = 400 if field == "TopicArn" else 403
    with caplog.at_level(logging.DEBUG):
        answer = service.post("/sns", content=body(envelope), headers=headers)
        assert answer.status_code == status
    lines = [r.getMessage() for r in caplog.records if r.name.startswith(("handlers", "bot"))]
    assert any("forged" in line for line in lines)  # it was logged...
    assert not any("\n" in line or "\r" in line for line in lines)  # ...on one line
    assert nothing_happened(service, slack, pagerduty)
