"""A PagerDuty emulator: Events API v2, a slice of REST API v2, and webhooks v3 back.

HTTPS on loopback (the `pagerduty` client only talks https), trusted through a
test CA. Incidents follow PagerDuty's rules that opsbot depends on: a trigger
with the dedup_key of an open incident adds to it; after a resolve the same
dedup_key opens a new incident; REST updates need a `From` user.

`incidents` holds the emulator's own records. REST answers and webhooks show
them in PagerDuty's shapes: REST names the number `incident_number`, webhooks
`number`, and neither shows the escalation level (PagerDuty takes it as an input
of PUT /incidents/{id} only; GET /oncalls says who is on call at which level).
REST lists incidents in ascending order unless `sort_by` says otherwise.
"""

from __future__ import annotations

import hashlib
import hmac
import itertools
import json
import logging
import re
import ssl
import threading
import time
import urllib.request
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sandbox.server import HttpRequest, HttpResponse, LoopbackServer

log = logging.getLogger(__name__)

SEVERITIES = ("critical", "error", "warning", "info")
OPEN_STATUSES = ("triggered", "acknowledged")
INCIDENT_PATH = re.compile(r"^/incidents/([A-Z0-9]+)$")
NOTES_PATH = re.compile(r"^/incidents/([A-Z0-9]+)/notes$")
USER_PATH = re.compile(r"^/users/([A-Z0-9]+)$")
# What a v3 webhook's `data` carries of an incident (no REST-only fields such as
# `assignments` or `acknowledgements`, and no escalation level).
WEBHOOK_INCIDENT_FIELDS = (
    "id",
    "type",
    "self",
    "html_url",
    "number",
    "status",
    "incident_key",
    "created_at",
    "title",
    "service",
    "assignees",
    "escalation_policy",
    "teams",
    "priority",
    "urgency",
    "conference_bridge",
    "resolve_reason",
)


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _time(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value.replace("Z", "+00:00")) if value else None


# The emulator's own fields of an incident record, which PagerDuty's REST API does not show.
RECORD_ONLY_FIELDS = ("number", "escalation_level")
# What GET /incidents can sort by (`sort_by=field[:asc|desc],...`).
SORTABLE = ("incident_number", "created_at", "resolved_at", "urgency")


def rest_incident(incident: dict[str, Any]) -> dict[str, Any]:
    """An incident record as PagerDuty's REST API v2 shows it."""
    shown = {k: v for k, v in incident.items() if k not in RECORD_ONLY_FIELDS}
    shown["incident_number"] = incident["number"]
    return shown


@dataclass
class WebhookSubscription:
    url: str
    secret: str
    ssl_context: ssl.SSLContext | None = None


class PagerDutyEmulator:
    def __init__(self, *, tls: ssl.SSLContext, api_token: str = "pd-sandbox-token") -> None:  # noqa: S107
        self.api_token = api_token
        self.lock = threading.RLock()
        self.services: dict[str, dict[str, Any]] = {}
        self.users: dict[str, dict[str, Any]] = {}
        self.escalation_policies: dict[str, dict[str, Any]] = {}
        self.schedules: dict[str, dict[str, Any]] = {}
        self.oncalls: list[dict[str, Any]] = []
        self.incidents: dict[str, dict[str, Any]] = {}
        self.notes: dict[str, list[dict[str, Any]]] = {}
        self.events: list[dict[str, Any]] = []  # every Events API call accepted
        self.rest_calls: list[dict[str, Any]] = []  # every REST call, with its From
        self.webhooks: list[WebhookSubscription] = []
        self.webhook_deliveries: list[dict[str, Any]] = []
        self._numbers = itertools.count(1)
        self.server = LoopbackServer(
            self.handle,
            tls=tls,
            fault_body=lambda status: {"status": "error", "message": f"injected {status}"},
        )

    # -- setting up ----------------------------------------------------------------

    @property
    def url(self) -> str:
        return self.server.url

    @property
    def faults(self) -> Any:
        return self.server.faults

    def start(self) -> PagerDutyEmulator:
        self.server.start()
        return self

    def stop(self) -> None:
        self.server.stop()

    def add_user(self, user_id: str, name: str, email: str) -> dict[str, Any]:
        with self.lock:
            user = {
                "id": user_id,
                "type": "user",
                "name": name,
                "email": email,
                "summary": name,
                "html_url": f"{self.url}/users/{user_id}",
            }
            self.users[user_id] = user
            return user

    def add_escalation_policy(self, policy_id: str, name: str) -> dict[str, Any]:
        with self.lock:
            policy = {"id": policy_id, "type": "escalation_policy", "name": name, "summary": name}
            self.escalation_policies[policy_id] = policy
            return policy

    def add_schedule(self, schedule_id: str, name: str) -> dict[str, Any]:
        with self.lock:
            schedule = {"id": schedule_id, "type": "schedule", "name": name, "summary": name}
            self.schedules[schedule_id] = schedule
            return schedule

    def add_oncall(
        self,
        *,
        policy_id: str,
        level: int,
        user_id: str,
        schedule_id: str | None = None,
        start: datetime | None = None,
        end: datetime | None = None,
    ) -> None:
        with self.lock:
            self.oncalls.append(
                {
                    "escalation_policy": self._ref(self.escalation_policies[policy_id]),
                    "escalation_level": level,
                    "schedule": self._ref(self.schedules[schedule_id]) if schedule_id else None,
                    "user": self._ref(self.users[user_id]),
                    "start": _iso(start) if start else None,
                    "end": _iso(end) if end else None,
                }
            )

    def add_service(
        self, service_id: str, name: str, *, routing_key: str, policy_id: str | None = None
    ) -> None:
        with self.lock:
            self.services[service_id] = {
                "id": service_id,
                "type": "service",
                "name": name,
                "summary": name,
                "routing_key": routing_key,
                "escalation_policy_id": policy_id,
            }

    def subscribe_webhook(
        self, url: str, secret: str, *, ssl_context: ssl.SSLContext | None = None
    ) -> None:
        with self.lock:
            self.webhooks.append(WebhookSubscription(url, secret, ssl_context))

    # -- reading state -------------------------------------------------------------

    def events_for(self, dedup_key: str) -> list[dict[str, Any]]:
        with self.lock:
            return [e for e in self.events if e.get("dedup_key") == dedup_key]

    def incidents_for(self, dedup_key: str) -> list[dict[str, Any]]:
        with self.lock:
            return [i for i in self.incidents.values() if i["incident_key"] == dedup_key]

    # -- actions a person takes in the PagerDuty app -----------------------------------

    def act_in_app(self, incident_id: str, *, status: str, user_id: str) -> dict[str, Any]:
        """Acknowledge or resolve as if in PagerDuty's own app; webhooks go out."""
        with self.lock:
            incident = self.incidents[incident_id]
            self._set_status(incident, status, agent=self._ref(self.users[user_id]))
            return incident

    def unacknowledge_in_app(self, incident_id: str) -> dict[str, Any]:
        """The acknowledgement times out: the incident is triggered again."""
        with self.lock:
            incident = self.incidents[incident_id]
            incident["status"] = "triggered"
            incident["acknowledgements"] = []
            self._emit("incident.unacknowledged", incident, agent=None)
            return incident

    def reassign_in_app(self, incident_id: str, *, to_user_id: str, by_user_id: str) -> None:
        with self.lock:
            incident = self.incidents[incident_id]
            incident["assignments"] = [
                {"at": _iso(datetime.now(UTC)), "assignee": self._ref(self.users[to_user_id])}
            ]
            self._emit("incident.reassigned", incident, agent=self._ref(self.users[by_user_id]))

    def set_priority_in_app(self, incident_id: str, *, priority: str, by_user_id: str) -> None:
        with self.lock:
            incident = self.incidents[incident_id]
            incident["priority"] = {
                "id": f"PPRIO{priority.upper()}",
                "type": "priority_reference",
                "summary": priority,
            }
            self._emit(
                "incident.priority_updated", incident, agent=self._ref(self.users[by_user_id])
            )

    def escalate_by_itself(self, incident_id: str, *, level: int) -> dict[str, Any]:
        """Nobody acknowledged in time: PagerDuty's policy moves the incident to `level`."""
        with self.lock:
            incident = self.incidents[incident_id]
            if not self._escalate(incident, level, agent=None):
                raise ValueError(f"the incident's policy has no level {level}")
            return incident

    def add_note_in_app(self, incident_id: str, *, content: str, user_id: str) -> dict[str, Any]:
        with self.lock:
            return self._note(self.incidents[incident_id], content, self.users[user_id])

    def open_in_app(
        self, service_id: str, *, title: str, user_id: str, urgency: str = "high"
    ) -> dict[str, Any]:
        """Someone opens an incident by hand in PagerDuty (not through the Events API)."""
        with self.lock:
            return self._create_incident(
                self.services[service_id],
                uuid.uuid4().hex,
                {
                    "payload": {
                        "summary": title,
                        "severity": "critical" if urgency == "high" else "warning",
                    }
                },
                agent=self._ref(self.users[user_id]),
            )

    # -- HTTP -----------------------------------------------------------------------

    def handle(self, request: HttpRequest) -> HttpResponse:
        if request.path == "/v2/enqueue":
            return self._enqueue(request)
        auth = request.headers.get("authorization", "")
        if auth != f"Token token={self.api_token}":
            return HttpResponse.json(
                {"error": {"message": "Authentication failed", "code": 2006}}, 401
            )
        with self.lock:
            self.rest_calls.append(
                {
                    "method": request.method,
                    "path": request.path,
                    "query": request.query,
                    "from": request.headers.get("from"),
                    "body": request.json() if request.body else None,
                }
            )
            return self._rest(request)

    def _ref(self, entity: dict[str, Any]) -> dict[str, Any]:
        return {
            "id": entity["id"],
            "type": f"{entity['type']}_reference",
            "summary": entity.get("summary") or entity.get("name"),
            "html_url": entity.get("html_url", f"{self.url}/{entity['type']}s/{entity['id']}"),
        }

    # -- Events API v2 ---------------------------------------------------------------

    def _invalid(self, why: str) -> HttpResponse:
        return HttpResponse.json(
            {"status": "invalid event", "message": "Event object is invalid", "errors": [why]}, 400
        )

    def _enqueue(self, request: HttpRequest) -> HttpResponse:
        try:
            event = request.json()
        except ValueError:
            return self._invalid("Body is not JSON")
        if not isinstance(event, dict):
            return self._invalid("Event must be an object")
        with self.lock:
            service = next(
                (s for s in self.services.values() if s["routing_key"] == event.get("routing_key")),
                None,
            )
            if service is None:
                return self._invalid("Invalid routing key")
            action = event.get("event_action")
            dedup_key = event.get("dedup_key")
            if action not in ("trigger", "acknowledge", "resolve"):
                return self._invalid("'event_action' is invalid")
            if action != "trigger" and not dedup_key:
                return self._invalid("'dedup_key' is required for acknowledge and resolve")
            if action == "trigger":
                payload = event.get("payload") or {}
                if not payload.get("summary") or not payload.get("source"):
                    return self._invalid("'payload.summary' and 'payload.source' are required")
                if payload.get("severity") not in SEVERITIES:
                    return self._invalid("'payload.severity' is invalid")
                dedup_key = dedup_key or uuid.uuid4().hex
            self.events.append({**event, "dedup_key": dedup_key, "received_at": time.time()})
            self._apply_event(service, action, str(dedup_key), event)
        return HttpResponse.json(
            {"status": "success", "message": "Event processed", "dedup_key": dedup_key}, 202
        )

    def _open_incident(self, service_id: str, dedup_key: str) -> dict[str, Any] | None:
        for incident in self.incidents.values():
            if (
                incident["service"]["id"] == service_id
                and incident["incident_key"] == dedup_key
                and incident["status"] in OPEN_STATUSES
            ):
                return incident
        return None

    def _apply_event(
        self, service: dict[str, Any], action: str, dedup_key: str, event: dict[str, Any]
    ) -> None:
        incident = self._open_incident(service["id"], dedup_key)
        if action == "trigger":
            if incident is not None:
                incident["alert_counts"]["triggered"] += 1
                return
            self._create_incident(service, dedup_key, event)
        elif incident is not None:
            status = "acknowledged" if action == "acknowledge" else "resolved"
            self._set_status(
                incident, status, agent={"id": service["id"], "type": "service_reference"}
            )

    def _create_incident(
        self,
        service: dict[str, Any],
        dedup_key: str,
        event: dict[str, Any],
        *,
        agent: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        incident_id = "Q" + uuid.uuid4().hex[:13].upper()
        payload = event.get("payload") or {}
        policy_id = service.get("escalation_policy_id")
        assignees = [
            o["user"]
            for o in self.oncalls
            if policy_id
            and o["escalation_policy"]["id"] == policy_id
            and o["escalation_level"] == 1
        ]
        now = datetime.now(UTC)
        incident = {
            "id": incident_id,
            "type": "incident",
            "number": next(self._numbers),
            "title": payload.get("summary", ""),
            "summary": payload.get("summary", ""),
            "status": "triggered",
            "incident_key": dedup_key,
            "urgency": "high" if payload.get("severity") in ("critical", "error") else "low",
            "created_at": _iso(now),
            "updated_at": _iso(now),
            "service": self._ref(service),
            "escalation_policy": self._ref(self.escalation_policies[policy_id])
            if policy_id
            else None,
            "escalation_level": 1,
            "assignments": [{"at": _iso(now), "assignee": a} for a in assignees],
            "acknowledgements": [],
            "priority": None,
            "html_url": f"{self.url}/incidents/{incident_id}",
            "alert_counts": {"triggered": 1, "resolved": 0, "all": 1},
            "resolve_reason": None,
        }
        self.incidents[incident_id] = incident
        self._emit(
            "incident.triggered",
            incident,
            agent=agent or {"id": service["id"], "type": "service_reference"},
        )
        return incident

    def _escalate(
        self, incident: dict[str, Any], level: int, *, agent: dict[str, Any] | None
    ) -> bool:
        """Move the incident to `level` of its policy, assigned to who is on call there;
        False (nothing changed) when its policy has no such level."""
        policy = incident["escalation_policy"]
        at_level = [
            o["user"]
            for o in self.oncalls
            if policy
            and o["escalation_policy"]["id"] == policy["id"]
            and o["escalation_level"] == level
        ]
        if not at_level:
            return False
        incident["escalation_level"] = level
        incident["status"] = "triggered"
        incident["assignments"] = [
            {"at": _iso(datetime.now(UTC)), "assignee": user} for user in at_level
        ]
        self._emit("incident.escalated", incident, agent=agent)
        return True

    def _set_status(self, incident: dict[str, Any], status: str, *, agent: dict[str, Any]) -> bool:
        if incident["status"] == status or incident["status"] == "resolved":
            return False
        incident["status"] = status
        incident["updated_at"] = _iso(datetime.now(UTC))
        if status == "acknowledged":
            incident["acknowledgements"].append(
                {"at": incident["updated_at"], "acknowledger": agent}
            )
        self._emit(f"incident.{status}", incident, agent=agent)
        return True

    # -- REST API v2 -------------------------------------------------------------------

    def _error(self, status: int, message: str, *errors: str) -> HttpResponse:
        return HttpResponse.json(
            {"error": {"message": message, "code": 2001, "errors": list(errors)}}, status
        )

    def _requester(self, request: HttpRequest) -> dict[str, Any] | None:
        email = (request.headers.get("from") or "").lower()
        return next((u for u in self.users.values() if u["email"].lower() == email), None)

    def _rest(self, request: HttpRequest) -> HttpResponse:
        path, method = request.path, request.method
        if path == "/incidents" and method == "GET":
            return self._list_incidents(request)
        if path == "/users" and method == "GET":
            return self._search("users", self.users, request, ("name", "email"))
        if path == "/schedules" and method == "GET":
            return self._search("schedules", self.schedules, request, ("name",))
        if path == "/escalation_policies" and method == "GET":
            return self._search("escalation_policies", self.escalation_policies, request, ("name",))
        if path == "/services" and method == "GET":
            return self._search("services", self.services, request, ("name",))
        if path == "/oncalls" and method == "GET":
            return self._list_oncalls(request)
        match = USER_PATH.match(path)
        if match and method == "GET":
            user = self.users.get(match.group(1))
            if user is None:
                return self._error(404, "Not Found")
            return HttpResponse.json({"user": user})
        match = INCIDENT_PATH.match(path)
        if match and method == "GET":
            incident = self.incidents.get(match.group(1))
            if incident is None:
                return self._error(404, "Not Found")
            return HttpResponse.json({"incident": rest_incident(incident)})
        if match and method == "PUT":
            return self._update_incident(match.group(1), request)
        match = NOTES_PATH.match(path)
        if match and method == "GET":
            found = self.incidents.get(match.group(1))
            if found is None:
                return self._error(404, "Not Found")
            return HttpResponse.json({"notes": list(self.notes.get(found["id"], []))})
        if match and method == "POST":
            return self._add_note(match.group(1), request)
        return self._error(404, "Not Found")

    def _page(self, key: str, items: list[dict[str, Any]], request: HttpRequest) -> HttpResponse:
        limit = int((request.query.get("limit") or ["25"])[-1])
        offset = int((request.query.get("offset") or ["0"])[-1])
        page = items[offset : offset + limit]
        return HttpResponse.json(
            {
                key: page,
                "limit": limit,
                "offset": offset,
                "more": offset + limit < len(items),
                "total": None,
            }
        )

    def _search(
        self,
        key: str,
        table: dict[str, dict[str, Any]],
        request: HttpRequest,
        fields: tuple[str, ...],
    ) -> HttpResponse:
        query = (request.query.get("query") or [""])[-1].lower()
        items = [
            e
            for e in table.values()
            if not query or any(query in str(e.get(f, "")).lower() for f in fields)
        ]
        return self._page(key, items, request)

    def _list_incidents(self, request: HttpRequest) -> HttpResponse:
        items = list(self.incidents.values())
        key = (request.query.get("incident_key") or [""])[-1]
        if key:
            items = [i for i in items if i["incident_key"] == key]
        statuses = request.query.get("statuses[]") or request.query.get("statuses")
        if statuses:
            items = [i for i in items if i["status"] in statuses]
        # Ascending by default; each `sort_by` field in turn, the last applied first.
        orders = ",".join(request.query.get("sort_by") or request.query.get("sort_by[]") or [])
        for part in reversed([p for p in orders.split(",") if p]):
            field, _, direction = part.partition(":")
            if field not in SORTABLE:
                return self._error(400, "Invalid Input Provided", f"cannot sort by {field}")
            name = "number" if field == "incident_number" else field
            items.sort(key=lambda i: str(i.get(name) or "").zfill(20), reverse=direction == "desc")
        return self._page("incidents", [rest_incident(i) for i in items], request)

    def _list_oncalls(self, request: HttpRequest) -> HttpResponse:
        items = list(self.oncalls)
        schedules = request.query.get("schedule_ids[]")
        policies = request.query.get("escalation_policy_ids[]")
        if schedules:
            items = [o for o in items if o["schedule"] and o["schedule"]["id"] in schedules]
        if policies:
            items = [o for o in items if o["escalation_policy"]["id"] in policies]
        # PagerDuty's window defaults to now at both ends: who is on call at this moment.
        since = _time((request.query.get("since") or [""])[-1])
        until = _time((request.query.get("until") or [""])[-1])
        window_start = since or datetime.now(UTC)
        window_end = until or max(window_start, datetime.now(UTC))

        def overlaps(oncall: dict[str, Any]) -> bool:
            start, end = _time(oncall["start"]), _time(oncall["end"])
            return (start is None or start <= window_end) and (end is None or end > window_start)

        items = [o for o in items if overlaps(o)]
        if (request.query.get("earliest") or ["false"])[-1] == "true":
            seen: set[tuple[str, int]] = set()
            earliest = []
            for o in sorted(items, key=lambda o: o["start"] or ""):
                slot = (o["escalation_policy"]["id"], o["escalation_level"])
                if slot not in seen:
                    seen.add(slot)
                    earliest.append(o)
            items = earliest
        return self._page("oncalls", items, request)

    def _update_incident(self, incident_id: str, request: HttpRequest) -> HttpResponse:
        incident = self.incidents.get(incident_id)
        if incident is None:
            return self._error(404, "Not Found")
        user = self._requester(request)
        if user is None:
            return self._error(400, "Invalid Input Provided", "Requester User Not Found")
        body = request.json() or {}
        change = body.get("incident")
        if not isinstance(change, dict) or change.get("type") not in (
            "incident",
            "incident_reference",
        ):
            return self._error(
                400, "Invalid Input Provided", "incident must be an incident_reference"
            )
        reopening = change.get("status") in OPEN_STATUSES or "escalation_level" in change
        if incident["status"] == "resolved" and reopening:
            return self._error(400, "Invalid Input Provided", "Incident Already Resolved")
        agent = self._ref(user)
        if "escalation_level" in change:
            level = int(change["escalation_level"])
            if not self._escalate(incident, level, agent=agent):
                return self._error(
                    400, "Invalid Input Provided", f"Escalation level {level} does not exist"
                )
        if change.get("status") in ("acknowledged", "resolved"):
            if change["status"] == "resolved" and change.get("resolution"):
                incident["resolve_reason"] = change["resolution"]
            self._set_status(incident, change["status"], agent=agent)
        return HttpResponse.json({"incident": rest_incident(incident)})

    def _add_note(self, incident_id: str, request: HttpRequest) -> HttpResponse:
        incident = self.incidents.get(incident_id)
        if incident is None:
            return self._error(404, "Not Found")
        user = self._requester(request)
        if user is None:
            return self._error(400, "Invalid Input Provided", "Requester User Not Found")
        content = ((request.json() or {}).get("note") or {}).get("content")
        if not content:
            return self._error(400, "Invalid Input Provided", "Note content is required")
        return HttpResponse.json({"note": self._note(incident, content, user)}, 201)

    def _note(self, incident: dict[str, Any], content: str, user: dict[str, Any]) -> dict[str, Any]:
        note = {
            "id": "N" + uuid.uuid4().hex[:13].upper(),
            "type": "incident_note",
            "content": content,
            "created_at": _iso(datetime.now(UTC)),
            "user": self._ref(user),
        }
        self.notes.setdefault(incident["id"], []).append(note)
        data = {
            "id": note["id"],
            "type": "incident_note",
            "content": content,
            "trimmed": False,
            "incident": {**self._ref(incident), "type": "incident_reference"},
        }
        self._emit("incident.annotated", incident, agent=self._ref(user), data=data)
        return note

    # -- webhooks v3 ---------------------------------------------------------------------

    def webhook_body(
        self,
        event_type: str,
        incident: dict[str, Any],
        *,
        agent: dict[str, Any] | None,
        data: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        return {
            "event": {
                "id": "E" + uuid.uuid4().hex[:20].upper(),
                "event_type": event_type,
                "resource_type": "incident",
                "occurred_at": _iso(datetime.now(UTC) + timedelta(microseconds=1)),
                "agent": agent,
                "client": None,
                "data": data or self._webhook_incident(incident),
            }
        }

    def _webhook_incident(self, incident: dict[str, Any]) -> dict[str, Any]:
        shaped = {
            **incident,
            "self": f"{self.url}/incidents/{incident['id']}",
            "assignees": [a["assignee"] for a in incident.get("assignments") or []],
            "teams": [],
            "conference_bridge": None,
        }
        return {k: shaped.get(k) for k in WEBHOOK_INCIDENT_FIELDS}

    @staticmethod
    def sign(body: bytes, secret: str) -> str:
        """The `X-PagerDuty-Signature` of a v3 webhook: `v1=` + hex HMAC-SHA256 of the body."""
        return "v1=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()

    def _emit(
        self,
        event_type: str,
        incident: dict[str, Any],
        *,
        agent: dict[str, Any] | None,
        data: dict[str, Any] | None = None,
    ) -> None:
        if not self.webhooks:
            return
        body = json.dumps(self.webhook_body(event_type, incident, agent=agent, data=data)).encode()
        for subscription in list(self.webhooks):
            threading.Thread(target=self._deliver, args=(subscription, body), daemon=True).start()

    def _deliver(self, subscription: WebhookSubscription, body: bytes) -> None:
        headers = {
            "Content-Type": "application/json",
            "X-PagerDuty-Signature": self.sign(body, subscription.secret),
            "X-Webhook-Id": uuid.uuid4().hex,
            "User-Agent": "PagerDuty-Webhook/V3.0",
        }
        request = urllib.request.Request(  # noqa: S310  # a loopback URL the test configured
            subscription.url, data=body, method="POST", headers=headers
        )
        status: int | str
        try:
            with urllib.request.urlopen(  # noqa: S310  # the test's own loopback URL
                request, timeout=5, context=subscription.ssl_context
            ) as answer:
                status = answer.status
        except Exception as exc:
            status = f"{type(exc).__name__}"
        with self.lock:
            self.webhook_deliveries.append(
                {
                    "url": subscription.url,
                    "status": status,
                    "body": json.loads(body),
                    "raw": body,  # as sent, so a test can replay the delivery byte for byte
                    "headers": headers,
                }
            )
