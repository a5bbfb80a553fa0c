"""An alarm is applied only when the topic that carried it may bring its account's alarms:
its own account's, and those OPSBOT_SNS_TOPIC_ACCOUNTS names for it. Otherwise whoever may
publish to one allowed topic (a staging account's) could resolve another account's
incident, or page through its route."""

from __future__ import annotations

import json
import logging
import os
import re
import subprocess
import sys
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from pydantic import ValidationError

from bot.alarms.intake import AlarmIntake
from bot.alarms.models import PENDING, ReceivedMessage
from bot.alarms.parse import TopicAccounts
from bot.alarms.service import Inbound
from bot.app import accounts_no_topic_carries
from bot.clock import SystemClock
from bot.config import Config, parse_config
from bot.db.engine import make_sessionmaker
from bot.incidents.models import OPEN, RESOLVED, Incident
from bot.observability.metrics import Metrics
from bot.settings import Settings
from sandbox.alarms import alarm_message
from sandbox.pagerduty import PagerDutyEmulator
from sandbox.slack import Message, SlackEmulator
from sandbox.sns import SnsSigner, body
from tests.alarms.test_pipeline import outbox_empty
from tests.alarms.test_queue import consumer_of, new_queue
from tests.conftest import TEST_CONFIG, TOPIC_ARN
from tests.incidents.helpers import only_incident
from tests.support import LiveService, metric, wait_for

PROD = "123456789012"  # TOPIC_ARN's account
STAGING = "222222222222"
STAGING_TOPIC = f"arn:aws:sns:us-east-1:{STAGING}:alarms"
OTHER = "333333333333"  # no topic's account
ORG_TOPIC = f"arn:aws:sns:us-east-1:{STAGING}:organisation-alarms"
NAME = "prod-api-5xx"  # routed to prod, which pages
T0 = datetime.now(UTC) - timedelta(minutes=5)
ODD = "opsbot_alarm_odd_fields_total"


def prod_alarm(state: str, *, seconds: int = 0, account: str = PROD, name: str = NAME) -> str:
    return alarm_message(
        name=name, state=state, account=account, at=T0 + timedelta(seconds=seconds)
    )


def post(service: LiveService, signer: SnsSigner, message: str, *, topic_arn: str) -> str:
    """Through the HTTPS door; the message's id."""
    envelope = signer.notification(message, topic_arn=topic_arn)
    answer = service.post(
        "/sns",
        content=body(envelope),
        headers={"x-amz-sns-message-type": "Notification", "content-type": "text/plain"},
    )
    assert answer.status_code == 200, answer.text
    return str(envelope["MessageId"])


def with_topics(settings: Settings, *, accounts: Sequence[str] = ()) -> Settings:
    return settings.model_copy(
        update={
            "sns_topic_arns": [TOPIC_ARN, STAGING_TOPIC, ORG_TOPIC],
            "sns_topic_accounts": list(accounts),
        }
    )


def paged_and_open(
    service: LiveService, pagerduty: PagerDutyEmulator, name: str = NAME
) -> Incident:
    incident: Incident = wait_for(lambda: only_incident(service, name))
    wait_for(lambda: pagerduty.incidents_for(incident.dedup_key))
    wait_for(lambda: outbox_empty(service))
    return incident


def still_open_and_paged(
    service: LiveService, pagerduty: PagerDutyEmulator, incident: Incident
) -> None:
    wait_for(lambda: outbox_empty(service))
    row = only_incident(service, incident.alarm_name or "")
    assert row is not None and row.status == OPEN and row.alarm_state == "ALARM"
    [page] = pagerduty.incidents_for(incident.dedup_key)
    assert page["status"] == "triggered"
    sent = [e["event_action"] for e in pagerduty.events if e["dedup_key"] == incident.dedup_key]
    assert sent == ["trigger"]


def resolved(service: LiveService, pagerduty: PagerDutyEmulator, incident: Incident) -> None:
    name = incident.alarm_name or ""
    wait_for(lambda: (row := only_incident(service, name)) and row.status == RESOLVED)
    wait_for(lambda: pagerduty.incidents_for(incident.dedup_key)[0]["status"] == "resolved")


def refusals_in(slack: SlackEmulator, channel: str) -> list[Message]:
    """The channel's notices of alarms not applied."""
    return [m for m in slack.channel_messages(channel) if m.text.startswith("Alarm not applied")]


def warnings_of(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [
        r.getMessage()
        for r in caplog.records
        if r.name == "bot.alarms.parse" and r.levelno == logging.WARNING
    ]


# -- the HTTPS door -----------------------------------------------------------------------


def test_an_ok_of_another_accounts_alarm_by_an_allowed_topic_leaves_its_incident_open(
    settings: Settings,
    config: Config,
    make_service: Callable[..., LiveService],
    sns_signer: SnsSigner,
    slack: SlackEmulator,
    pagerduty: PagerDutyEmulator,
    caplog: pytest.LogCaptureFixture,
) -> None:
    service = make_service(with_topics(settings), config)
    post(service, sns_signer, prod_alarm("ALARM"), topic_arn=TOPIC_ARN)
    incident = paged_and_open(service, pagerduty)

    with caplog.at_level(logging.WARNING):
        forged = post(service, sns_signer, prod_alarm("OK", seconds=60), topic_arn=STAGING_TOPIC)
        # A notice, posted where notices go, applied to nothing.
        [notice] = wait_for(lambda: refusals_in(slack, "C0ALERTS"))
    still_open_and_paged(service, pagerduty, incident)
    assert metric(service, ODD, what="account_not_topics") == 1
    # It says which alarm was not applied, what carried it, and which setting accepts it.
    shown = json.dumps(notice.blocks)
    assert f"Alarm not applied: {NAME}" in shown
    assert all(part in shown for part in ("OK", PROD, STAGING_TOPIC, "OPSBOT_SNS_TOPIC_ACCOUNTS"))
    [warning] = warnings_of(caplog)
    assert forged in warning and STAGING_TOPIC in warning
    assert PROD in warning and STAGING in warning
    with service.runtime.sessions() as db:
        kind = db.scalar(
            sa.select(ReceivedMessage.kind).where(ReceivedMessage.message_id == forged)
        )
    assert kind == "notice"


def test_another_accounts_alarm_by_an_allowed_topic_pages_nobody(
    settings: Settings,
    config: Config,
    make_service: Callable[..., LiveService],
    sns_signer: SnsSigner,
    slack: SlackEmulator,
    pagerduty: PagerDutyEmulator,
) -> None:
    service = make_service(with_topics(settings), config)
    post(service, sns_signer, prod_alarm("ALARM"), topic_arn=STAGING_TOPIC)
    wait_for(lambda: slack.channel_messages("C0ALERTS"))
    wait_for(lambda: outbox_empty(service))
    assert only_incident(service, NAME) is None
    assert pagerduty.events == []
    assert not slack.channel_messages("C0PRODALERTS")


@pytest.mark.parametrize("account", [PROD, "*"], ids=["account-named", "any-account"])
def test_an_ok_resolves_its_incident_only_by_a_topic_that_may_carry_the_account(
    settings: Settings,
    config: Config,
    make_service: Callable[..., LiveService],
    sns_signer: SnsSigner,
    pagerduty: PagerDutyEmulator,
    account: str,
) -> None:
    service = make_service(with_topics(settings, accounts=[f"{ORG_TOPIC}={account}"]), config)
    post(service, sns_signer, prod_alarm("ALARM"), topic_arn=TOPIC_ARN)
    incident = paged_and_open(service, pagerduty)

    post(service, sns_signer, prod_alarm("OK", seconds=60), topic_arn=STAGING_TOPIC)
    still_open_and_paged(service, pagerduty, incident)
    post(service, sns_signer, prod_alarm("OK", seconds=61), topic_arn=ORG_TOPIC)
    resolved(service, pagerduty, incident)
    assert metric(service, ODD, what="account_not_topics") == 1  # the first OK only


# -- the SQS door ---------------------------------------------------------------------------


def queued(sqs: Any, queue_url: str, signer: SnsSigner, message: str, *, topic_arn: str) -> None:
    envelope = signer.notification(message, topic_arn=topic_arn)
    sqs.send_message(QueueUrl=queue_url, MessageBody=json.dumps(envelope))


def test_through_the_queue_an_ok_resolves_only_by_a_topic_that_may_carry_its_account(
    aws: Callable[[str], Any],
    settings: Settings,
    config: Config,
    make_service: Callable[..., LiveService],
    sns_signer: SnsSigner,
    pagerduty: PagerDutyEmulator,
) -> None:
    service = make_service(with_topics(settings, accounts=[f"{ORG_TOPIC}={PROD}"]), config)
    sqs = aws("sqs")
    queue_url = new_queue(sqs, "opsbot-topic-accounts")
    consumer = consumer_of(service, sqs, queue_url)
    queued(sqs, queue_url, sns_signer, prod_alarm("ALARM"), topic_arn=TOPIC_ARN)
    assert consumer.poll_once() == 1
    incident = paged_and_open(service, pagerduty)

    queued(sqs, queue_url, sns_signer, prod_alarm("OK", seconds=60), topic_arn=STAGING_TOPIC)
    assert consumer.poll_once() == 1  # recorded as a notice, and deleted
    still_open_and_paged(service, pagerduty, incident)
    assert metric(service, ODD, what="account_not_topics") == 1

    queued(sqs, queue_url, sns_signer, prod_alarm("OK", seconds=61), topic_arn=ORG_TOPIC)
    assert consumer.poll_once() == 1
    resolved(service, pagerduty, incident)


def test_under_raw_delivery_the_queue_carries_its_own_accounts_alarms_and_those_named_for_it(
    aws: Callable[[str], Any],
    moto_server: str,
    settings: Settings,
    config: Config,
    make_service: Callable[..., LiveService],
    sns_signer: SnsSigner,
    pagerduty: PagerDutyEmulator,
) -> None:
    """Raw delivery names no topic anyone vouched for: the queue (moto's, of account PROD)
    carries the alarms, and a TopicArn in the body, even of a topic that may carry any
    account's alarms, is only the sender's word."""
    sqs = aws("sqs")
    queue_url = new_queue(sqs, "opsbot-raw-accounts")
    assert f"/{PROD}/" in queue_url
    other = "333333333333"
    service = make_service(
        with_topics(settings, accounts=[f"{ORG_TOPIC}=*", f"{queue_url}={STAGING}"]).model_copy(
            update={
                "alarm_queue_url": queue_url,
                "alarm_queue_raw_delivery": True,
                "aws_endpoint_url": moto_server,
            }
        ),
        config,
    )
    # Two alarms of two accounts, each opened and paged over HTTPS by a topic that may.
    post(
        service, sns_signer, prod_alarm("ALARM", account=other, name="prod-a"), topic_arn=ORG_TOPIC
    )
    post(
        service,
        sns_signer,
        prod_alarm("ALARM", account=STAGING, name="prod-b"),
        topic_arn=STAGING_TOPIC,
    )
    first = paged_and_open(service, pagerduty, "prod-a")
    second = paged_and_open(service, pagerduty, "prod-b")

    for n, (name, account) in enumerate((("prod-a", other), ("prod-b", STAGING))):
        ok = prod_alarm("OK", seconds=60, account=account, name=name)
        envelope = {
            "Type": "Notification",
            "MessageId": f"m-{n}",
            "TopicArn": ORG_TOPIC,
            "Message": ok,
        }
        sqs.send_message(QueueUrl=queue_url, MessageBody=json.dumps(envelope))
    wait_for(
        lambda: metric(service, "opsbot_alarm_notifications_total", via="sqs", outcome="new") == 2
    )
    resolved(service, pagerduty, second)  # the queue may carry STAGING's alarms
    still_open_and_paged(service, pagerduty, first)  # not other's, whatever the body says
    assert metric(service, ODD, what="account_not_topics") == 1


# -- recorded now, applied later --------------------------------------------------------------


def _intake(engine: sa.Engine, config: Config) -> AlarmIntake:
    return AlarmIntake(
        sessions=make_sessionmaker(engine), config=config, clock=SystemClock(), metrics=Metrics()
    )


def _states(engine: sa.Engine) -> list[tuple[str, str | None]]:
    with engine.connect() as connection:
        return [
            (status, state)
            for status, state in connection.execute(
                sa.select(Incident.status, Incident.alarm_state)
            )
        ]


def test_an_ok_of_another_accounts_alarm_recorded_for_later_is_applied_as_a_notice(
    engine: sa.Engine,
) -> None:
    intake = _intake(engine, parse_config(TEST_CONFIG))
    opened = Inbound(message_id="m-1", via="https", body=prod_alarm("ALARM"), topic_arn=TOPIC_ARN)
    assert intake.record(opened).startswith("incident 1 opened")
    forged = Inbound(
        message_id="m-2", via="sqs", body=prod_alarm("OK", seconds=60), topic_arn=STAGING_TOPIC
    )
    assert intake.record_later([forged]) == ["recorded; applied in turn"]
    while intake.apply_later():
        pass
    assert _states(engine) == [(OPEN, "ALARM")]
    assert intake.metrics.registry.get_sample_value(ODD, {"what": "account_not_topics"}) == 1
    with engine.connect() as connection:
        kind, outcome = connection.execute(
            sa.select(ReceivedMessage.kind, ReceivedMessage.outcome).where(
                ReceivedMessage.message_id == "m-2"
            )
        ).one()
    assert (kind, outcome) == ("notice", "notice posted")


def test_a_row_recorded_before_the_check_is_checked_when_it_is_applied(
    engine: sa.Engine,
) -> None:
    """A row an older opsbot left pending (taken for an alarm when recorded) is checked
    against the topic it names as it is applied."""
    intake = _intake(engine, parse_config(TEST_CONFIG))
    opened = Inbound(message_id="m-1", via="https", body=prod_alarm("ALARM"), topic_arn=TOPIC_ARN)
    assert intake.record(opened).startswith("incident 1 opened")
    with make_sessionmaker(engine)() as db:
        db.add(
            ReceivedMessage(
                message_id="m-old",
                via="https",
                topic_arn=STAGING_TOPIC,
                kind="alarm",
                subject=None,
                body=prod_alarm("OK", seconds=60),
                outcome=PENDING,
                received_at=datetime.now(UTC),
            )
        )
        db.commit()
    assert intake.sweep(older_than_s=0.0) == 1
    while intake.apply_later():
        pass
    assert _states(engine) == [(OPEN, "ALARM")]
    with engine.connect() as connection:
        outcome = connection.scalar(
            sa.select(ReceivedMessage.outcome).where(ReceivedMessage.message_id == "m-old")
        )
    assert outcome == "notice posted"


# -- the setting ----------------------------------------------------------------------------


def test_the_setting_reads_pairs_and_stars() -> None:
    settings = Settings(
        sns_topic_arns=[TOPIC_ARN, STAGING_TOPIC, ORG_TOPIC],
        sns_topic_accounts=(f"{STAGING_TOPIC}={PROD}, {STAGING_TOPIC}=333333333333,{ORG_TOPIC}=*"),
    )
    assert settings.topic_accounts == {
        STAGING_TOPIC: frozenset({PROD, "333333333333"}),
        ORG_TOPIC: None,
    }


@pytest.mark.parametrize(
    ("value", "said"),
    [
        (f"arn:aws:sns:us-east-1:{STAGING}:typo={PROD}", "is not in OPSBOT_SNS_TOPIC_ARNS"),
        (f"{STAGING_TOPIC}=12345", "is not an AWS account id (12 digits) nor *"),
        (f"{STAGING_TOPIC}=prod", "is not an AWS account id (12 digits) nor *"),
        (STAGING_TOPIC, "is not <topic ARN>=<account>"),
    ],
    ids=["topic-not-allowed", "short-account", "not-digits", "no-account"],
)
def test_a_bad_setting_is_refused(value: str, said: str) -> None:
    with pytest.raises(ValidationError, match=re.escape(said)):
        Settings(sns_topic_arns=[TOPIC_ARN, STAGING_TOPIC], sns_topic_accounts=value)


def test_the_queue_is_named_only_under_raw_delivery() -> None:
    queue = f"https://sqs.us-east-1.amazonaws.com/{PROD}/alarms"
    with pytest.raises(ValidationError, match="OPSBOT_ALARM_QUEUE_RAW_DELIVERY=true"):
        Settings(sns_topic_arns=[TOPIC_ARN], alarm_queue_url=queue, sns_topic_accounts=f"{queue}=*")
    raw = Settings(
        alarm_queue_url=queue, alarm_queue_raw_delivery=True, sns_topic_accounts=f"{queue}=*"
    )
    assert raw.topic_accounts == {queue: None}


def test_opsbot_serve_refuses_to_start_on_a_bad_setting(tmp_path: Path) -> None:
    env = {
        **os.environ,
        "OPSBOT_VAR_DIR": str(tmp_path / "var"),
        "OPSBOT_SNS_TOPIC_ARNS": TOPIC_ARN,
        "OPSBOT_SNS_TOPIC_ACCOUNTS": f"{STAGING_TOPIC}={PROD}",
    }
    result = subprocess.run(
        [sys.executable, "-m", "bot.cli", "serve", "--host", "127.0.0.1", "--port", "0"],
        cwd=Path(__file__).resolve().parents[2],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert f"OPSBOT_SNS_TOPIC_ACCOUNTS: {STAGING_TOPIC!r} is not in OPSBOT_SNS_TOPIC_ARNS" in (
        result.stderr
    )
    assert not (tmp_path / "var").exists()


def test_a_route_of_an_account_no_topic_may_carry_is_said_loudly_at_start() -> None:
    """An organisation-wide topic set up before alarms were bound to their topic's
    account would turn every other account's alarm into a notice: the start says so."""
    data = {
        **TEST_CONFIG,
        "alarm_routes": [
            {"name": "other", "match": {"account": OTHER}, "channel": "#other"},
            {"name": "own", "match": {"account": "1234567890*"}, "channel": "#own"},
            {"match": {}, "channel": "#all"},
        ],
    }
    config = parse_config(data)
    settings = Settings(sns_topic_arns=[TOPIC_ARN])
    topics = TopicAccounts(named=settings.topic_accounts)
    [problem] = accounts_no_topic_carries(config, settings, topics)
    assert problem.startswith(f"alarm route other: matches account {OTHER}, whose alarms no")
    assert "NEVER PAGED" in problem and "OPSBOT_SNS_TOPIC_ACCOUNTS" in problem
    mapped = Settings(sns_topic_arns=[TOPIC_ARN], sns_topic_accounts=f"{TOPIC_ARN}={OTHER}")
    assert (
        accounts_no_topic_carries(config, mapped, TopicAccounts(named=mapped.topic_accounts)) == []
    )
