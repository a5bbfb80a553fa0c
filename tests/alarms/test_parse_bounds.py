"""Alarm fields the publisher writes, bounded where they are parsed: a StateChangeTime
after the notification's receipt is taken as received, a name past its column is cut,
and an account or region no column (or no route) can trust makes the message a notice."""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa

from bot.incidents.models import RESOLVED, Incident
from sandbox.pagerduty import PagerDutyEmulator
from sandbox.slack import SlackEmulator
from sandbox.sns import SnsSigner
from tests.alarms.test_pipeline import alarm, outbox_empty, send
from tests.incidents.helpers import only_incident
from tests.support import LiveService, metric, wait_for

FAR_FUTURE = datetime(2099, 1, 1, tzinfo=UTC)
ODD = "opsbot_alarm_odd_fields_total"


def incidents(service: LiveService) -> list[Incident]:
    with service.runtime.sessions() as db:
        return list(db.scalars(sa.select(Incident)).all())


def warnings_about(caplog: pytest.LogCaptureFixture, name: str) -> list[str]:
    return [
        r.getMessage()
        for r in caplog.records
        if r.name == "bot.alarms.parse" and r.levelno == logging.WARNING and name in r.getMessage()
    ]


def test_an_ok_stamped_in_the_future_does_not_silence_the_next_alarm(
    service: LiveService,
    sns_signer: SnsSigner,
    pagerduty: PagerDutyEmulator,
    caplog: pytest.LogCaptureFixture,
) -> None:
    name = "prod-future-ok"
    with caplog.at_level(logging.WARNING):
        assert send(service, sns_signer, alarm(name, "OK", FAR_FUTURE)) == 200
        wait_for(lambda: outbox_empty(service))
        now = datetime.now(UTC)
        assert send(service, sns_signer, alarm(name, "ALARM", now + timedelta(seconds=1))) == 200
        incident = wait_for(lambda: only_incident(service, name))
        wait_for(lambda: pagerduty.incidents_for(incident.dedup_key))
    [warning] = warnings_about(caplog, name)
    assert "2099-01-01T00:00:00+00:00" in warning
    assert metric(service, ODD, what="future_time") == 1


def test_an_alarm_stamped_in_the_future_is_resolved_by_the_next_ok(
    service: LiveService, sns_signer: SnsSigner, pagerduty: PagerDutyEmulator
) -> None:
    name = "prod-future-alarm"
    assert send(service, sns_signer, alarm(name, "ALARM", FAR_FUTURE)) == 200
    incident = wait_for(lambda: only_incident(service, name))
    assert incident.state_changed_at is not None and incident.state_changed_at.year < 2099
    wait_for(lambda: pagerduty.incidents_for(incident.dedup_key))
    later = datetime.now(UTC) + timedelta(seconds=1)
    assert send(service, sns_signer, alarm(name, "OK", later)) == 200
    wait_for(lambda: (row := only_incident(service, name)) and row.status == RESOLVED)


def test_a_name_longer_than_its_column_is_cut_and_still_pages(
    service: LiveService, sns_signer: SnsSigner, pagerduty: PagerDutyEmulator
) -> None:
    name = "prod-" + "n" * 400
    assert send(service, sns_signer, alarm(name, "ALARM", datetime.now(UTC))) == 200
    shown = name[:254] + "\u2026"
    incident = wait_for(lambda: only_incident(service, shown))
    assert len(shown) == 255
    wait_for(lambda: pagerduty.incidents_for(incident.dedup_key))
    assert metric(service, ODD, what="name_cut") == 1


def _notice_only(service: LiveService, slack: SlackEmulator, pagerduty: PagerDutyEmulator) -> None:
    wait_for(lambda: slack.channel_messages("C0ALERTS"))
    wait_for(lambda: outbox_empty(service))
    assert incidents(service) == []
    assert pagerduty.events == []


@pytest.mark.parametrize(
    ("account", "region", "what"),
    [
        ("1" * 40, "us-east-1", "account_invalid"),
        ("12345678901x", "us-east-1", "account_invalid"),
        ("123456789012", "r" * 33, "region_invalid"),
    ],
    ids=["long-account", "not-digits", "long-region"],
)
def test_an_account_or_region_no_aws_alarm_has_makes_a_notice(
    service: LiveService,
    sns_signer: SnsSigner,
    slack: SlackEmulator,
    pagerduty: PagerDutyEmulator,
    account: str,
    region: str,
    what: str,
) -> None:
    message = alarm("prod-odd-identity", "ALARM", datetime.now(UTC), account=account, region=region)
    assert send(service, sns_signer, message) == 200
    _notice_only(service, slack, pagerduty)
    assert metric(service, ODD, what=what) == 1


def test_an_account_the_arn_contradicts_makes_a_notice(
    service: LiveService,
    sns_signer: SnsSigner,
    slack: SlackEmulator,
    pagerduty: PagerDutyEmulator,
    caplog: pytest.LogCaptureFixture,
) -> None:
    name = "prod-claims-another-account"
    message = json.loads(alarm(name, "ALARM", datetime.now(UTC), account="222222222222"))
    message["AWSAccountId"] = "111111111111"
    with caplog.at_level(logging.WARNING):
        assert send(service, sns_signer, json.dumps(message)) == 200
        _notice_only(service, slack, pagerduty)
    [warning] = warnings_about(caplog, name)
    assert "111111111111" in warning and "222222222222" in warning
    assert metric(service, ODD, what="account_mismatch") == 1
