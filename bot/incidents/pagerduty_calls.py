"""Sending incident actions to PagerDuty's REST API, and recording what it answered.

An outbox sender for `pagerduty.rest` deliveries. It finds PagerDuty's
incident (stored, or by our dedup key), makes the call with the `From` of the
person who asked, and records the answer (the incident's new state, the
timeline, the audit entry, the Slack message update, the answer to the person)
in one transaction with the delivery's completion, so a crash cannot apply
it twice. Transient failures are retried a few times; a refusal is shown in
the incident's thread and to the person.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from bot.audit import service as audit
from bot.clock import Clock, parse_time
from bot.incidents import flows, render
from bot.incidents import service as incidents
from bot.incidents.actions import (
    ACKNOWLEDGE,
    ESCALATE,
    NOTE,
    PAST,
    RESOLVE,
    Requester,
    asked_on,
    episode,
    respond,
    rest_order_key,
)
from bot.incidents.models import Incident
from bot.observability.metrics import Metrics
from bot.outbox import service as outbox
from bot.outbox.models import CANCELLED, DEAD, PAGERDUTY_REST, PENDING, SENT
from bot.outbox.pacing import Pacer
from bot.outbox.results import Dead, Job, Result, Retry, Sent
from bot.pagerduty.errors import PagerDutyRefused, PagerDutyUnavailable
from bot.pagerduty.levels import current_level
from bot.pagerduty.rest import PagerDutyRest
from bot.pagerduty.webhooks import IncidentData, parse_incident
from bot.people.directory import NOT_CONFIGURED, PeopleDirectory
from bot.slack_text import escape

log = logging.getLogger(__name__)

MAX_ATTEMPTS = 5  # a person is waiting: give up after about 15 s of backoff
# An escalation opsbot's own job asked for has nobody waiting on its answer, and
# on-call has not acknowledged: it keeps trying through about an hour of
# PagerDuty out of reach (the backoff grows to `delivery.max_backoff_s`).
UNATTENDED_ATTEMPTS = 24
TRIGGER_SETTLE = timedelta(minutes=2)  # Events API incidents appear a little after the 202
NOTE_CLOCK_SKEW = timedelta(minutes=1)  # PagerDuty's clock against ours, when looking for a note
# opsbot's escalation steps aside for a person's acknowledge or resolve queued
# behind it, and asks again this long after: by then that call has landed (the
# escalation is not wanted) or given up (it is).
STEP_ASIDE = timedelta(minutes=2)
# Why an escalation asked for an earlier page is withdrawn (`_page_replaced`).
PAGED_ANEW = "paged anew"
# The worker takes one token of the REST token's lane for a delivery: its first
# request. Each request after it (an escalation reads the incident, then changes
# it; an incident not known yet is looked up first; a note tried again is looked
# for first) takes a token too, waiting at most this long: at the default pace
# (960 a minute) the next token is 63 ms away. A longer wait (the lane drained
# by a burst, or paused by a 429) sends the delivery back to wait in the outbox.
EXTRA_REQUEST_WAIT_S = 1.0
# Who is on call on an incident's policy is asked for this window from now.
ONCALL_WINDOW = timedelta(seconds=1)
# In an escalation's payload: the level it assumed PagerDuty's incident was at, when
# PagerDuty's answers did not tell (`_next_level`).
ASSUMED = "level_assumed_after"
# A person's call made while its page's trigger still waits in the outbox (a 429 pause
# on its routing key, an Events API outage, the routing key's variable not set) waits
# for it, looking again this often. Those looks are kept in its payload under
# PAGE_WAITS and do not count toward its attempts. It waits until the trigger is sent
# (then it is made), or dead or withdrawn (then PagerDuty has no incident to act on),
# or at most PAGE_WAIT from when it was asked: then it gives up and says why.
PAGE_POLL_S = 5.0
PAGE_WAITS = "page_waits"
PAGE_WAIT = timedelta(hours=1)
VERBS = {
    ACKNOWLEDGE: "acknowledge",
    RESOLVE: "resolve",
    ESCALATE: "escalate",
    NOTE: "add a note to",
}


class _NotYet(Exception):
    """The page has not (visibly) reached PagerDuty yet: ask again shortly."""


class _Paced(Exception):
    """A request after a delivery's first found no token in its lane soon enough."""

    def __init__(self, lane: str, wait_s: float) -> None:
        super().__init__(f"the {lane} lane's pace: the next request waits {wait_s:.2f} s")
        self.lane = lane
        self.wait_s = wait_s


class _Requests:
    """One send's requests against its lane: the first paid for by the worker's claim,
    each one after it by a token of its own, so the lane's rate counts requests."""

    def __init__(self, pacer: Pacer | None, lane: str) -> None:
        self._pacer = pacer
        self._lane = lane
        self._made = 0

    def next(self) -> None:
        """Before a request: take its token unless it is the first, waiting for it up
        to EXTRA_REQUEST_WAIT_S; `_Paced` when it is further away than that."""
        self._made += 1
        pacer = self._pacer
        if self._made == 1 or pacer is None:
            return
        deadline = time.monotonic() + EXTRA_REQUEST_WAIT_S
        while not pacer.take(self._lane):
            wait_s = pacer.wait_s(self._lane)
            if time.monotonic() + wait_s > deadline:
                raise _Paced(self._lane, wait_s)
            time.sleep(max(wait_s, 0.001))


class _Overtaken(Exception):
    """opsbot's own escalation is no longer wanted: PagerDuty shows the incident
    acknowledged or resolved (its webhook not here yet)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclasses.dataclass(frozen=True)
class _PendingPage:
    """The page's trigger, still waiting in the outbox; `tried`: an attempt was made or
    a worker holds it (PagerDuty may have it); `error`: why its last attempt failed."""

    delivery: int
    tried: bool
    error: str | None


@dataclasses.dataclass(frozen=True)
class _Queued:
    """A person's acknowledge or resolve waiting behind opsbot's escalation, not yet done."""

    action: str
    actor: str


def _unattended_escalation(payload: dict[str, Any]) -> bool:
    """An escalation opsbot's job asked for (not a person's click)."""
    return payload.get("action") == ESCALATE and payload.get("via") == "job"


class PagerDutyActionSender:
    def __init__(
        self,
        *,
        sessions: sessionmaker[Session],
        pagerduty: PagerDutyRest | None,
        people: PeopleDirectory,
        clock: Clock,
        metrics: Metrics,
        pacer: Pacer | None = None,
    ) -> None:
        """`pacer`: the outbox worker's, whose lanes a send's requests after its first
        count against too (None: only the delivery, as the worker paced it)."""
        self.sessions = sessions
        self.pagerduty = pagerduty
        self.people = people
        self.clock = clock
        self.metrics = metrics
        self.pacer = pacer

    def send(self, job: Job) -> Result:
        payload = job.payload
        with self.sessions() as db_session:
            incident = incidents.get(db_session, incident_id=int(payload["incident_id"]))
            if incident is None:
                return Dead(error="the incident no longer exists")
            passed = _episode_passed(db_session, incident, payload)
            replaced = _page_replaced(db_session, incident, payload)
            known_id, dedup_key = incident.pagerduty_incident_id, incident.dedup_key
            known_level = incident.escalation_level
            service_id = incident.pagerduty_service_id
            left_behind = set(incident.pagerduty_superseded_ids or ())
            overtaken, queued = None, None
            # A person's call has nothing to act on before its page reaches PagerDuty.
            waits_for = (
                _pending_page(db_session, dedup_key)
                if known_id is None and not _unattended_escalation(payload)
                else None
            )
            # A resolve queued behind this call withdraws a page never tried: this call
            # gives way, or it would hold that resolve back until the page went out.
            resolve_behind = None
            if waits_for is not None and not waits_for.tried and payload["action"] != RESOLVE:
                behind = _queued_behind(db_session, incident)
                resolve_behind = behind if behind is not None and behind.action == RESOLVE else None
            # Read again on every attempt: an outage may have held it past an acknowledge.
            # Not once an attempt may have escalated (its level kept): PagerDuty is read first.
            if _unattended_escalation(payload) and payload.get("level") is None:
                overtaken = _overtaken(incident)
                queued = None if overtaken else _queued_behind(db_session, incident)
        if replaced:
            # Asked for a page a new one replaced: it would escalate the new page
            # moments after it opened, before anyone had a chance to answer it.
            return self._withdrawn(job, PAGED_ANEW, pagerduty_id=payload.get("pagerduty_incident"))
        if passed:
            return self._obsolete(job)
        if overtaken is not None:
            return self._withdrawn(job, overtaken)
        if queued is not None:
            return self._stepped_aside(job, queued)
        if resolve_behind is not None:
            return self._gave_way(job, resolve_behind)
        if waits_for is not None:
            if payload.get("action") == RESOLVE and not waits_for.tried:
                withdrawn = self._page_withdrawn(job, dedup_key)
                if withdrawn is not None:
                    return withdrawn
            return self._wait_for_page(job, waits_for)
        requests = _Requests(self.pacer, job.paced_by)
        try:
            if self.pagerduty is None:
                raise PagerDutyRefused(NOT_CONFIGURED, status=0)
            pagerduty_id = known_id or self._find(
                self.pagerduty, dedup_key, left_behind, service_id=service_id, requests=requests
            )
            data, note_id, changed_at = self._call(
                self.pagerduty, pagerduty_id, job, requests, known_level=known_level
            )
        except _Overtaken as exc:
            return self._withdrawn(job, exc.reason, pagerduty_id=pagerduty_id)
        except _Paced as exc:
            # Only reads were made: the change they lead to was not asked for yet.
            log.info(
                "delivery %s: PagerDuty %s of incident %s waits %.2f s for its lane",
                job.id,
                payload.get("action"),
                payload.get("incident_id"),
                exc.wait_s,
                extra={
                    "delivery": job.id,
                    "incident": payload.get("incident_id"),
                    "lane": exc.lane,
                },
            )
            return Retry(error=str(exc), after_s=exc.wait_s)
        except _NotYet as exc:
            if _tried(job) < MAX_ATTEMPTS * 4:
                return Retry(error=str(exc), after_s=2.0)
            return self._failed(job, "PagerDuty has no incident for this page")
        except PagerDutyUnavailable as exc:
            most = UNATTENDED_ATTEMPTS if payload.get("via") == "job" else MAX_ATTEMPTS
            tried = _tried(job)
            if tried < most and exc.retry_after_s is not None:
                # A 429: the REST token's lane waits as long as PagerDuty asked.
                wait_s = exc.retry_after_s
                return Retry(error=str(exc), after_s=wait_s, pause_target_s=wait_s)
            if tried < most:
                # A note that may have reached PagerDuty may still land late: the next
                # attempt waits out the lease and looks for it before posting again.
                # The other calls are safe to repeat (see `_call`).
                ambiguous = exc.may_have_landed and payload["action"] == NOTE
                return Retry(error=str(exc), ambiguous=ambiguous)
            return self._failed(job, f"PagerDuty did not answer ({exc})")
        except PagerDutyRefused as exc:
            actor_id = payload.get("actor_id")
            if actor_id and "Requester User Not Found" in str(exc):
                self.people.forget_lookup(str(actor_id))  # the next click looks them up again
            return self._failed(job, f"PagerDuty refused: {exc}")
        assignees = self.people.display_all(data.assignees) if data is not None else None
        return self._succeeded(job, pagerduty_id, data, assignees, note_id, changed_at)

    def _find(
        self,
        rest: PagerDutyRest,
        dedup_key: str,
        left_behind: set[str],
        *,
        service_id: str | None,
        requests: _Requests,
    ) -> str:
        # Only our page's service, once known: another service's incident may carry our key.
        requests.next()
        found = rest.find_incident_by_key(dedup_key, service_id=service_id)
        # Until PagerDuty opens a re-page's incident, the newest with our key is the
        # one the re-page left behind: not the one to act on.
        if found is not None and str(found["id"]) not in left_behind:
            return str(found["id"])
        with self.sessions() as db_session:
            last = outbox.last_pagerduty_event(db_session, dedup_key=dedup_key)
            recent = self.clock.now() - TRIGGER_SETTLE
            just_paged = last is not None and (
                last.status == PENDING or (last.sent_at is not None and last.sent_at > recent)
            )
            if last is not None and just_paged and last.payload.get("action") == "trigger":
                raise _NotYet("the page has not reached PagerDuty yet")
        raise PagerDutyRefused("it has no incident for this page", status=404)

    def _call(
        self,
        rest: PagerDutyRest,
        pagerduty_id: str,
        job: Job,
        requests: _Requests,
        *,
        known_level: int | None = None,
    ) -> tuple[IncidentData | None, str | None, datetime | None]:
        """Make the job's call: the incident as PagerDuty answered, the note's id, and
        when PagerDuty says the incident last changed (`_changed_at`). Each request is
        preceded by `requests.next()`, and only reads come before the one that changes
        the incident. `known_level`: the escalation level opsbot last knew of.

        An escalation asks for the level after the one PagerDuty's incident is at
        (`_level_now`: its GET, then GET /oncalls of its policy, then the PUT: three
        requests); a retry whose level is kept finds it done when PagerDuty is there."""
        payload = job.payload
        action, sender = payload["action"], str(payload["from_email"])
        if action == ACKNOWLEDGE:
            requests.next()
            acknowledged = rest.update_incident(
                pagerduty_id, from_email=sender, change={"status": "acknowledged"}
            )
            return parse_incident(acknowledged), None, _changed_at(acknowledged)
        if action == RESOLVE:
            change: dict[str, Any] = {"status": "resolved"}
            if payload.get("text"):
                change["resolution"] = payload["text"]
            requests.next()
            resolved = rest.update_incident(pagerduty_id, from_email=sender, change=change)
            return parse_incident(resolved), None, _changed_at(resolved)
        if action == ESCALATE:
            kept = payload.get("level")
            requests.next()
            read = rest.get_incident(pagerduty_id)
            current = parse_incident(read)
            if kept is not None:
                now_at = self._level_now(rest, current, job, requests, known=known_level)
                if now_at is not None and now_at >= int(kept):
                    # The attempt before landed, or PagerDuty escalated by itself since:
                    # at that level or above, there is nothing left to ask.
                    self._found_done(job, pagerduty_id)
                    current = dataclasses.replace(current, escalation_level=now_at)
                    return current, None, _changed_at(read)
            if _unattended_escalation(payload) and current.status in ("acknowledged", "resolved"):
                raise _Overtaken(current.status)
            if kept is None:
                now_at = self._level_now(rest, current, job, requests, known=known_level)
                level = self._next_level(now_at, known_level, job)
            else:
                level = int(kept)
            # The change's token before its level is kept: sent back for it, the next
            # attempt reads the incident again, as one that kept no level does.
            requests.next()
            answer = rest.update_incident(
                pagerduty_id, from_email=sender, change={"escalation_level": level}
            )
            # The answer does not say the level either: it is the one asked for.
            escalated = dataclasses.replace(parse_incident(answer), escalation_level=level)
            return escalated, None, _changed_at(answer)
        if action == NOTE:
            content = str(payload["text"])
            if _tried(job) > 1:
                # The attempt before may have landed, its answer lost: look first.
                since = job.created_at - NOTE_CLOCK_SKEW if job.created_at else None
                requests.next()
                found = rest.find_note(pagerduty_id, content=content, since=since)
                if found is not None:
                    self._found_done(job, pagerduty_id)
                    return None, found, None
            requests.next()
            note = rest.add_note(pagerduty_id, from_email=sender, content=content)
            return None, str(note.get("id") or "") or None, None
        raise ValueError(f"unknown action {action!r}")

    def _found_done(self, job: Job, pagerduty_id: str) -> None:
        """An attempt before this one landed though its answer was lost: not asked again."""
        action = str(job.payload["action"])
        self.metrics.pagerduty_found_done.labels(action).inc()
        log.info(
            "incident %s: %s found already done in PagerDuty on attempt %d; not asked again",
            job.payload["incident_id"],
            action,
            job.attempts,
            extra={
                "incident": job.payload["incident_id"],
                "delivery": job.id,
                "pagerduty_incident": pagerduty_id,
            },
        )

    def _level_now(
        self,
        rest: PagerDutyRest,
        current: IncidentData,
        job: Job,
        requests: _Requests,
        *,
        known: int | None,
    ) -> int | None:
        """The level PagerDuty's incident is at (`levels.current_level`: its assignees
        against who is on call on its policy now); None when that does not tell."""
        policy = current.escalation_policy
        if policy is None or not current.assignees:
            return None
        requests.next()
        now = self.clock.now()
        try:
            oncalls = rest.oncalls(
                since=now, until=now + ONCALL_WINDOW, escalation_policy_ids=[policy.id]
            )
        except PagerDutyRefused as exc:
            # The token may not read on-calls: the escalation goes on, its level unknown.
            log.warning(
                "incident %s: PagerDuty refused the on-calls of policy %s (%s); the level "
                "of %s is unknown",
                job.payload["incident_id"],
                policy.id,
                exc,
                current.id,
                extra={
                    "incident": job.payload["incident_id"],
                    "delivery": job.id,
                    "pagerduty_incident": current.id,
                },
            )
            return None
        return current_level(current, oncalls, known=known)

    def _next_level(self, now_at: int | None, known: int | None, job: Job) -> int:
        """The level above PagerDuty's (`now_at`), kept on the delivery before it is asked for.

        An escalation whose answer was lost (a timeout, a 5xx, a crash) may have
        happened: the next attempt asks for the same level, not the one above it.
        When PagerDuty's level cannot be told, the level above the last one opsbot
        knew of (`known`; 1, where every page starts, when none) is asked for, and
        the delivery keeps that it was assumed, for the thread and the person.
        """
        values: dict[str, Any]
        if now_at is not None:
            values = {"level": now_at + 1}
        else:
            assumed = known or 1
            values = {"level": assumed + 1, ASSUMED: assumed}
            self.metrics.pagerduty_level_unknown.labels("call").inc()
            log.warning(
                "incident %s: PagerDuty does not tell which level its incident is at; "
                "asking for level %d, after level %d, the last opsbot knew of",
                job.payload["incident_id"],
                assumed + 1,
                assumed,
                extra={"incident": job.payload["incident_id"], "delivery": job.id},
            )
        with self.sessions() as db_session:
            outbox.amend_payload(
                db_session, delivery_id=job.id, values=values, now=self.clock.now()
            )
            db_session.commit()
        # What was kept is what this attempt records, as a later attempt would.
        job.payload.update(values)
        return int(values["level"])

    def _page_withdrawn(self, job: Job, dedup_key: str) -> Result | None:
        """A resolve asked before its page's trigger was ever tried: the trigger is
        withdrawn, so nobody is paged for an incident already resolved, and the incident
        is resolved in opsbot only, the thread told. None when the trigger could not be
        withdrawn (a worker took it meanwhile): the resolve waits for it instead."""
        payload = job.payload
        requester = self._requester(payload)
        now = self.clock.now()
        with self.sessions() as db_session:
            incident = incidents.lock(db_session, incident_id=int(payload["incident_id"]))
            assert incident is not None
            if _episode_passed(db_session, incident, payload):
                return self._record_obsolete(db_session, incident, job, pagerduty_id=None)
            if not outbox.cancel_pagerduty_event(
                db_session, dedup_key=dedup_key, action="trigger", now=now
            ):
                db_session.rollback()
                return None
            # No page stands: a later OK sends no resolve, and a re-ALARM pages anew.
            incident.paged = False
            with flows.message_updated_once(
                db_session, incident=incident, now=now, clicked_at=requester.clicked_at
            ):
                flows.resolve(
                    db_session,
                    incident=incident,
                    by=requester.display,
                    at=now,
                    now=now,
                    via=requester.where,
                    note=payload.get("text"),
                )
            flows.thread_text(
                db_session,
                incident=incident,
                text=(
                    f":information_source: {requester.display} resolved this incident before "
                    f"its page reached PagerDuty: the page is withdrawn, nobody is paged, and "
                    f"it is resolved in opsbot only."
                ),
                now=now,
                priority=requester.priority,
            )
            audit.record(
                db_session,
                at=now,
                actor=requester.audit_actor,
                action=f"incident.{RESOLVE}",
                target=incident.target,
                outcome="ok",
                detail={
                    "via": requester.via,
                    "pagerduty": "page withdrawn",
                    "from": payload["from_email"],
                    **({"text": payload["text"]} if payload.get("text") else {}),
                },
            )
            respond(
                db_session,
                requester=requester,
                text=(
                    f"Resolved #{incident.id}. Its page had not reached PagerDuty yet: it is "
                    f"withdrawn, and nobody is paged."
                ),
                now=now,
            )
            if not outbox.complete(
                db_session,
                delivery_id=job.id,
                status=CANCELLED,
                error="page withdrawn before it reached PagerDuty: resolved in opsbot only",
                now=now,
            ):
                return self._recorded_elsewhere(db_session, job)
            db_session.commit()
        log.info(
            "incident %s: resolved by %s before its page reached PagerDuty; page withdrawn",
            payload["incident_id"],
            requester.audit_actor,
            extra={
                "incident": payload["incident_id"],
                "delivery": job.id,
                "dedup_key": dedup_key,
                "slack_user": requester.slack_user_id,
            },
        )
        return Sent(recorded=True)

    def _gave_way(self, job: Job, resolve: _Queued) -> Result:
        """A call waiting for a page never tried, with a resolve queued behind it: not
        made, so that the resolve withdraws the page (`_page_withdrawn`)."""
        payload = job.payload
        action, requester = str(payload["action"]), self._requester(payload)
        verb = VERBS.get(action, action)
        now = self.clock.now()
        with self.sessions() as db_session:
            incident = incidents.lock(db_session, incident_id=int(payload["incident_id"]))
            assert incident is not None
            audit.record(
                db_session,
                at=now,
                actor=requester.audit_actor,
                action=f"incident.{action}",
                target=incident.target,
                outcome="cancelled",
                detail={
                    "via": requester.via,
                    "reason": "a resolve goes instead",
                    "by": resolve.actor,
                    "from": payload["from_email"],
                },
            )
            respond(
                db_session,
                requester=requester,
                text=(
                    f":information_source: Not sent to PagerDuty: your {verb} of #{incident.id} "
                    f"waited for its page, and {resolve.actor}'s resolve goes instead."
                ),
                now=now,
            )
            if not outbox.complete(
                db_session,
                delivery_id=job.id,
                status=CANCELLED,
                error=f"gave way: a resolve by {resolve.actor} goes instead",
                now=now,
            ):
                return self._recorded_elsewhere(db_session, job)
            db_session.commit()
        log.info(
            "incident %s: %s by %s waiting for its page gives way to a queued resolve",
            payload["incident_id"],
            action,
            requester.audit_actor,
            extra={"incident": payload["incident_id"], "delivery": job.id},
        )
        return Sent(recorded=True)

    def _wait_for_page(self, job: Job, page: _PendingPage) -> Result:
        """Ask again shortly, without using up an attempt: the page's trigger is still
        in the outbox. The person hears once that their call waits for it; after
        PAGE_WAIT it gives up, saying why."""
        payload = job.payload
        action = str(payload["action"])
        verb = VERBS.get(action, action)
        why = f"its page has not reached PagerDuty yet ({page.error or 'queued'})"
        now = self.clock.now()
        if job.created_at is not None and now - job.created_at > PAGE_WAIT:
            log.warning(
                "incident %s: %s gave up waiting for its page (delivery %s) to reach PagerDuty",
                payload["incident_id"],
                action,
                page.delivery,
                extra={
                    "incident": payload["incident_id"],
                    "delivery": job.id,
                    "trigger": page.delivery,
                },
            )
            hours = PAGE_WAIT.total_seconds() / 3600
            return self._failed(
                job, f"{why} after {hours:g} h; do it in PagerDuty once it is there"
            )
        waits = int(payload.get(PAGE_WAITS) or 0) + 1
        values = {PAGE_WAITS: waits}
        with self.sessions() as db_session:
            outbox.amend_payload(db_session, delivery_id=job.id, values=values, now=now)
            if waits == 1:
                respond(
                    db_session,
                    requester=self._requester(payload),
                    text=(
                        f":hourglass: Your {verb} of #{payload['incident_id']} waits: "
                        f"{escape(why)}. It is made once the page is there."
                    ),
                    now=now,
                )
            db_session.commit()
        job.payload.update(values)
        if waits == 1:
            log.info(
                "incident %s: %s waits for its page (delivery %s) to reach PagerDuty",
                payload["incident_id"],
                action,
                page.delivery,
                extra={
                    "incident": payload["incident_id"],
                    "delivery": job.id,
                    "trigger": page.delivery,
                },
            )
        return Retry(error=f"waiting: {why}", after_s=PAGE_POLL_S, waiting=True)

    def _withdrawn(self, job: Job, reason: str, *, pagerduty_id: str | None = None) -> Result:
        """An escalation overtaken while it waited: not sent, and the thread told.

        opsbot's own (acknowledged, resolved or silenced meanwhile), or anyone's asked
        for a page a new one replaced (PAGED_ANEW): a person hears it too.
        """
        now = self.clock.now()
        incident_id = job.payload["incident_id"]
        requester = self._requester(job.payload)
        with self.sessions() as db_session:
            incident = incidents.lock(db_session, incident_id=int(incident_id))
            assert incident is not None
            incidents.add_event(
                db_session,
                incident=incident,
                kind="escalation_withdrawn",
                at=now,
                now=now,
                actor=requester.display,
                text=f"{reason} meanwhile",
            )
            flows.thread_text(
                db_session,
                incident=incident,
                text=f":information_source: Not escalated after all: {reason} meanwhile.",
                now=now,
                priority=requester.priority,
            )
            audit.record(
                db_session,
                at=now,
                actor=requester.audit_actor,
                action=f"incident.{ESCALATE}",
                target=incident.target,
                outcome="cancelled",
                detail={"via": requester.via, "reason": reason, "pagerduty_incident": pagerduty_id},
            )
            respond(
                db_session,
                requester=requester,
                text=(
                    f":information_source: Not escalated: #{incident.id} was {reason} "
                    f"meanwhile. Escalate again if the new page should be."
                ),
                now=now,
            )
            if not outbox.complete(
                db_session,
                delivery_id=job.id,
                status=CANCELLED,
                error=f"withdrawn: {reason} meanwhile",
                now=now,
            ):
                return self._recorded_elsewhere(db_session, job)
            db_session.commit()
        self.metrics.escalations_withdrawn.labels(reason).inc()
        log.info(
            "incident %s: %s's escalation withdrawn on attempt %d, %s meanwhile; "
            "PagerDuty not asked",
            incident_id,
            requester.audit_actor,
            job.attempts,
            reason,
            extra={
                "incident": incident_id,
                "delivery": job.id,
                "slack_user": requester.slack_user_id,
                "pagerduty_incident": pagerduty_id,
            },
        )
        return Sent(recorded=True)

    def _stepped_aside(self, job: Job, queued: _Queued) -> Result:
        """A person's call waits behind opsbot's escalation: it goes first, and the
        escalation is due again shortly (its job finds the incident acknowledged or
        resolved if that call landed, and escalates if it gave up)."""
        now = self.clock.now()
        due = now + STEP_ASIDE
        incident_id = job.payload["incident_id"]
        verb = VERBS.get(queued.action, queued.action)
        with self.sessions() as db_session:
            incident = incidents.lock(db_session, incident_id=int(incident_id))
            assert incident is not None
            done = _overtaken(incident)  # that call may have landed since it was seen
            if done is None:
                flows.rearm_escalation(db_session, incident=incident, at=due)
                incidents.add_event(
                    db_session,
                    incident=incident,
                    kind="escalation_deferred",
                    at=now,
                    now=now,
                    actor="opsbot",
                    text=f"a queued {verb} goes first",
                )
                flows.thread_text(
                    db_session,
                    incident=incident,
                    text=(
                        f":hourglass: Escalation held back: waiting for {queued.actor}'s {verb} "
                        f"first. Unless it lands, escalating at {render.hhmm(due)}."
                    ),
                    now=now,
                )
                audit.record(
                    db_session,
                    at=now,
                    actor="opsbot",
                    action=f"incident.{ESCALATE}",
                    target=incident.target,
                    outcome="deferred",
                    detail={
                        "via": "job",
                        "waiting_for": queued.action,
                        "by": queued.actor,
                        "until": due.isoformat(),
                    },
                )
                if not outbox.complete(
                    db_session,
                    delivery_id=job.id,
                    status=CANCELLED,
                    error=f"deferred: {queued.action} by {queued.actor} goes first",
                    now=now,
                ):
                    return self._recorded_elsewhere(db_session, job)
                db_session.commit()
        if done is not None:
            return self._withdrawn(job, done)
        self.metrics.escalations_withdrawn.labels("deferred").inc()
        log.info(
            "incident %s: opsbot's escalation steps aside on attempt %d for a queued %s; "
            "due again at %s",
            incident_id,
            job.attempts,
            queued.action,
            due.isoformat(),
            extra={"incident": incident_id, "delivery": job.id},
        )
        return Sent(recorded=True)

    def _requester(self, payload: dict[str, Any]) -> Requester:
        clicked_at = payload.get("clicked_at")
        return Requester(
            slack_user_id=payload.get("actor_id"),
            via=str(payload.get("via") or "button"),
            response_url=payload.get("response_url"),
            clicked_at=datetime.fromisoformat(clicked_at) if isinstance(clicked_at, str) else None,
        )

    def _succeeded(
        self,
        job: Job,
        pagerduty_id: str,
        data: IncidentData | None,
        assignees: list[str] | None,
        note_id: str | None,
        changed_at: datetime | None,
    ) -> Result:
        """Record what PagerDuty answered. `changed_at`: when it says the incident last
        changed (None: not said, so now): a webhook of a change before it, arriving
        after, is late (`pagerduty_sync`), and is kept in the timeline only."""
        payload = job.payload
        action, requester = str(payload["action"]), self._requester(payload)
        by, where = requester.display, requester.where
        assumed = payload.get(ASSUMED) if action == ESCALATE else None
        now = self.clock.now()
        with self.sessions() as db_session:
            incident = incidents.lock(db_session, incident_id=int(payload["incident_id"]))
            assert incident is not None
            if _episode_passed(db_session, incident, payload):
                # It reopened while the call was on its way: what PagerDuty answered is
                # not this episode's to record.
                return self._record_obsolete(db_session, incident, job, pagerduty_id=pagerduty_id)
            incident.pagerduty_incident_id = pagerduty_id
            with flows.message_updated_once(
                db_session,
                incident=incident,
                now=now,
                clicked_at=requester.clicked_at,
                always=True,  # the PagerDuty id and fields it now shows
            ):
                if action == ACKNOWLEDGE:
                    flows.acknowledge(
                        db_session, incident=incident, by=by, at=now, now=now, via=where
                    )
                elif action == RESOLVE:
                    flows.resolve(
                        db_session,
                        incident=incident,
                        by=by,
                        at=now,
                        now=now,
                        via=where,
                        note=payload.get("text"),
                    )
                elif action == ESCALATE:
                    flows.escalated(
                        db_session,
                        incident=incident,
                        level=data.escalation_level if data else None,
                        assignees=assignees or [],
                        by=by,
                        at=now,
                        now=now,
                        via=where,
                    )
                elif action == NOTE:
                    flows.add_note(
                        db_session,
                        incident=incident,
                        text=str(payload["text"]),
                        by=by,
                        at=now,
                        now=now,
                        via=where,
                        pagerduty_note_id=note_id,
                    )
                # An escalation answered once the incident is resolved here (in PagerDuty's
                # app, its webhook first) shows PagerDuty from before that resolve.
                stale = action == ESCALATE and not incident.is_open
                # An answer slower than a webhook of a later change (an ack answered
                # after PagerDuty's resolve came in) shows PagerDuty as it was before it.
                synced = incident.pagerduty_synced_at
                stale = stale or (
                    changed_at is not None and synced is not None and changed_at < synced
                )
                if data is not None and not stale:  # after the change, which compares
                    flows.update_from_pagerduty(incident, data=data, assignees=assignees)
                    # What the answer shows is applied: a webhook of an older change,
                    # arriving after it, must not undo it.
                    synced = incident.pagerduty_synced_at
                    answered = changed_at or now
                    incident.pagerduty_synced_at = max(synced, answered) if synced else answered
            audit.record(
                db_session,
                at=now,
                actor=requester.audit_actor,
                action=f"incident.{action}",
                target=incident.target,
                outcome="ok",
                detail={
                    "via": requester.via,
                    "pagerduty_incident": pagerduty_id,
                    "from": payload["from_email"],
                    **({"text": payload["text"]} if payload.get("text") else {}),
                    **({"level": incident.escalation_level} if action == ESCALATE else {}),
                    **({ASSUMED: assumed} if assumed is not None else {}),
                },
            )
            if assumed is not None:
                self._tell_assumed(db_session, incident, job, data, assumed)
            elif requester.via == "command":
                respond(
                    db_session,
                    requester=requester,
                    text=f"{PAST[action].capitalize()} #{incident.id} in PagerDuty.",
                    now=now,
                )
            if not outbox.complete(
                db_session, delivery_id=job.id, status=SENT, error=None, now=now
            ):
                return self._recorded_elsewhere(db_session, job)
            db_session.commit()
        log.info(
            "incident %s: %s done in PagerDuty for %s",
            payload["incident_id"],
            action,
            requester.audit_actor,
            extra={
                "incident": payload["incident_id"],
                "delivery": job.id,
                "slack_user": requester.slack_user_id,
            },
        )
        return Sent(recorded=True)

    def _tell_assumed(
        self,
        db_session: Session,
        incident: Incident,
        job: Job,
        data: IncidentData | None,
        assumed: int,
    ) -> None:
        """Say in the thread, and to the person, that the level escalated to was worked
        out from opsbot's own record, not from PagerDuty's: it may not be one above."""
        requester = self._requester(job.payload)
        level = data.escalation_level if data is not None else job.payload.get("level")
        now = self.clock.now()
        flows.thread_text(
            db_session,
            incident=incident,
            text=(
                f":warning: PagerDuty does not say which escalation level this incident was "
                f"at (none of its assignees is on call on its escalation policy now): "
                f"{requester.display} escalated it to level {level}, the one after level "
                f"{assumed}, the last opsbot knew of. If PagerDuty had escalated it further "
                f"by itself, this paged an earlier level again: check it in PagerDuty."
            ),
            now=now,
            priority=requester.priority,
        )
        respond(
            db_session,
            requester=requester,
            text=(
                f":warning: Escalated #{incident.id} to level {level} in PagerDuty, assuming "
                f"it was at level {assumed}: PagerDuty does not say which level it was at. "
                f"Check the incident in PagerDuty."
            ),
            now=now,
        )

    def _obsolete(self, job: Job) -> Result:
        """A person's acknowledge or resolve asked before the incident reopened: not sent."""
        with self.sessions() as db_session:
            incident = incidents.lock(db_session, incident_id=int(job.payload["incident_id"]))
            assert incident is not None
            return self._record_obsolete(db_session, incident, job, pagerduty_id=None)

    def _record_obsolete(
        self, db_session: Session, incident: Incident, job: Job, *, pagerduty_id: str | None
    ) -> Result:
        """Close the call without applying it to the incident's current episode, and tell
        its person in the thread; `pagerduty_id`: the incident PagerDuty changed, when
        the call went out before the reopen was seen (None: PagerDuty was not asked)."""
        payload = job.payload
        action, requester = str(payload["action"]), self._requester(payload)
        verb, past = VERBS.get(action, action), PAST.get(action, action)
        asked, current = asked_on(payload), episode(db_session, incident)
        now = self.clock.now()
        if pagerduty_id is None:
            told = (
                f":information_source: {requester.display} asked to {verb} this incident "
                f"before it reopened: that was for the episode that ended, so it is not "
                f"applied to this one. Ask again if this one should be {past} too."
            )
            answer = (
                f":information_source: Not {past}: #{incident.id} reopened before PagerDuty "
                f"took your {verb}. Ask again if it should be {past} now."
            )
        else:
            told = (
                f":warning: {requester.display} asked to {verb} this incident before it "
                f"reopened, and PagerDuty took it as it reopened: it is not applied here. "
                f"Check the incident in PagerDuty, and ask again if this one should be "
                f"{past} too."
            )
            answer = (
                f":warning: #{incident.id} reopened as PagerDuty took your {verb}: it is not "
                f"applied here. Check the incident in PagerDuty."
            )
        incidents.add_event(
            db_session,
            incident=incident,
            kind="earlier_episode",
            at=now,
            now=now,
            actor=requester.display,
            text=f"{verb}, not applied",
        )
        flows.thread_text(
            db_session, incident=incident, text=told, now=now, priority=requester.priority
        )
        audit.record(
            db_session,
            at=now,
            actor=requester.audit_actor,
            action=f"incident.{action}",
            target=incident.target,
            outcome="obsolete",
            detail={
                "via": requester.via,
                "from": payload["from_email"],
                "delivery": job.id,
                "asked_on_episode": asked,
                "episode": current,
                "pagerduty_incident": pagerduty_id,
            },
        )
        respond(db_session, requester=requester, text=answer, now=now)
        error = f"obsolete: asked on episode {asked}, the incident is on episode {current}"
        if not outbox.complete(
            db_session, delivery_id=job.id, status=CANCELLED, error=error, now=now
        ):
            return self._recorded_elsewhere(db_session, job)
        db_session.commit()
        log.warning(
            "incident %s: %s by %s asked before the incident reopened; not applied%s",
            incident.id,
            action,
            requester.audit_actor,
            " (PagerDuty had taken it)" if pagerduty_id is not None else ", PagerDuty not asked",
            extra={
                "incident": incident.id,
                "delivery": job.id,
                "slack_user": requester.slack_user_id,
                "pagerduty_incident": pagerduty_id,
            },
        )
        return Sent(recorded=True)

    def _recorded_elsewhere(self, db_session: Session, job: Job) -> Result:
        """The call outlived its lease and another instance recorded it first: not twice."""
        db_session.rollback()
        log.warning(
            "incident %s: %s outlived its lease; another instance recorded it, not again",
            job.payload["incident_id"],
            job.payload["action"],
            extra={"incident": job.payload["incident_id"], "delivery": job.id},
        )
        return Sent(recorded=True)

    def _failed(self, job: Job, error: str) -> Result:
        payload = job.payload
        action, requester = str(payload["action"]), self._requester(payload)
        verb = VERBS.get(action, action)
        now = self.clock.now()
        with self.sessions() as db_session:
            incident = incidents.lock(db_session, incident_id=int(payload["incident_id"]))
            assert incident is not None
            incidents.add_event(
                db_session,
                incident=incident,
                kind="pagerduty_refused",
                at=now,
                now=now,
                actor=requester.display,
                text=f"{verb}: {error}",
            )
            flows.thread_text(
                db_session,
                incident=incident,
                text=(
                    f":warning: {requester.display} could not {verb} this incident: {escape(error)}"
                ),
                now=now,
                priority=requester.priority,
            )
            audit.record(
                db_session,
                at=now,
                actor=requester.audit_actor,
                action=f"incident.{action}",
                target=incident.target,
                outcome="failed",
                detail={"via": requester.via, "error": error, "from": payload["from_email"]},
            )
            respond(
                db_session,
                requester=requester,
                text=f":warning: Could not {verb} #{incident.id}: {escape(error)}",
                now=now,
            )
            if not outbox.complete(
                db_session, delivery_id=job.id, status=DEAD, error=error, now=now
            ):
                return self._recorded_elsewhere(db_session, job)
            db_session.commit()
        log.warning(
            "incident %s: %s failed: %r",
            payload["incident_id"],
            action,
            error,
            extra={"incident": payload["incident_id"], "delivery": job.id},
        )
        return Dead(error=error, recorded=True)


def _changed_at(answer: dict[str, Any]) -> datetime | None:
    """When PagerDuty says the incident it answered with last changed: on its clock, as
    its webhooks' `occurred_at` is, so the two order its changes whatever ours says."""
    return parse_time(answer.get("last_status_change_at")) or parse_time(answer.get("updated_at"))


def _tried(job: Job) -> int:
    """The attempts `job` made at PagerDuty: not those spent waiting for its page."""
    return job.attempts - int(job.payload.get(PAGE_WAITS) or 0)


def _pending_page(db_session: Session, dedup_key: str) -> _PendingPage | None:
    """The page's trigger while it waits in the outbox (not sent, dead nor withdrawn)."""
    last = outbox.last_pagerduty_event(db_session, dedup_key=dedup_key)
    if last is None or last.status != PENDING or last.payload.get("action") != "trigger":
        return None
    tried = last.attempts > 0 or last.claimed_by is not None
    return _PendingPage(delivery=last.id, tried=tried, error=last.last_error)


def _overtaken(incident: Incident) -> str | None:
    """Why opsbot's own escalation is no longer wanted, or None: acknowledged,
    resolved or silenced in opsbot since the job asked."""
    if not incident.is_open:
        return "resolved"
    if incident.acknowledged_at is not None:
        return "acknowledged"
    if incident.silenced_until is not None:
        return "silenced"
    return None


def _episode_passed(db_session: Session, incident: Incident, payload: dict[str, Any]) -> bool:
    """A person's acknowledge or resolve asked before the incident last reopened: of
    the episode that ended, not of this one, whose page nobody may have seen yet."""
    asked = asked_on(payload)
    return asked is not None and asked != episode(db_session, incident)


def _page_replaced(db_session: Session, incident: Incident, payload: dict[str, Any]) -> bool:
    """An escalation asked for a page that a new one replaced since (`page_asked_for`):
    its PagerDuty incident superseded, or a trigger sent or queued after its event."""
    if payload.get("action") != ESCALATE:
        return False
    if payload.get("pagerduty_incident") in (incident.pagerduty_superseded_ids or ()):
        return True
    asked_on_event = payload.get("page_event")
    if asked_on_event is None:
        return False  # asked before escalations carried their page
    last = outbox.last_pagerduty_event(db_session, dedup_key=incident.dedup_key)
    return (
        last is not None
        and last.payload.get("action") == "trigger"
        and last.id > int(asked_on_event)
    )


def _queued_behind(db_session: Session, incident: Incident) -> _Queued | None:
    """A person's resolve (else acknowledge) waiting behind the escalation in the
    incident's ordered lane: asked for, not done (it may yet give up). Not one asked
    before the incident last reopened: it is cancelled as obsolete, not sent."""
    pending = [
        payload
        for payload in outbox.pending_payloads(
            db_session, kind=PAGERDUTY_REST, order_key=rest_order_key(incident.id)
        )
        if not _episode_passed(db_session, incident, payload)
    ]
    for action in (RESOLVE, ACKNOWLEDGE):
        for payload in pending:
            if payload.get("action") == action:
                return _Queued(action=action, actor=str(payload.get("actor") or "someone"))
    return None
