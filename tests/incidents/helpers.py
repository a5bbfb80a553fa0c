"""What the on-call tests share: signed Slack requests, paging an alarm, reading state."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import httpx
import sqlalchemy as sa

from bot.audit.models import AuditRecord
from bot.incidents.models import Incident, IncidentEvent
from bot.outbox.models import Delivery
from sandbox.alarms import alarm_message
from sandbox.pagerduty import PagerDutyEmulator
from sandbox.slack import Message, SlackEmulator
from sandbox.sns import SnsSigner, body
from tests.conftest import SLACK_SIGNING_SECRET, TOPIC_ARN
from tests.support import (
    LiveService,
    block_action_body,
    slack_headers,
    slash_command_body,
    wait_for,
)

T0 = datetime(2026, 11, 25, 10, 0, tzinfo=UTC)


def click(
    service: LiveService,
    action_id: str,
    value: str = "",
    *,
    user_id: str = "U0ALICE",
    response_url: str,
    selected_option: str | None = None,
) -> httpx.Response:
    """A signed block_actions payload through Bolt, as Slack sends a click."""
    payload = block_action_body(
        action_id,
        value,
        user_id=user_id,
        response_url=response_url,
        selected_option=selected_option,
    )
    answer = service.post(
        "/slack/events", content=payload, headers=slack_headers(SLACK_SIGNING_SECRET, payload)
    )
    assert answer.status_code == 200, answer.text
    return answer


def command(
    service: LiveService,
    name: str,
    text: str,
    *,
    user_id: str = "U0ALICE",
    response_url: str,
    channel_id: str = "C0ALERTS",
) -> httpx.Response:
    """A signed slash command through Bolt."""
    payload = slash_command_body(
        name, text, user_id=user_id, response_url=response_url, channel_id=channel_id
    )
    answer = service.post(
        "/slack/events", content=payload, headers=slack_headers(SLACK_SIGNING_SECRET, payload)
    )
    assert answer.status_code == 200, answer.text
    return answer


def ack_text(answer: httpx.Response) -> str:
    """What the immediate acknowledgement said (empty for a bare ack)."""
    if not answer.content:
        return ""
    if "json" not in answer.headers.get("content-type", ""):
        return answer.text  # Bolt answers a text-only ack as plain text
    data: dict[str, Any] = answer.json()
    return str(data.get("text") or "")


def send_alarm(
    service: LiveService, signer: SnsSigner, name: str, state: str, at: datetime = T0
) -> None:
    envelope = signer.notification(
        alarm_message(name=name, state=state, at=at), topic_arn=TOPIC_ARN
    )
    answer = service.post(
        "/sns",
        content=body(envelope),
        headers={"x-amz-sns-message-type": "Notification", "content-type": "text/plain"},
    )
    assert answer.status_code == 200, answer.text


def outbox_idle(service: LiveService) -> bool:
    with service.runtime.sessions() as db:
        pending = db.scalar(
            sa.select(sa.func.count()).select_from(Delivery).where(Delivery.status == "pending")
        )
        return pending == 0


def page(
    service: LiveService,
    signer: SnsSigner,
    slack: SlackEmulator,
    pagerduty: PagerDutyEmulator,
    name: str = "prod-api-5xx",
    at: datetime = T0,
) -> tuple[int, Message]:
    """An ALARM on the paging route: posted in Slack and open in PagerDuty."""
    send_alarm(service, signer, name, "ALARM", at)
    incident = wait_for(lambda: only_incident(service, name))
    dedup_key = incident.dedup_key
    wait_for(lambda: pagerduty.incidents_for(dedup_key))
    message = wait_for(lambda: incident_message(slack, incident))
    wait_for(lambda: outbox_idle(service))
    return incident.id, message


def only_incident(service: LiveService, name: str) -> Incident | None:
    with service.runtime.sessions() as db:
        rows = db.scalars(
            sa.select(Incident).where(Incident.alarm_name == name).order_by(Incident.id)
        ).all()
        return rows[-1] if rows else None


def incident_row(service: LiveService, incident_id: int) -> Incident:
    with service.runtime.sessions() as db:
        found = db.get(Incident, incident_id)
        assert found is not None
        return found


def events_of(service: LiveService, incident_id: int) -> list[IncidentEvent]:
    with service.runtime.sessions() as db:
        return list(
            db.scalars(
                sa.select(IncidentEvent)
                .where(IncidentEvent.incident_id == incident_id)
                .order_by(IncidentEvent.id)
            )
        )


def audit_of(service: LiveService, incident_id: int) -> list[AuditRecord]:
    with service.runtime.sessions() as db:
        return list(
            db.scalars(
                sa.select(AuditRecord)
                .where(AuditRecord.target == f"incident:{incident_id}")
                .order_by(AuditRecord.id)
            )
        )


def incident_message(slack: SlackEmulator, incident: Incident) -> Message | None:
    """The top-level message of the incident, found by its number in the context line."""
    channel = incident.channel
    for message in slack.channel_messages(channel):
        if f"Incident #{incident.id} " in str(message.blocks):
            return message
    return None


def message_text(message: Message) -> str:
    return message.text + " " + str(message.blocks)


def pd_calls(
    pagerduty: PagerDutyEmulator, method: str, path_start: str = "/incidents/"
) -> list[dict[str, Any]]:
    with pagerduty.lock:
        return [
            c
            for c in pagerduty.rest_calls
            if c["method"] == method and c["path"].startswith(path_start)
        ]


def responses_to(slack: SlackEmulator, response_url: str) -> list[dict[str, Any]]:
    path = response_url.split("://", 1)[1].split("/", 1)[1]
    with slack.lock:
        return [r for r in slack.responses if r["url"] == "/" + path]
