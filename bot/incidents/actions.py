"""What people do to incidents from Slack: acknowledge, resolve, escalate, note, silence, declare.

A handler acknowledges the click or command at once and then calls in here.
`request` finds who the person is in PagerDuty, checks the incident's state,
and records the PagerDuty REST call in the outbox, all before anything
changes: a person opsbot cannot find in PagerDuty changes nothing. The call
itself is made by `PagerDutyActionSender` (bot/incidents/pagerduty_calls.py),
which records PagerDuty's answer. Incidents PagerDuty knows nothing about
(routes without a routing key) change here and now. Every outcome is audited,
and the person hears back through the response_url of their click or command.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from bot.audit import service as audit
from bot.clock import Clock
from bot.commands import typed_id
from bot.config import AlarmRoute, Config
from bot.incidents import flows, render
from bot.incidents import service as incidents
from bot.incidents.errors import IncidentError, IncidentNotFound
from bot.incidents.models import ALARM, MANUAL, Incident, IncidentEvent
from bot.outbox import service as outbox
from bot.outbox.models import BULK, PAGERDUTY_REST, PERSON, SENT
from bot.outbox.replies import ephemeral, reply
from bot.pagerduty.errors import PagerDutyUnavailable
from bot.people.directory import NOT_CONFIGURED, PeopleDirectory, mention
from bot.people.errors import NoPagerDutyUser
from bot.rights.errors import RightMissing, SlackFactsUnavailable
from bot.rights.service import DECLARE_RIGHT, RESPOND_RIGHT, SILENCE_RIGHT, Rights
from bot.slack_text import code, escape

log = logging.getLogger(__name__)

ACKNOWLEDGE = "acknowledge"
RESOLVE = "resolve"
PAGE_OPEN = ("triggered", "acknowledged")  # PagerDuty's statuses of an incident not resolved
ESCALATE = "escalate"
NOTE = "note"
SILENCE = "silence"
DECLARE = "declare"

PAST = {ACKNOWLEDGE: "acknowledged", RESOLVE: "resolved", ESCALATE: "escalated", NOTE: "noted"}
DOING = {
    ACKNOWLEDGE: "acknowledge",
    RESOLVE: "resolve",
    ESCALATE: "escalate",
    NOTE: "add notes to",
}
ONGOING = {ACKNOWLEDGE: "acknowledged", RESOLVE: "resolved", ESCALATE: "escalated"}

SEVERITIES = ("critical", "error", "warning", "info")
PAGERDUTY_ID = re.compile(r"^[A-Z0-9]{6,20}$")
SLACK_USER = re.compile(r"<@([UW][A-Z0-9]+)>")
LIST_LIMIT = 50
LIST_READ_LIMIT = 1000  # open incidents read to find the LIST_LIMIT a person can see
MAX_MESSAGE_CHARS = 39_000  # Slack cuts a message past 40,000


@dataclass(frozen=True)
class Requester:
    """Who asked, and where to answer them."""

    slack_user_id: str | None  # None: opsbot itself (a scheduled job)
    via: str  # button | home (a button on App Home) | command | job
    response_url: str | None = None
    clicked_at: datetime | None = None  # a button: when the click arrived

    @property
    def display(self) -> str:
        return mention(self.slack_user_id) if self.slack_user_id else "opsbot"

    @property
    def audit_actor(self) -> str:
        return self.slack_user_id or "opsbot"

    @property
    def priority(self) -> int:
        """The outbox lane of what it asked for: a person waits; a job does not."""
        return BULK if self.slack_user_id is None else PERSON

    @property
    def where(self) -> str:
        """How the timeline says it was done."""
        return "as it was not acknowledged in time" if self.slack_user_id is None else "from Slack"


def rest_order_key(incident_id: int) -> str:
    return f"pdrest:incident:{incident_id}"


# The actions whose call carries the episode it was asked on (`episode`): landing on
# the incident's next episode (it reopened while the call waited), they would close or
# quiet a page nobody has seen. An escalation is bound to its page instead
# (`page_asked_for`): a flap whose page stands keeps it.
EPISODE_BOUND = (ACKNOWLEDGE, RESOLVE)


def episode(db_session: Session, incident: Incident) -> int:
    """Which episode of the incident is current: the id of its last `reopened` timeline
    event, 0 before it first reopens.

    By the timeline's order, not its clocks: two instances' clocks need not agree.
    """
    query = select(func.max(IncidentEvent.id)).where(
        IncidentEvent.incident_id == incident.id, IncidentEvent.kind == "reopened"
    )
    return int(db_session.scalar(query) or 0)


def asked_on(payload: dict[str, Any]) -> int | None:
    """The episode a PagerDuty call was asked on; None when it is not bound to one (a
    note, an escalation, or a call recorded before calls carried their episode)."""
    asked = payload.get("episode")
    if payload.get("action") not in EPISODE_BOUND or asked is None:
        return None
    return int(asked)


def page_asked_for(db_session: Session, incident: Incident) -> dict[str, Any]:
    """What an escalation's call carries of the page it is for: PagerDuty's incident,
    when known, and the Events API event that paged it. A new page since (a new trigger;
    that incident in `pagerduty_superseded_ids`) withdraws the call: it would escalate
    the new page moments after it opened."""
    last = outbox.last_pagerduty_event(db_session, dedup_key=incident.dedup_key)
    return {
        "pagerduty_incident": incident.pagerduty_incident_id,
        "page_event": last.id if last is not None else None,
    }


def respond(
    db_session: Session,
    *,
    requester: Requester,
    text: str,
    now: datetime,
    blocks: list[dict[str, Any]] | None = None,
) -> None:
    """An ephemeral answer to the person, through the response_url of their request."""
    if requester.response_url is not None:
        reply(
            db_session, response_url=requester.response_url, body=ephemeral(text, blocks), now=now
        )


def _label(incident: Incident) -> str:
    return f"#{incident.id} ({render.title_text(incident, 80)})"


def unseen(incident_id: int, doing: str) -> str:
    """The refusal told to someone who cannot see the incident: its number, nothing more."""
    return (
        f"You may not {doing} #{incident_id}: it is posted in a channel you cannot see. "
        "Nothing was done."
    )


def record_refusal(
    sessions: sessionmaker[Session],
    *,
    now: datetime,
    action: str,
    target: str,
    requester: Requester,
    why: str,
) -> None:
    """A refusal's only traces: a log line, an audit line and the answer to the person."""
    log.info(
        "%s on %s refused for %s",
        action,
        target,
        requester.audit_actor,
        extra={"target": target, "slack_user": requester.slack_user_id},
    )
    with sessions() as db_session:
        audit.record(
            db_session,
            at=now,
            actor=requester.audit_actor,
            action=action,
            target=target,
            outcome="refused",
            detail={"via": requester.via, "reason": why},
        )
        respond(db_session, requester=requester, text=why, now=now)
        db_session.commit()


class IncidentActions:
    def __init__(
        self,
        *,
        sessions: sessionmaker[Session],
        people: PeopleDirectory,
        rights: Rights,
        config: Config,
        clock: Clock,
    ) -> None:
        self.sessions = sessions
        self.people = people
        self.rights = rights
        self.config = config
        self.clock = clock

    # -- finding ------------------------------------------------------------------------

    def find_id(self, ref: str) -> int:
        """An incident by opsbot's number (`42`, `#42`) or PagerDuty's id (`Q1ABC2DEF3`)."""
        text = ref.strip().removeprefix("#")
        number = typed_id(text)
        with self.sessions() as db_session:
            if number is not None:
                found = incidents.get(db_session, incident_id=number)
            elif text.isascii() and text.isdigit():
                found = None  # beyond any incident's number
            elif PAGERDUTY_ID.match(text):
                found = incidents.get_by_pagerduty_id(db_session, pagerduty_incident_id=text)
            else:
                raise IncidentNotFound(f"{code(ref)} is not an incident number (e.g. `42`).")
            if found is None:
                raise IncidentNotFound(f"There is no incident {code(ref)}.")
            return found.id

    def open_incidents(self, requester: Requester) -> dict[str, Any]:
        """`/incident list`: the open incidents of channels the requester can see, newest first."""
        with self.sessions() as db_session:
            found = incidents.list_open(db_session, limit=LIST_READ_LIMIT)
        visible = self._visible(found, requester)
        return render.incident_list(
            visible[:LIST_LIMIT], now=self.clock.now(), more=len(visible) > LIST_LIMIT
        )

    def _visible(self, found: list[Incident], requester: Requester) -> list[Incident]:
        user_id = requester.slack_user_id
        if user_id is None:
            return found
        seen: dict[tuple[str, str | None], bool] = {}
        for channels in {(i.channel, i.slack_channel_id) for i in found}:
            seen[channels] = self.rights.may_see(user_id, *channels)
        return [i for i in found if seen[(i.channel, i.slack_channel_id)]]

    def timeline(self, incident_id: int) -> tuple[Incident, list[IncidentEvent]]:
        with self.sessions() as db_session:
            incident = incidents.get_or_raise(db_session, incident_id=incident_id)
            return incident, incidents.timeline(db_session, incident_id=incident_id)

    def send_timeline(self, *, incident_id: int, markdown: bool, requester: Requester) -> None:
        """`/incident timeline`: readable in Slack, or Markdown to paste into a postmortem.

        Only for someone who can see the incident's channel: the timeline is its content.
        """
        incident, events = self.timeline(incident_id)
        if not self.sees(incident, requester):
            why = (
                f"Incident #{incident.id} is posted in a channel you cannot see, so opsbot "
                "does not show you its timeline. Viewing an incident needs membership of "
                "its channel."
            )
            self.refuse(incident=incident, action="timeline", requester=requester, why=why)
            return
        if markdown:
            texts = [incident.title, incident.acknowledged_by or ""]
            texts += [f"{e.actor or ''} {e.text}" for e in events]
            names = self.people.slack_names(SLACK_USER.findall(" ".join(texts)))
            # Within the message's length: the oldest events give way, not the newest.
            document = render.timeline_markdown(
                incident, events, names=names, max_chars=MAX_MESSAGE_CHARS - len("```\n\n```")
            )
            message: dict[str, Any] = {
                "text": render.clip(f"```\n{document}\n```", MAX_MESSAGE_CHARS),
                "blocks": None,
            }
        else:
            message = render.timeline_message(incident, events)
        with self.sessions() as db_session:
            respond(
                db_session,
                requester=requester,
                text=message["text"],
                blocks=message["blocks"],
                now=self.clock.now(),
            )
            db_session.commit()

    # -- acting -------------------------------------------------------------------------

    def _refusal(self, incident: Incident, action: str, *, label: str) -> str | None:
        """Why `action` would change nothing in the incident's state, or None.

        `label` names the incident (`label_for`).
        """
        if action == NOTE:
            return None
        if not incident.is_open:
            by = f" by {incident.resolved_by}" if incident.resolved_by else ""
            return f"{label} is already resolved{by} ({render.hhmm(incident.resolved_at)})."
        if action == ACKNOWLEDGE and incident.acknowledged_at is not None:
            return (
                f"{label} was already acknowledged by {incident.acknowledged_by} "
                f"at {render.hhmm(incident.acknowledged_at)}."
            )
        if action == ESCALATE and not incident.in_pagerduty:
            return f"{label} was not paged: there is nothing to escalate in PagerDuty."
        return None

    def _on_its_way(
        self, db_session: Session, incident: Incident, action: str, *, label: str
    ) -> str | None:
        """Who asked PagerDuty for `action` on the incident already (the call is on its way)."""
        if action == NOTE:
            return None
        for pending in outbox.pending_payloads(
            db_session, kind=PAGERDUTY_REST, order_key=rest_order_key(incident.id)
        ):
            if pending.get("action") != action:
                continue
            asked = asked_on(pending)
            # One asked before the incident last reopened is not applied to this episode.
            if asked is None or asked == episode(db_session, incident):
                return f"{label} is being {ONGOING[action]} by {pending.get('actor')}."
        return None

    def refuse(
        self, *, incident: Incident | int | str, action: str, requester: Requester, why: str
    ) -> None:
        if isinstance(incident, Incident):
            target = incident.target
        else:
            target = incident if isinstance(incident, str) else f"incident:{incident}"
        record_refusal(
            self.sessions,
            now=self.clock.now(),
            action=f"incident.{action}",
            target=target,
            requester=requester,
            why=why,
        )

    def sees(self, incident: Incident, requester: Requester) -> bool:
        """Whether the requester can see one of the incident's channels (opsbot's own jobs can).

        Someone who cannot is told nothing of the incident but its number: not
        its title, route or channel. When Slack cannot say, they cannot.
        """
        user_id = requester.slack_user_id
        return user_id is None or self.rights.may_see(
            user_id, incident.channel, incident.slack_channel_id
        )

    def label_for(self, incident: Incident, requester: Requester) -> str:
        """How answers to the requester name the incident: `#N (title)`, or `#N` (`sees`)."""
        return _label(incident) if self.sees(incident, requester) else f"#{incident.id}"

    def missing_right(
        self,
        incident: Incident,
        requester: Requester,
        *,
        right: str,
        doing: str,
        minutes: int | None = None,
    ) -> str | None:
        """Why the requester may not `doing` the incident (`acknowledge`), or None.

        Opsbot's own jobs always may. Someone who cannot see the incident is told
        only that (`unseen`), by its number: not who holds the right, which would
        name its route and channel. When Slack cannot say who they are, they are
        told that, naming the incident by its number too.
        """
        user_id = requester.slack_user_id
        if user_id is None:
            return None
        seen = self.sees(incident, requester)
        try:
            self.rights.require_incident(
                user_id,
                right=right,
                route_name=incident.route_name,
                channel=incident.channel,
                doing=f"{doing} {_label(incident) if seen else f'#{incident.id}'}",
                minutes=minutes,
                own_channel=incident.slack_channel_id,
                names_route=seen,
            )
        except RightMissing as exc:
            if self.config.route_gone(incident.route_name):
                # Only admins act now: the operator may have renamed the route by mistake.
                log.warning(
                    "incident %s: %s refused to %s: its route %r is no longer in the config",
                    incident.id,
                    right,
                    user_id,
                    incident.route_name,
                    extra={
                        "incident": incident.id,
                        "route": incident.route_name,
                        "slack_user": user_id,
                    },
                )
            # Raised while handling SlackFactsUnavailable: Slack could not say.
            if seen or isinstance(exc.__context__, SlackFactsUnavailable):
                return str(exc)
            return unseen(incident.id, doing)
        return None

    def _from_email(self, requester: Requester) -> str:
        if requester.slack_user_id is None:
            if self.config.oncall.pagerduty_from is None:
                raise NoPagerDutyUser("oncall.pagerduty_from is not configured")
            return self.config.oncall.pagerduty_from
        return self.people.pagerduty_user_for(requester.slack_user_id).email

    def request(
        self,
        *,
        incident_id: int,
        action: str,
        requester: Requester,
        text: str | None = None,
        claim: Callable[[Session, Incident], bool] | None = None,
    ) -> bool:
        """Acknowledge, resolve, escalate or add a note, as `requester`; True if recorded.

        `claim`, when given, runs under the incident's lock once the request is
        not refused, in the transaction that records it: what must happen with
        the request or not at all (a job's due time). False: nothing is done.
        """
        with self.sessions() as db_session:
            incident = incidents.get(db_session, incident_id=incident_id)
        if incident is None:
            missing = f"There is no incident #{incident_id}."
            self.refuse(incident=incident_id, action=action, requester=requester, why=missing)
            return False
        why = self.missing_right(incident, requester, right=RESPOND_RIGHT, doing=DOING[action])
        if why is not None:
            self.refuse(incident=incident, action=action, requester=requester, why=why)
            return False
        # Told only to someone with the right. A call on its way is looked for once,
        # under the lock below: a second click a moment after the first is rare,
        # every click pays for a look.
        label = self.label_for(incident, requester)
        why = self._refusal(incident, action, label=label)
        if why is not None:
            self.refuse(incident=incident, action=action, requester=requester, why=why)
            return False
        from_email = None
        if incident.in_pagerduty and self.people.pagerduty is None:
            self.refuse(incident=incident, action=action, requester=requester, why=NOT_CONFIGURED)
            return False
        if incident.in_pagerduty:
            try:
                from_email = self._from_email(requester)
            except NoPagerDutyUser as exc:
                self.refuse(incident=incident, action=action, requester=requester, why=str(exc))
                return False
            except PagerDutyUnavailable as exc:
                why = (
                    f"opsbot cannot reach PagerDuty right now ({escape(exc)}). "
                    "Try again in a minute."
                )
                self.refuse(incident=incident, action=action, requester=requester, why=why)
                return False
        now = self.clock.now()
        with self.sessions() as db_session:
            locked = incidents.lock(db_session, incident_id=incident_id)
            assert locked is not None
            why = self._refusal(locked, action, label=label) or self._on_its_way(
                db_session, locked, action, label=label
            )
            if why is not None:
                db_session.rollback()
                # By its id: `locked` is expired by the rollback, and reading it again
                # would take SQLite's write lock back while the refusal is recorded.
                self.refuse(incident=incident_id, action=action, requester=requester, why=why)
                return False
            if claim is not None and not claim(db_session, locked):
                db_session.rollback()
                return False
            if action == NOTE and text:
                # Ours at once, whatever PagerDuty makes of it.
                flows.add_note(
                    db_session,
                    incident=locked,
                    text=text,
                    by=requester.display,
                    at=now,
                    now=now,
                    via=requester.where,
                )
            if from_email is not None and _page_stands(db_session, locked, action):
                outbox.pagerduty_rest(
                    db_session,
                    order_key=rest_order_key(locked.id),
                    payload={
                        "incident_id": locked.id,
                        "action": action,
                        "from_email": from_email,
                        "actor": requester.display,
                        "actor_id": requester.slack_user_id,
                        "via": requester.via,
                        "response_url": requester.response_url,
                        "text": text,
                        **(
                            {"episode": episode(db_session, locked)}
                            if action in EPISODE_BOUND
                            else {}
                        ),
                        **(page_asked_for(db_session, locked) if action == ESCALATE else {}),
                        **(
                            {"clicked_at": requester.clicked_at.isoformat()}
                            if requester.clicked_at
                            else {}
                        ),
                    },
                    now=now,
                    priority=requester.priority,
                )
            else:
                self._apply_here(
                    db_session,
                    incident=locked,
                    action=action,
                    requester=requester,
                    text=text,
                    label=label,
                )
            db_session.commit()
        log.info(
            "incident %s: %s asked by %s via %s",
            incident_id,
            action,
            requester.audit_actor,
            requester.via,
            extra={"incident": incident_id, "slack_user": requester.slack_user_id},
        )
        return True

    def _apply_here(
        self,
        db_session: Session,
        *,
        incident: Incident,
        action: str,
        requester: Requester,
        text: str | None,
        label: str,
    ) -> None:
        """An incident PagerDuty has no part in changes in opsbot only; `label` names it."""
        now = self.clock.now()
        by, where = requester.display, requester.where
        with flows.message_updated_once(
            db_session, incident=incident, now=now, clicked_at=requester.clicked_at
        ):
            if action == ACKNOWLEDGE:
                flows.acknowledge(db_session, incident=incident, by=by, at=now, now=now, via=where)
            elif action == RESOLVE:
                flows.resolve(
                    db_session, incident=incident, by=by, at=now, now=now, via=where, note=text
                )
        audit.record(
            db_session,
            at=now,
            actor=requester.audit_actor,
            action=f"incident.{action}",
            target=incident.target,
            outcome="ok",
            detail={"via": requester.via, "pagerduty": False, **({"text": text} if text else {})},
        )
        if requester.via == "command":
            respond(
                db_session,
                requester=requester,
                text=f"{PAST[action].capitalize()} {label}.",
                now=now,
            )

    def silence(self, *, incident_id: int, minutes: int | None, requester: Requester) -> None:
        """Silence an alarm's incident for `minutes` (None: end the silence)."""
        with self.sessions() as db_session:
            seen = incidents.get(db_session, incident_id=incident_id)
        if seen is not None:
            doing = "silence" if minutes else "end the silence of"
            why = self.missing_right(
                seen, requester, right=SILENCE_RIGHT, doing=doing, minutes=minutes
            )
            if why is not None:
                self.refuse(incident=seen, action=SILENCE, requester=requester, why=why)
                return
        now = self.clock.now()
        with self.sessions() as db_session:
            incident = incidents.lock(db_session, incident_id=incident_id)
            if incident is None or incident.source != ALARM:
                db_session.rollback()
                why = "Only an alarm's incident can be silenced."
                self.refuse(incident=incident_id, action=SILENCE, requester=requester, why=why)
                return
            until = now + timedelta(minutes=minutes) if minutes else None
            flows.silence(db_session, incident=incident, until=until, by=requester.display, now=now)
            audit.record(
                db_session,
                at=now,
                actor=requester.audit_actor,
                action="incident.silence",
                target=incident.target,
                outcome="ok",
                detail={"via": requester.via, "minutes": minutes or 0},
            )
            db_session.commit()

    # -- declaring ----------------------------------------------------------------------

    def declare_route(self, name: str | None) -> AlarmRoute:
        """The route a declared incident pages through; IncidentError says why none fits."""
        paging = [r for r in self.config.alarm_routes if r.pagerduty_routing_key_env]
        names = ", ".join(f"`{r.label}`" for r in paging) or "none"
        if name is None:
            name = self.config.oncall.declare_route
        if name is None:
            if not paging:
                raise IncidentError("No alarm route has a PagerDuty routing key to page through.")
            return paging[0]
        route = self.config.route_named(name)
        if route is None or route.pagerduty_routing_key_env is None:
            raise IncidentError(f"No route {code(name)} can page. Routes that can: {names}.")
        return route

    def declare(
        self,
        *,
        summary: str,
        severity: str | None,
        route_name: str | None,
        requester: Requester,
        refusal_raises: bool = False,
    ) -> int | None:
        """Open an incident by hand, post it with its buttons and page through a route's key.

        Its number; None when the requester may not declare there (they are told why).
        `refusal_raises` (a modal, which shows the refusal on its field): the refusal
        is audited and raised as IncidentError instead of being told.
        """
        route = self.declare_route(route_name)
        if requester.slack_user_id is not None:
            try:
                self.rights.require_incident(
                    requester.slack_user_id,
                    right=DECLARE_RIGHT,
                    route_name=route.label,
                    channel=route.channel,
                    doing=f"declare incidents that page through route `{route.label}`",
                )
            except RightMissing as exc:
                self.refuse(
                    incident=f"route:{route.label}",
                    action=DECLARE,
                    requester=replace(requester, response_url=None)
                    if refusal_raises
                    else requester,
                    why=str(exc),
                )
                if refusal_raises:
                    raise IncidentError(str(exc)) from exc
                return None
        now = self.clock.now()
        with self.sessions() as db_session:
            incident = incidents.create(
                db_session,
                now=now,
                source=MANUAL,
                title=summary,
                route_name=route.label,
                channel=route.channel,
                severity=severity or route.severity,
                mention=route.mention,
                routing_key_env=route.pagerduty_routing_key_env,
                remind_after_min=route.remind_after_min,
                escalate_after_min=route.escalate_after_min,
                opened_by=requester.display,
                snapshot={"description": f"Declared from Slack by {requester.display}."},
            )
            incidents.add_event(
                db_session,
                incident=incident,
                kind="declared",
                at=now,
                now=now,
                actor=requester.display,
                text=summary,
            )
            flows.page_trigger(db_session, incident=incident, now=now)
            flows.sync_message(db_session, incident=incident, now=now)
            audit.record(
                db_session,
                at=now,
                actor=requester.audit_actor,
                action="incident.declare",
                target=incident.target,
                outcome="ok",
                detail={"route": route.label, "severity": incident.severity, "summary": summary},
            )
            respond(
                db_session,
                requester=requester,
                text=(
                    f":rotating_light: Declared incident #{incident.id} in "
                    f"{render.channel_ref(route.channel)} "
                    f"and paged PagerDuty through route `{route.label}`."
                ),
                now=now,
            )
            db_session.commit()
            return incident.id


def _page_stands(db_session: Session, incident: Incident, action: str) -> bool:
    """Whether PagerDuty has an open incident for `action` to act on.

    An alarm that fired again under a silence or a maintenance window is open here
    and unpaged, its last page resolved in PagerDuty (by opsbot's resolve, or by
    someone in PagerDuty's app): acknowledging or resolving it there is refused
    ("Incident Already Resolved"), so the person's click changes it in opsbot only,
    as for an incident PagerDuty has no part in.
    """
    if action not in (ACKNOWLEDGE, RESOLVE):
        return True
    if flows.page_resolved_in_pagerduty(incident):
        return False
    if incident.pagerduty_status in PAGE_OPEN:
        return True
    last = outbox.last_pagerduty_event(db_session, dedup_key=incident.dedup_key)
    return not (
        last is not None and last.payload.get("action") == "resolve" and last.status == SENT
    )
