"""What an incident change sends out: its Slack message, its thread, its page.

Everything here goes through the outbox in the caller's transaction.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.orm import Session

from bot.incidents import render
from bot.incidents.models import Incident
from bot.outbox import service as outbox


def sync_message(db_session: Session, *, incident: Incident, now: datetime) -> None:
    """Post the incident's message, or update it in place, with its current state."""
    outbox.post_or_update(
        db_session,
        key=incident.message_key,
        channel=incident.channel,
        message=render.incident_message(incident),
        now=now,
    )


def thread_transition(
    db_session: Session, *, incident: Incident, item: dict[str, Any], now: datetime
) -> None:
    """A threaded reply for a state transition; unsent ones fold into one reply."""
    outbox.reply_in_thread(
        db_session,
        key=incident.message_key,
        channel=incident.channel,
        fold_key=f"{incident.message_key}:transitions",
        item=item,
        render=render.transitions_reply,
        now=now,
    )


def thread_text(db_session: Session, *, incident: Incident, text: str, now: datetime) -> None:
    """A one-off threaded reply (an error, a note) that never folds with others."""
    outbox.reply_in_thread(
        db_session,
        key=incident.message_key,
        channel=incident.channel,
        fold_key=None,
        item={"text": text},
        render=lambda items: {"text": render.clip(items[-1]["text"], 3000), "blocks": None},
        now=now,
    )


def _trigger_body(incident: Incident) -> dict[str, Any]:
    snap = incident.snapshot or {}
    details = {
        k: snap[k]
        for k in ("reason", "metric", "threshold", "description", "alarm_arn", "kind")
        if snap.get(k)
    }
    payload: dict[str, Any] = {
        "summary": render.clip(render.summary_text(incident).split(" ", 1)[-1], 1024),
        "source": incident.alarm_arn or incident.route_name,
        "severity": incident.severity,
        "custom_details": details,
    }
    if incident.state_changed_at:
        payload["timestamp"] = incident.state_changed_at.isoformat()
    if incident.account:
        payload["group"] = incident.account
    if snap.get("component"):
        payload["component"] = snap["component"]
    if snap.get("kind"):
        payload["class"] = snap["kind"]
    body: dict[str, Any] = {"payload": payload, "client": "opsbot"}
    if snap.get("console_url"):
        body["links"] = [{"href": snap["console_url"], "text": "CloudWatch alarm"}]
    return body


def page_trigger(db_session: Session, *, incident: Incident, now: datetime) -> bool:
    """Page on-call for the incident; False when its route has no routing key."""
    if not incident.routing_key_env:
        return False
    outbox.pagerduty_event(
        db_session,
        routing_key_env=incident.routing_key_env,
        dedup_key=incident.dedup_key,
        action="trigger",
        body=_trigger_body(incident),
        now=now,
    )
    incident.paged = True
    return True


def page_resolve(db_session: Session, *, incident: Incident, now: datetime, delay_s: float) -> None:
    """Resolve the page, after `delay_s` so that a quick re-ALARM can withdraw it."""
    if not (incident.routing_key_env and incident.paged):
        return
    outbox.pagerduty_event(
        db_session,
        routing_key_env=incident.routing_key_env,
        dedup_key=incident.dedup_key,
        action="resolve",
        body={},
        now=now,
        not_before=now + timedelta(seconds=delay_s),
    )


def withdraw_resolve(db_session: Session, *, incident: Incident, now: datetime) -> bool:
    """Cancel a resolve that has not gone out yet; False if it already went."""
    return outbox.cancel_pagerduty_event(
        db_session, dedup_key=incident.dedup_key, action="resolve", now=now
    )
