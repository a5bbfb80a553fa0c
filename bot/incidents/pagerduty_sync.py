"""PagerDuty's webhooks applied to incidents, so that Slack shows what PagerDuty knows.

Each event is recorded by its id (and its delivery's X-Webhook-Id) in the
transaction that applies it, so a replay or a concurrent retry changes nothing.
Only a clash on those receipts is a duplicate: when two instances apply
events of one new PagerDuty incident at once and both create our incident for
it, the one that loses applies its event again to the incident the other made.
Events about one PagerDuty incident can arrive out of order: a state change
older than the newest one applied is kept in the timeline only, and so is any
event of a PagerDuty incident ours was paged away from. An incident
that none of our alarms or declarations opened is posted in
`oncall.pagerduty_channel`, with the same buttons, unless PagerDuty says it is
resolved by then (its trigger came after its resolve).
"""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from bot.clock import Clock
from bot.config import PAGERDUTY_ROUTE, Config
from bot.inbound import service as inbound
from bot.inbound.models import PAGERDUTY_EVENT, PAGERDUTY_WEBHOOK
from bot.incidents import flows, render
from bot.incidents import service as incidents
from bot.incidents.models import OPEN, PAGERDUTY, Incident
from bot.observability.metrics import Metrics
from bot.pagerduty.errors import PagerDutyError
from bot.pagerduty.levels import current_level
from bot.pagerduty.rest import PagerDutyRest
from bot.pagerduty.webhooks import IncidentData, WebhookEvent, parse_incident
from bot.people.directory import PeopleDirectory
from bot.slack_text import escape

log = logging.getLogger(__name__)

IN_PAGERDUTY = "in PagerDuty"
OPEN_STATUSES = ("triggered", "acknowledged")
# A unique-key clash that is not a duplicate (two instances creating the incident
# for one PagerDuty incident) commits the other side's row: the second attempt
# finds it. A clash on that attempt too is answered 5xx, so PagerDuty retries.
APPLY_ATTEMPTS = 2
TITLE_CHARS = 1024  # Incident.title's column: a title typed in PagerDuty can be longer
# Who is on call on an escalated incident's policy is asked for this window from now.
ONCALL_WINDOW = timedelta(seconds=1)
# PagerDuty retries a delivery for 48 h: an event older than this is no retry of
# PagerDuty's but a replay (its signature has no timestamp; receipts are pruned).
MAX_EVENT_AGE = timedelta(hours=72)


@dataclass(frozen=True)
class _Names:
    """Slack's names for the people in an event, looked up before the transaction."""

    agent: str
    assignees: list[str]


# What `receive` answers begins with one of these when it applied nothing.
PONG = "pong"
DUPLICATE = "duplicate"
IGNORED = "ignored"


def ignored(outcome: str) -> bool:
    """Whether `receive`'s answer says the event was not about anything of ours."""
    return outcome == PONG or outcome.startswith(IGNORED)


def _find(db_session: Session, data: IncidentData) -> Incident | None:
    found = incidents.get_by_pagerduty_id(db_session, pagerduty_incident_id=data.id)
    if found is None and data.incident_key:
        found = incidents.get_by_dedup_key(db_session, dedup_key=data.incident_key)
        if found is not None and _on_other_service(found, data):
            return None  # someone else's incident that carries our dedup key
    return found


def _on_other_service(incident: Incident, data: IncidentData) -> bool:
    """Whether `data` is an incident of another PagerDuty service than the one ours pages.

    Dedup keys are per service, and the webhook subscription may cover the whole
    account: an incident opened elsewhere with our key must not take ours over.
    Unknown (no service remembered yet, or none in the event) is not "other".
    """
    return (
        incident.pagerduty_service_id is not None
        and data.service is not None
        and data.service.id != incident.pagerduty_service_id
    )


def _ours_elsewhere(db_session: Session, data: IncidentData) -> Incident | None:
    """Our incident whose dedup key `data` carries, when `data` is on another service."""
    if not data.incident_key:
        return None
    ours = incidents.get_by_dedup_key(db_session, dedup_key=data.incident_key)
    return ours if ours is not None and _on_other_service(ours, data) else None


def _other_open_of_alarm(db_session: Session, incident: Incident) -> int | None:
    """The id of another open incident of the same alarm, if any."""
    if incident.alarm_arn is None:
        return None
    query = select(Incident.id).where(
        Incident.alarm_arn == incident.alarm_arn,
        Incident.status == OPEN,
        Incident.id != incident.id,
    )
    return db_session.scalars(query.limit(1)).first()


def _superseded(incident: Incident, data: IncidentData) -> bool:
    """Whether `data` is a PagerDuty incident ours was paged away from.

    Both carry our dedup key, and until PagerDuty opens the new one, asking it
    for the newest incident with that key still names the old one: only what
    we remember at the re-page tells them apart, with or without an API token.
    """
    return data.id != incident.pagerduty_incident_id and data.id in (
        incident.pagerduty_superseded_ids or ()
    )


def _hours(age: timedelta) -> str:
    return f"{int(age.total_seconds() // 3600)} h"


class CannotTellYet(Exception):
    """Whether an event is about the PagerDuty incident behind ours is unknown for now
    (PagerDuty's REST API did not answer): the event is not recorded, to come again.
    `incident_id`: ours, which the event may be about."""

    def __init__(self, message: str, *, incident_id: int) -> None:
        super().__init__(message)
        self.incident_id = incident_id


class WebhookSync:
    def __init__(
        self,
        *,
        sessions: sessionmaker[Session],
        people: PeopleDirectory,
        pagerduty: PagerDutyRest | None,
        config: Config,
        clock: Clock,
        metrics: Metrics,
    ) -> None:
        self.metrics = metrics
        self.sessions = sessions
        self.people = people
        self.pagerduty = pagerduty
        self.config = config
        self.clock = clock

    def _seen(self, event: WebhookEvent, webhook_id: str | None) -> bool:
        with self.sessions() as db_session:
            if inbound.seen(db_session, source=PAGERDUTY_EVENT, key=event.id):
                return True
            return webhook_id is not None and inbound.seen(
                db_session, source=PAGERDUTY_WEBHOOK, key=webhook_id
            )

    def _belongs(self, event: WebhookEvent) -> bool:
        """Whether an event is about the PagerDuty incident now behind ours.

        After a re-page, PagerDuty has an older (resolved) incident with our
        dedup key too, and its late webhooks must not close ours.
        """
        data = event.incident
        assert data is not None
        with self.sessions() as db_session:
            incident = _find(db_session, data)
            if incident is None or incident.pagerduty_incident_id == data.id:
                return True
            if _superseded(incident, data):
                return False  # known without asking PagerDuty
            incident_id = incident.id
            dedup_key, service_id = incident.dedup_key, incident.pagerduty_service_id
        # A trigger of a PagerDuty incident not yet known (and, by `_find`, of our service
        # when that is known) is our page's: our trigger opened it. Before any event about
        # our page has told us its service (the routing key alone does not say), the first
        # triggered event with our key is taken as our page's and its service remembered:
        # the key is new with each incident of ours, so another service's incident with it
        # would have to be opened in the seconds between our trigger and its webhook.
        if event.event_type == "incident.triggered" or self.pagerduty is None:
            return True
        try:
            newest = self.pagerduty.find_incident_by_key(dedup_key, service_id=service_id)
        except PagerDutyError as exc:
            if data.status in OPEN_STATUSES:
                log.warning(
                    "PagerDuty %r %r: cannot tell whether incident %r is incident %d's current "
                    "one (%r); applied",
                    event.event_type,
                    event.id,
                    data.id,
                    incident_id,
                    str(exc),
                    extra={
                        "pagerduty_event": event.id,
                        "incident": incident_id,
                        "pagerduty_incident": data.id,
                    },
                )
                return True
            # A resolve recorded as "older" would be answered 200 and never sent again,
            # leaving ours open for good: answered 5xx, PagerDuty delivers it again.
            raise CannotTellYet(
                f"cannot tell whether PagerDuty incident {data.id} is current ({exc})",
                incident_id=incident_id,
            ) from exc
        return newest is None or str(newest["id"]) == data.id

    def _would_open(self, data: IncidentData, event: WebhookEvent) -> bool:
        """Whether `_foreign` would post an incident for this event (it is not ours)."""
        return (
            self.config.oncall.pagerduty_channel is not None
            and event.note is None
            and data.status in OPEN_STATUSES
        )

    def _resolved_there(self, event: WebhookEvent) -> bool:
        """Whether an incident opsbot does not know yet, which this event would post,
        is resolved in PagerDuty by now: its trigger came late (its first delivery
        failed), after its resolve, which found nothing to resolve. Asking PagerDuty
        covers any order and a resolve never delivered; without a token, or when
        PagerDuty does not answer, the incident is posted as the event says."""
        data = event.incident
        assert data is not None
        if self.pagerduty is None or not self._would_open(data, event):
            return False
        with self.sessions() as db_session:
            if _find(db_session, data) is not None:
                return False
        try:
            status = parse_incident(self.pagerduty.get_incident(data.id)).status
        except PagerDutyError as exc:
            log.warning(
                "PagerDuty %r %r: cannot read the status of incident %r (%r); posted as it says",
                event.event_type,
                event.id,
                data.id,
                str(exc),
                extra={"pagerduty_event": event.id, "pagerduty_incident": data.id},
            )
            return False
        return status == "resolved"

    def _with_level(self, event: WebhookEvent) -> WebhookEvent:
        """v3 events do not carry the escalation level: work it out when it changed,
        from the event's assignees and who is on call on its policy (one request)."""
        data = event.incident
        if (
            event.event_type != "incident.escalated"
            or data is None
            or data.escalation_level is not None
            or data.escalation_policy is None
            or self.pagerduty is None
        ):
            return event
        now = self.clock.now()
        try:
            oncalls = self.pagerduty.oncalls(
                since=now,
                until=now + ONCALL_WINDOW,
                escalation_policy_ids=[data.escalation_policy.id],
            )
        except PagerDutyError as exc:
            oncalls, why = [], f"PagerDuty did not say who is on call ({exc})"
        else:
            why = "none of its assignees is on call on its policy now"
        level = current_level(data, oncalls)
        if level is None:
            self.metrics.pagerduty_level_unknown.labels("webhook").inc()
            log.warning(
                "PagerDuty %r %r: the escalation level of incident %r is unknown: %s",
                event.event_type,
                event.id,
                data.id,
                why,
                extra={"pagerduty_event": event.id, "pagerduty_incident": data.id},
            )
            return event
        return dataclasses.replace(
            event, incident=dataclasses.replace(data, escalation_level=level)
        )

    def known_incident(self, event: WebhookEvent) -> int | None:
        """Our incident an event is about, for a log line: None when there is none, or
        when it cannot be found (the database may be what failed)."""
        if event.incident is None:
            return None
        try:
            with self.sessions() as db_session:
                found = _find(db_session, event.incident)
                return found.id if found is not None else None
        except Exception:  # only for a log line: never to fail it
            return None

    def _too_old(self, event: WebhookEvent) -> bool:
        """Whether the event happened longer ago than PagerDuty retries deliveries."""
        return (
            event.occurred_at is not None and event.occurred_at < self.clock.now() - MAX_EVENT_AGE
        )

    def receive(self, event: WebhookEvent, *, webhook_id: str | None) -> str:
        """Apply one verified event; return what was done (for the log and the answer).

        An event older than MAX_EVENT_AGE is recorded (its receipt, and its line in
        our incident's timeline) but not applied: nothing is posted or changed, and
        PagerDuty is not asked about it.
        """
        if event.event_type == "pagey.ping":
            return PONG
        if event.incident is None:
            return f"{IGNORED}: {event.event_type} is not about an incident"
        if self._seen(event, webhook_id):
            return DUPLICATE
        too_old = self._too_old(event)
        if not too_old:
            event = self._with_level(event)
        assert event.incident is not None
        names = _Names(
            agent=self.people.display(event.agent) if event.agent else "PagerDuty",
            assignees=[] if too_old else self.people.display_all(event.incident.assignees),
        )
        for attempt in range(1, APPLY_ATTEMPTS + 1):
            try:
                outcome = self._record_and_apply(event, webhook_id, names, too_old=too_old)
            except IntegrityError:
                # Only a clash on this event's (or delivery's) own receipt is a
                # duplicate. Any other clash, such as another instance creating the
                # incident for the same PagerDuty incident at the same time, rolled
                # this event back: answering 200 then would lose it for good.
                if self._seen(event, webhook_id):
                    return DUPLICATE
                if attempt == APPLY_ATTEMPTS:
                    raise  # answered 5xx: PagerDuty delivers it again later
                self.metrics.pagerduty_webhook_clashes.inc()
                log.info(
                    "PagerDuty %r %r clashed with a concurrent change; applying it again",
                    event.event_type,
                    event.id,
                )
                continue
            if too_old:
                self._told_too_old(event, webhook_id, outcome)
            else:
                log.info("PagerDuty %r %r: %r", event.event_type, event.id, outcome)
            return outcome
        raise AssertionError("unreachable: the last attempt returns or raises")

    def _told_too_old(self, event: WebhookEvent, webhook_id: str | None, outcome: str) -> None:
        assert event.incident is not None and event.occurred_at is not None
        self.metrics.pagerduty_webhooks_too_old.inc()
        log.warning(
            "PagerDuty %r %r (X-Webhook-Id %r) about incident %r occurred at %s, more than "
            "%s ago: not applied (%s)",
            event.event_type,
            event.id,
            webhook_id,
            event.incident.id,
            event.occurred_at.isoformat(),
            _hours(MAX_EVENT_AGE),
            outcome,
            extra={
                "pagerduty_event": event.id,
                "pagerduty_incident": event.incident.id,
                "webhook_id": webhook_id,
                "incident": self.known_incident(event),
            },
        )

    def _record_and_apply(
        self, event: WebhookEvent, webhook_id: str | None, names: _Names, *, too_old: bool
    ) -> str:
        """Record the event's receipts and apply it, in one transaction."""
        # Again on a retry: the incident may exist by now. An event too old to apply
        # needs neither: it is not applied whatever PagerDuty would say.
        belongs = True if too_old else self._belongs(event)
        resolved_there = False if too_old else self._resolved_there(event)
        now = self.clock.now()
        with self.sessions() as db_session:  # closing it rolls back whatever failed
            inbound.record(db_session, source=PAGERDUTY_EVENT, key=event.id, now=now)
            if webhook_id is not None:
                inbound.record(db_session, source=PAGERDUTY_WEBHOOK, key=webhook_id, now=now)
            outcome = self._apply(
                db_session,
                event,
                names,
                belongs=belongs,
                resolved_there=resolved_there,
                too_old=too_old,
            )
            db_session.commit()
        return outcome

    def _apply(
        self,
        db_session: Session,
        event: WebhookEvent,
        names: _Names,
        *,
        belongs: bool,
        resolved_there: bool,
        too_old: bool = False,
    ) -> str:
        """`resolved_there`: an incident not ours that the event would post is resolved
        in PagerDuty by now (`_resolved_there`), so nothing is posted. `too_old`: the
        event is older than MAX_EVENT_AGE, kept in our incident's timeline only."""
        data = event.incident
        assert data is not None
        now = self.clock.now()
        at = event.occurred_at or now
        incident = _find(db_session, data)
        opened_here = incident is None
        if incident is None and too_old:
            return f"{IGNORED}: {event.event_type} is older than {_hours(MAX_EVENT_AGE)}"
        if incident is None:
            ours = _ours_elsewhere(db_session, data)
            if ours is not None:
                assert data.service is not None  # as `_on_other_service` found
                log.info(
                    "PagerDuty %r %r: incident %r is on service %r, incident %d pages %r: "
                    "not taken as ours",
                    event.event_type,
                    event.id,
                    data.id,
                    data.service.id,
                    ours.id,
                    ours.pagerduty_service_id,
                    extra={
                        "incident": ours.id,
                        "pagerduty_incident": data.id,
                        "pagerduty_service": data.service.id,
                    },
                )
            if resolved_there:
                log.info(
                    "PagerDuty %r %r: incident %r is resolved there by now; not posted",
                    event.event_type,
                    event.id,
                    data.id,
                    extra={"pagerduty_event": event.id, "pagerduty_incident": data.id},
                )
                return f"{IGNORED}: PagerDuty incident {data.id} is resolved by now"
            incident = self._foreign(db_session, event, names)
            if incident is None:
                return f"{IGNORED}: not an incident of ours"
        else:
            incident = incidents.lock(db_session, incident_id=incident.id) or incident
        state_changing = event.note is None  # a note changes no state: it is never late
        skip = None
        if too_old:
            skip = f"is older than {_hours(MAX_EVENT_AGE)}"
        elif _superseded(incident, data):
            # Checked here, under the incident's lock, rather than in `_belongs`: a
            # re-page between the two would otherwise let the old incident's event in.
            skip = f"is about PagerDuty incident {data.id}, which a new page replaced"
            log.info(
                "PagerDuty %r %r ignored: incident %d was paged again after %r (now %r)",
                event.event_type,
                event.id,
                incident.id,
                data.id,
                incident.pagerduty_incident_id,
            )
        elif not belongs:
            skip = f"is about an older PagerDuty incident ({data.id})"
        elif state_changing and incident.pagerduty_synced_at and at < incident.pagerduty_synced_at:
            skip = "arrived after a newer change"
        if skip is not None:
            incidents.add_event(
                db_session,
                incident=incident,
                kind="pagerduty",
                at=at,
                now=now,
                actor=names.agent,
                text=f"{event.event_type} {skip}: not applied",
                source_ref=event.id,
            )
            return f"incident {incident.id}: {event.event_type} {skip}, recorded only"
        incident.pagerduty_incident_id = data.id
        if incident.pagerduty_service_id is None and data.service is not None:
            incident.pagerduty_service_id = data.service.id
        if state_changing:
            incident.pagerduty_synced_at = at
        with flows.message_updated_once(db_session, incident=incident, now=now, always=True):
            if not (opened_here and event.event_type == "incident.triggered"):  # said by "opened"
                self._change(db_session, incident, event, names)
            # An escalation of a resolved incident changes nothing (`flows.escalated`), not
            # even what it shows of PagerDuty: only a reopen makes it open there again.
            stale = event.event_type == "incident.escalated" and not incident.is_open
            if state_changing and not stale:  # after the change, which compares with it
                flows.update_from_pagerduty(incident, data=data, assignees=names.assignees)
        return f"incident {incident.id}: {event.event_type}"

    def _change(
        self,
        db_session: Session,
        incident: Incident,
        event: WebhookEvent,
        names: _Names,
    ) -> None:
        now = self.clock.now()
        assert event.incident is not None
        moment = event.occurred_at or now
        kind = event.event_type.removeprefix("incident.")
        agent = names.agent
        if kind == "acknowledged":
            flows.acknowledge(
                db_session, incident=incident, by=agent, at=moment, now=now, via=IN_PAGERDUTY
            )
        elif kind == "unacknowledged":
            flows.unacknowledge(
                db_session,
                incident=incident,
                at=moment,
                now=now,
                why="PagerDuty: the acknowledgement timed out or was undone",
            )
        elif kind == "resolved":
            flows.resolve(
                db_session, incident=incident, by=agent, at=moment, now=now, via=IN_PAGERDUTY
            )
        elif kind == "reopened":
            self._reopen(db_session, incident, event, agent=agent, at=moment)
        elif kind == "escalated":
            flows.escalated(
                db_session,
                incident=incident,
                level=event.incident.escalation_level,
                assignees=names.assignees,
                by=agent,
                at=moment,
                now=now,
                via=IN_PAGERDUTY,
            )
        elif kind == "annotated" and event.note is not None:
            flows.add_note(
                db_session,
                incident=incident,
                text=event.note.content,
                by=agent,
                at=moment,
                now=now,
                via=IN_PAGERDUTY,
                pagerduty_note_id=event.note.id,
            )
        else:
            text = {
                "triggered": f"PagerDuty incident #{event.incident.number or '?'} open",
                "reassigned": "reassigned to " + (", ".join(names.assignees) or "nobody"),
                "priority_updated": f"priority set to {event.incident.priority or 'none'}",
            }.get(kind, kind.replace("_", " "))
            if kind == "triggered" and names.assignees:
                text += ", assigned to " + ", ".join(names.assignees)
            incidents.add_event(
                db_session,
                incident=incident,
                kind={"triggered": "paged", "priority_updated": "priority"}.get(kind, kind),
                at=moment,
                now=now,
                actor=None if kind == "triggered" else agent,
                text=text,
                source_ref=event.id,
            )
            incident.updated_at = now

    def _reopen(
        self,
        db_session: Session,
        incident: Incident,
        event: WebhookEvent,
        *,
        agent: str,
        at: datetime,
    ) -> None:
        """Reopen ours, unless its alarm has another incident open by now.

        An alarm has one open incident at a time: reopening an older one beside it
        would fail on every delivery. The alarm's open incident is the one that
        follows it, so the reopen is kept on the older incident's timeline only.
        """
        now = self.clock.now()
        newer = _other_open_of_alarm(db_session, incident)
        assert event.incident is not None
        if newer is None:
            flows.reopen(
                db_session,
                incident=incident,
                at=at,
                now=now,
                why=IN_PAGERDUTY,
                pagerduty_status=event.incident.status,
            )
            return
        log.info(
            "PagerDuty %r %r: incident %d not reopened, incident %d of its alarm is open",
            event.event_type,
            event.id,
            incident.id,
            newer,
            extra={
                "incident": incident.id,
                "open_incident": newer,
                "pagerduty_incident": event.incident.id,
            },
        )
        incidents.add_event(
            db_session,
            incident=incident,
            kind="pagerduty",
            at=at,
            now=now,
            actor=agent,
            text=f"reopened {IN_PAGERDUTY}; not reopened here: incident #{newer} "
            "of the same alarm is open",
            source_ref=event.id,
        )

    def _foreign(self, db_session: Session, event: WebhookEvent, names: _Names) -> Incident | None:
        """An incident someone opened in PagerDuty: posted in the configured channel."""
        data = event.incident
        assert data is not None
        channel = self.config.oncall.pagerduty_channel
        if channel is None or not self._would_open(data, event):
            return None
        now = self.clock.now()
        service = f" on {escape(data.service.name)}" if data.service else ""
        opened_by = names.agent if event.event_type == "incident.triggered" else None
        incident = incidents.create(
            db_session,
            now=now,
            source=PAGERDUTY,
            dedup_key=f"pagerduty:{data.id}",
            title=render.clip(data.title, TITLE_CHARS),
            route_name=PAGERDUTY_ROUTE,
            channel=channel,
            severity="critical" if data.urgency == "high" else "warning",
            opened_by=opened_by,
            snapshot={"description": f"Opened in PagerDuty{service}."},
        )
        flows.update_from_pagerduty(incident, data=data, assignees=names.assignees)
        incidents.add_event(
            db_session,
            incident=incident,
            kind="opened",
            at=event.occurred_at or now,
            now=now,
            actor=opened_by,
            text=f"PagerDuty incident #{data.number or '?'}{service}",
            source_ref=event.id,
        )
        return incident
