"""Numbers no column (or no int) holds: an alarm still pages, a webhook still applies, a
command says there is no such incident, a forged button is dropped. Nothing answers 5xx.

A button's value is read as `commands.typed_id` reads a typed number: ASCII digits
within the id columns' range, or the click names nothing and is dropped.

`1e400` is valid JSON that Python parses as infinity, which int() refuses; a
number of twenty digits is more than SQLite's 64-bit integers and PostgreSQL's
INTEGER columns hold.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from pydantic import SecretStr

from bot.approvals.render import ACTION_IDS
from bot.audit.models import AuditRecord
from bot.config import parse_config
from bot.incidents import render
from bot.maintenance import render as maintenance_render
from bot.ops.render import RETRY_ACTION
from bot.settings import Settings
from sandbox.alarms import alarm_message
from sandbox.pagerduty import PagerDutyEmulator
from sandbox.slack import SlackEmulator
from sandbox.sns import SnsSigner, body
from tests.conftest import TEST_CONFIG, TOPIC_ARN
from tests.incidents.helpers import (
    click,
    command,
    incident_message,
    incident_row,
    only_incident,
    page,
    responses_to,
)
from tests.support import LiveService, metric, wait_for

HUGE = "99999999999999999999"  # 20 digits: beyond 64 bits
PAST_INT32 = str(2**31)
WEBHOOK_SECRET = "whsec-huge-numbers"


def with_numbers(document: dict[str, Any], numbers: dict[str, str]) -> str:
    """`document` as JSON, each placeholder string (a key of `numbers`) written as the
    raw JSON number it maps to."""
    text = json.dumps(document)
    for placeholder, raw in numbers.items():
        text = text.replace(f'"{placeholder}"', raw)
    return text


def test_an_alarm_with_numbers_no_int_holds_still_pages(
    service: LiveService, sns_signer: SnsSigner, slack: SlackEmulator, pagerduty: PagerDutyEmulator
) -> None:
    name = "prod-api-huge-numbers"
    message = json.loads(alarm_message(name=name, state="ALARM"))
    message["Trigger"] = {
        "MetricName": "5XXError",
        "Namespace": "AWS/ApiGateway",
        "Statistic": "Sum",
        "Period": "@PERIOD@",
        "EvaluationPeriods": "@EVALUATION@",
        "DatapointsToAlarm": "@DATAPOINTS@",
        "ComparisonOperator": "GreaterThanThreshold",
        "Threshold": "@THRESHOLD@",
    }
    raw = with_numbers(
        message,
        {
            "@PERIOD@": "1e400",
            "@EVALUATION@": "1e400",
            "@DATAPOINTS@": "-1e400",
            "@THRESHOLD@": "1" + "0" * 400,  # an int float() cannot hold
        },
    )
    envelope = sns_signer.notification(raw, topic_arn=TOPIC_ARN)
    answer = service.post("/sns", content=body(envelope), headers={"content-type": "text/plain"})
    assert answer.status_code == 200, answer.text

    incident = wait_for(lambda: only_incident(service, name))
    wait_for(lambda: pagerduty.incidents_for(incident.dedup_key))
    posted = wait_for(lambda: incident_message(slack, incident))
    assert name in posted.text + str(posted.blocks)


@pytest.mark.parametrize("where", ["Threshold", "ignored-key"])
def test_an_alarm_with_an_integer_past_pythons_digit_limit_still_pages(
    service: LiveService,
    sns_signer: SnsSigner,
    pagerduty: PagerDutyEmulator,
    where: str,
) -> None:
    # Python refuses to read an integer of more than 4,300 digits (a ValueError).
    name = f"prod-api-{where.lower()}-4301-digits"
    message = json.loads(alarm_message(name=name, state="ALARM"))
    if where == "Threshold":
        message["Trigger"]["Threshold"] = "@LONG@"
    else:
        message["SomethingNew"] = {"Count": "@LONG@"}
    raw = with_numbers(message, {"@LONG@": "9" * 4301})
    envelope = sns_signer.notification(raw, topic_arn=TOPIC_ARN)
    answer = service.post("/sns", content=body(envelope), headers={"content-type": "text/plain"})
    assert answer.status_code == 200, answer.text

    incident = wait_for(lambda: only_incident(service, name))
    wait_for(lambda: pagerduty.incidents_for(incident.dedup_key))


@pytest.fixture
def webhook_service(
    settings: Settings,
    make_service: Callable[..., LiveService],
    pagerduty: PagerDutyEmulator,
) -> LiveService:
    config = parse_config({**TEST_CONFIG, "oncall": {"pagerduty_channel": "C0ALERTS"}})
    secrets = [SecretStr(WEBHOOK_SECRET)]
    service = make_service(
        settings.model_copy(update={"pagerduty_webhook_secrets": secrets}), config
    )
    pagerduty.subscribe_webhook(service.url + "/pagerduty/webhooks", WEBHOOK_SECRET)
    return service


BOB = {"id": "PBOB", "type": "user_reference", "summary": "Bob"}


def deliver(service: LiveService, text: str) -> httpx.Response:
    """`text` as a webhook delivery, signed as PagerDuty signs it."""
    raw = text.encode()
    return service.post(
        "/pagerduty/webhooks",
        content=raw,
        headers={
            "X-PagerDuty-Signature": PagerDutyEmulator.sign(raw, WEBHOOK_SECRET),
            "X-Webhook-Id": "w-1",
        },
    )


@pytest.mark.parametrize(
    ("number", "level"),
    [("1e400", "2"), ("-1e400", "1e400"), (HUGE, PAST_INT32), (PAST_INT32, HUGE)],
    ids=["infinite-number", "infinite-level", "huge-number", "huge-level"],
)
def test_a_webhook_with_numbers_no_column_holds_is_applied_without_them(
    webhook_service: LiveService,
    sns_signer: SnsSigner,
    slack: SlackEmulator,
    pagerduty: PagerDutyEmulator,
    number: str,
    level: str,
) -> None:
    service = webhook_service
    incident_id, _message = page(service, sns_signer, slack, pagerduty)
    [pd_incident] = pagerduty.incidents.values()
    wait_for(lambda: incident_row(service, incident_id).pagerduty_incident_id == pd_incident["id"])
    kept_number = incident_row(service, incident_id).pagerduty_number
    data = {**pd_incident, "status": "acknowledged", "number": "@N@", "escalation_level": "@L@"}
    document = pagerduty.webhook_body("incident.acknowledged", data, agent=BOB)
    answer = deliver(service, with_numbers(document, {"@N@": number, "@L@": level}))
    assert answer.status_code == 200, answer.text
    row = wait_for(lambda: (r := incident_row(service, incident_id)).acknowledged_at and r)
    assert row.pagerduty_number == kept_number
    assert row.escalation_level in (None, 2)
    assert metric(service, "opsbot_pagerduty_webhooks_total", outcome="error") == 0


@pytest.mark.parametrize("field", ["assignees", "assignments"])
def test_a_webhook_whose_assignees_are_not_a_list_is_applied_without_them(
    webhook_service: LiveService,
    sns_signer: SnsSigner,
    slack: SlackEmulator,
    pagerduty: PagerDutyEmulator,
    field: str,
) -> None:
    service = webhook_service
    incident_id, _message = page(service, sns_signer, slack, pagerduty)
    [pd_incident] = pagerduty.incidents.values()
    wait_for(lambda: incident_row(service, incident_id).pagerduty_incident_id == pd_incident["id"])
    data = {**pd_incident, "status": "acknowledged"}
    document = pagerduty.webhook_body("incident.acknowledged", data, agent=BOB)
    shaped = document["event"]["data"]
    shaped.pop("assignees")  # without them, REST's `assignments` are read instead
    shaped[field] = 5
    answer = deliver(service, json.dumps(document))
    assert answer.status_code == 200, answer.text
    wait_for(lambda: incident_row(service, incident_id).acknowledged_at)


NUMBERS = {
    "20-digits": HUGE,
    "2^31": PAST_INT32,
    "#20-digits": "#" + HUGE,
    "4400-digits": "9" * 4400,
}
COMMANDS = ["ack {n}", "resolve {n}", "timeline {n}", "note {n} hello"]


@pytest.mark.parametrize(
    ("text", "number"),
    [
        pytest.param(text, number, id=f"{text.split()[0]}-{name}")
        for text in COMMANDS
        for name, number in NUMBERS.items()
        # A note that long is refused for its length, before its number is looked at.
        if not (text.startswith("note") and len(number) > 3000)
    ],
)
def test_an_incident_number_no_column_holds_is_no_incident(
    service: LiveService, slack: SlackEmulator, text: str, number: str
) -> None:
    url = slack.response_url()
    command(service, "/incident", text.format(n=number), response_url=url)
    [reply] = wait_for(lambda: responses_to(slack, url))
    assert reply["text"].startswith(f"There is no incident `{number}`."), reply["text"]


@pytest.mark.parametrize(
    ("action_id", "value", "option"),
    [
        (render.ACKNOWLEDGE, HUGE, None),
        (render.RESOLVE, PAST_INT32, None),
        (render.START_CHANNEL, HUGE, None),
        (render.SILENCE, "", f"{HUGE}:30m"),
        (render.ACKNOWLEDGE, "\u00b2", None),  # `isdigit`, but not to int()
    ],
    ids=["acknowledge", "resolve", "start-channel", "silence", "superscript-two"],
)
def test_a_button_naming_an_incident_no_column_holds_is_dropped_at_the_edge(
    service: LiveService,
    slack: SlackEmulator,
    caplog: pytest.LogCaptureFixture,
    action_id: str,
    value: str,
    option: str | None,
) -> None:
    # Only a forged click carries such a value: it is logged and dropped by its listener.
    with caplog.at_level(logging.INFO):
        click(service, action_id, value, response_url=slack.response_url(), selected_option=option)
        wait_for(
            lambda: [
                r
                for r in caplog.records
                if r.name == "handlers.incidents" and r.levelno == logging.WARNING
            ]
        )
    assert [r for r in caplog.records if r.levelno >= logging.ERROR] == []


@pytest.mark.parametrize(
    ("action_id", "value", "listener"),
    [
        (RETRY_ACTION, "\u00b2", "handlers.ops_status"),
        (RETRY_ACTION, HUGE, "handlers.ops_status"),
        (maintenance_render.END, "\u00b2", "handlers.home"),
        (maintenance_render.END, PAST_INT32, "handlers.home"),
        (ACTION_IDS["approve"], HUGE, "handlers.approvals"),
        (ACTION_IDS["confirm"], PAST_INT32, "handlers.approvals"),
        (ACTION_IDS["cancel"], "\u00b2", "handlers.approvals"),
    ],
    ids=[
        "retry-superscript-two",
        "retry-20-digits",
        "end-window-superscript-two",
        "end-window-2^31",
        "approve-20-digits",
        "confirm-2^31",
        "cancel-superscript-two",
    ],
)
def test_a_button_naming_a_row_no_column_holds_is_dropped_at_the_edge(
    service: LiveService,
    slack: SlackEmulator,
    caplog: pytest.LogCaptureFixture,
    action_id: str,
    value: str,
    listener: str,
) -> None:
    # Dropped by its listener, before any work is queued: logged once, nothing answered,
    # nothing audited.
    url = slack.response_url()
    with caplog.at_level(logging.INFO):
        click(service, action_id, value, response_url=url)
    assert [r for r in caplog.records if r.name == listener and r.levelno == logging.WARNING], (
        caplog.records
    )
    assert [r for r in caplog.records if r.levelno >= logging.ERROR] == []
    assert metric(service, "opsbot_after_ack_wait_seconds_count") == 0
    assert metric(service, "opsbot_after_ack_queued") == 0
    assert responses_to(slack, url) == []
    with service.runtime.sessions() as db:
        assert db.scalars(sa.select(AuditRecord)).all() == []
