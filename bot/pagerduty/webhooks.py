"""PagerDuty webhooks v3: the signature check and the event, parsed into typed objects.

`X-PagerDuty-Signature: v1=<hex>[,v1=<hex>...]` is hex HMAC-SHA256 of the raw
body; during a secret rotation PagerDuty signs with each secret, so a delivery
is good when any entry matches any configured secret.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from bot import json_depth
from bot.clock import parse_time

MAX_BODY_BYTES = 512 * 1024
# The range of the INTEGER columns an incident's numbers are kept in (PostgreSQL's).
INT32_MIN, INT32_MAX = -(2**31), 2**31 - 1


class MalformedWebhook(ValueError):
    pass


def signature_valid(body: bytes, header: str | None, secrets: Iterable[str]) -> bool:
    """Whether any `v1=` entry of the header is the HMAC of `body` under any secret."""
    if not header:
        return False
    given = [
        part.strip()[3:].lower()
        for part in header.split(",")
        if part.strip().lower().startswith("v1=")
    ]
    valid = False
    for secret in secrets:
        expected = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
        for candidate in given:
            # No early exit: every comparison runs, each in constant time.
            valid |= hmac.compare_digest(expected.encode(), candidate.encode())
    return valid


@dataclass(frozen=True)
class Reference:
    """A user, service, policy or priority as PagerDuty refers to it."""

    id: str
    name: str
    type: str = "user_reference"

    @property
    def is_user(self) -> bool:
        return self.type in ("user", "user_reference")


@dataclass(frozen=True)
class IncidentData:
    id: str
    number: int | None
    status: str | None
    incident_key: str | None
    title: str
    html_url: str | None
    service: Reference | None
    assignees: tuple[Reference, ...]
    escalation_policy: Reference | None
    # None of PagerDuty's incident objects (REST or webhook) carries the level:
    # `levels.current_level` works it out, and opsbot fills it in where it did.
    escalation_level: int | None
    priority: str | None
    urgency: str | None


@dataclass(frozen=True)
class NoteData:
    id: str
    content: str


@dataclass(frozen=True)
class WebhookEvent:
    id: str
    event_type: str  # incident.acknowledged, pagey.ping, ...
    occurred_at: datetime | None
    agent: Reference | None
    incident: IncidentData | None  # the incident itself, or the one a note is on
    note: NoteData | None


def _reference(data: Any) -> Reference | None:
    if not isinstance(data, dict) or not data.get("id"):
        return None
    name = data.get("summary") or data.get("name") or data["id"]
    return Reference(id=str(data["id"]), name=str(name), type=str(data.get("type") or ""))


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _assignees(data: dict[str, Any]) -> tuple[Reference, ...]:
    raw = data.get("assignees")
    if raw is None:  # REST's shape: assignments[].assignee
        raw = [a.get("assignee") for a in _list(data.get("assignments")) if isinstance(a, dict)]
    found = (_reference(item) for item in _list(raw))
    return tuple(ref for ref in found if ref is not None)


def _int(value: Any) -> int | None:
    """A whole number of the incident's; None when absent, not a number, or out of range.

    Out of range is beyond the 32-bit column it is kept in: `1e400` (infinity once
    parsed) or a number of twelve digits would fail the event's transaction, and
    PagerDuty would deliver it again for two days.
    """
    try:
        number = int(value) if value is not None else None
    except (TypeError, ValueError, OverflowError):
        return None
    if number is None or not INT32_MIN <= number <= INT32_MAX:
        return None
    return number


def parse_incident(data: dict[str, Any]) -> IncidentData:
    """An incident as webhooks (and REST answers) describe it.

    REST names its number `incident_number`, webhooks v3 `number`. Neither says the
    escalation level: it is left None here.
    """
    if not data.get("id"):
        raise MalformedWebhook("the incident has no id")
    priority = _reference(data.get("priority"))
    number = data.get("incident_number")
    return IncidentData(
        id=str(data["id"]),
        number=_int(number if number is not None else data.get("number")),
        status=data.get("status"),
        incident_key=data.get("incident_key"),
        title=str(data.get("title") or data.get("summary") or data["id"]),
        html_url=data.get("html_url"),
        service=_reference(data.get("service")),
        assignees=_assignees(data),
        escalation_policy=_reference(data.get("escalation_policy")),
        escalation_level=None,
        priority=priority.name if priority else None,
        urgency=data.get("urgency"),
    )


def parse_event(body: bytes) -> WebhookEvent:
    """One v3 event; dispatch is on `data.type`, so notes carry their incident's reference."""
    try:
        envelope = json_depth.loads(body)
    except json_depth.JsonTooDeep as exc:
        raise MalformedWebhook(str(exc)) from None
    except UnicodeDecodeError:
        raise MalformedWebhook("the body is not UTF-8") from None
    except ValueError:
        raise MalformedWebhook("the body is not JSON") from None
    event = envelope.get("event") if isinstance(envelope, dict) else None
    if not isinstance(event, dict) or not event.get("id") or not event.get("event_type"):
        raise MalformedWebhook("no event with an id and an event_type")
    raw_data = event.get("data")
    data: dict[str, Any] = raw_data if isinstance(raw_data, dict) else {}
    incident = note = None
    if data.get("type") == "incident":
        incident = parse_incident(data)
    elif data.get("type") == "incident_note":
        note = NoteData(id=str(data.get("id") or ""), content=str(data.get("content") or ""))
        ref = data.get("incident")
        if isinstance(ref, dict) and ref.get("id"):
            incident = parse_incident(ref)
    return WebhookEvent(
        id=str(event["id"]),
        event_type=str(event["event_type"]),
        occurred_at=parse_time(event.get("occurred_at")),
        agent=_reference(event.get("agent")),
        incident=incident,
        note=note,
    )
