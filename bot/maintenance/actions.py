"""What people do with maintenance windows: make one, list them, end one early.

Every entry checks its right here (bot/rights), whatever door it came through
(a command, a button on the listing or on App Home): the `silence` right of
incidents, per route, with its `max_min`. A route's window needs that right on
the route; an alarm-name glob may reach any route, so it needs the right on
every route that pages; a glob that matches every alarm (`*`) needs `admin` as
well, and so does a window over a route no longer in the config (there is no
right on it left to check). `max_min` bounds how long an alarm is held in one
run: the new window together with every window it overlaps or touches that may
hold an alarm it holds (bot/maintenance/overlap.py), whatever their patterns, so
that windows end to end cannot hold an alarm longer than one may. The run is
checked and the window stored in one transaction, serialized with every other
window being made, so that two made at once cannot both pass. A refusal is an
answer and an audit line, nothing else.
"""

from __future__ import annotations

import dataclasses
import logging
import math
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from bot.audit import service as audit
from bot.clock import Clock
from bot.config import AlarmRoute, Config
from bot.db import locks
from bot.incidents.actions import Requester, record_refusal, respond
from bot.maintenance import flows, render
from bot.maintenance import service as windows
from bot.maintenance.errors import BadWindow, MaintenanceError, WindowsChanged
from bot.maintenance.models import ALARMS, ROUTE, MaintenanceWindow
from bot.maintenance.overlap import Reach, may_share
from bot.maintenance.requests import WindowRequest, is_catch_all
from bot.rights.errors import RightMissing, SlackFactsUnavailable
from bot.rights.service import SILENCE_RIGHT, Rights
from bot.slack_dates import slack_date
from bot.slack_text import code

log = logging.getLogger(__name__)

CREATE = "maintenance.create"
END = "maintenance.end"
SHOWN_IN_RUN = 3  # windows named in a refusal for a run too long (a modal shows a line or two)
ATTEMPTS = 3  # a run that grew between its rights check and the insert is checked again


@dataclass(frozen=True)
class Run:
    """The new window with the windows it chains with, from `starts_at` (now at the
    earliest) to `ends_at`: the longest an alarm the new window holds may be held in a row."""

    chain: list[MaintenanceWindow]
    starts_at: datetime
    ends_at: datetime

    @property
    def seconds(self) -> float:
        return (self.ends_at - self.starts_at).total_seconds()


class MaintenanceWindows:
    def __init__(
        self, *, sessions: sessionmaker[Session], rights: Rights, config: Config, clock: Clock
    ) -> None:
        self.sessions = sessions
        self.rights = rights
        self.config = config
        self.clock = clock

    # -- rights -------------------------------------------------------------------------

    def _routes(self, kind: str, pattern: str) -> list[AlarmRoute]:
        """The routes a window's alarms may come through."""
        if kind == ROUTE:  # every route known by that name: the window holds them all
            return [r for r in self.config.alarm_routes if r.label == pattern]
        paging = [r for r in self.config.alarm_routes if r.pagerduty_routing_key_env]
        return paging or list(self.config.alarm_routes)

    def require(self, user_id: str, *, kind: str, pattern: str, minutes: int | None) -> None:
        """RightMissing unless `user_id` may make (or end) a window over `pattern`."""
        shown = f"{'route' if kind == ROUTE else 'alarms'} {code(pattern)}"
        doing = f"hold pages of {shown}" if minutes else f"end the window over {shown}"
        routes = self._routes(kind, pattern)
        if kind == ALARMS and is_catch_all(pattern):
            self.rights.require_admin(user_id, doing=f"{doing} (every alarm)")
        elif not routes:  # renamed or removed since: never allowed by default
            self.rights.require_admin(user_id, doing=f"{doing} (no route has that name now)")
        for route in routes:
            self.rights.require_incident(
                user_id,
                right=SILENCE_RIGHT,
                route_name=route.label,
                channel=route.channel,
                doing=doing,
                minutes=minutes,
            )

    def reach(self, db_session: Session, *, kind: str, pattern: str, now: datetime) -> Reach:
        """The alarms a window over `pattern` may hold: a glob's, on any route; a route's,
        as its rules name them (any name once no rule does) or as its incidents are named."""
        if kind == ALARMS:
            return Reach(route=None, globs=(pattern,))
        rules = [r.match.alarm_name or "*" for r in self.config.alarm_routes if r.label == pattern]
        since = now - timedelta(seconds=self.config.alarms.reopen_window_s)
        return Reach(
            route=pattern,
            globs=tuple(rules) or ("*",),
            names=windows.recorded_names(db_session, route_name=pattern, since=since),
        )

    def run(
        self, db_session: Session, *, kind: str, request: WindowRequest, now: datetime
    ) -> Run | None:
        """The run the window would join, or None when it would stand alone."""
        new = self.reach(db_session, kind=kind, pattern=request.target, now=now)
        reaches: dict[tuple[str, str], Reach] = {}

        def shares(window: MaintenanceWindow) -> bool:
            if kind == ROUTE and window.kind == ROUTE:  # an incident has one route
                return window.pattern == request.target
            key = (window.kind, window.pattern)
            if key not in reaches:
                reaches[key] = self.reach(
                    db_session, kind=window.kind, pattern=window.pattern, now=now
                )
            return may_share(new, reaches[key])

        chain = windows.chained(
            db_session,
            shares=shares,
            starts_at=request.starts_at,
            ends_at=request.ends_at,
            now=now,
        )
        if not chain:
            return None
        return Run(
            chain=chain,
            starts_at=max(now, min(request.starts_at, *(w.starts_at for w in chain))),
            ends_at=max(request.ends_at, *(w.ends_at for w in chain)),
        )

    def require_run(self, user_id: str, *, kind: str, request: WindowRequest, run: Run) -> int:
        """The run's minutes; RightMissing, naming the windows it chains with, if `user_id`
        may not hold the new window's alarms that long (`max_min`)."""
        minutes = math.ceil(run.seconds / 60)
        try:
            self.require(user_id, kind=kind, pattern=request.target, minutes=minutes)
        except RightMissing as exc:
            shown = ", ".join(
                f"#{w.id} ({render.target_text(w)}, until {slack_date(w.ends_at)})"
                for w in run.chain[:SHOWN_IN_RUN]
            )
            if len(run.chain) > SHOWN_IN_RUN:
                shown += f" and {len(run.chain) - SHOWN_IN_RUN} more"
            log.info(
                "maintenance window over %s for %s refused: it chains with windows %s",
                request.target,
                user_id,
                [w.id for w in run.chain],
                extra={"slack_user": user_id, "windows": [w.id for w in run.chain]},
            )
            raise RightMissing(
                f"With maintenance window(s) {shown}, this one would hold "
                f"{'alarms of route' if kind == ROUTE else 'alarms'} {code(request.target)} for "
                f"{minutes} minutes in a row, until {slack_date(run.ends_at)}. {exc}",
                right=exc.right,
            ) from exc
        return minutes

    def may_end(self, user_id: str, window: MaintenanceWindow) -> bool:
        """Whether to show `user_id` an End button (the click is checked again)."""
        try:
            self.require(user_id, kind=window.kind, pattern=window.pattern, minutes=None)
        except (RightMissing, SlackFactsUnavailable):
            return False
        return True

    def _refuse(self, *, action: str, target: str, requester: Requester, why: str) -> None:
        record_refusal(
            self.sessions,
            now=self.clock.now(),
            action=action,
            target=target,
            requester=requester,
            why=why,
        )

    # -- acting -------------------------------------------------------------------------

    def kind_of(self, target: str) -> str:
        return ROUTE if self.config.route_named(target) is not None else ALARMS

    def create(
        self, *, request: WindowRequest, requester: Requester, refusal_raises: bool = False
    ) -> int | None:
        """Store the window and schedule its end; its id, or None when refused (told why).

        `refusal_raises` (a modal, which shows the refusal on its field): the refusal
        is audited and raised as MaintenanceError instead of being told.
        """
        assert requester.slack_user_id is not None
        kind = self.kind_of(request.target)
        target = f"{kind}:{request.target}"
        try:
            self.require(
                requester.slack_user_id, kind=kind, pattern=request.target, minutes=request.minutes
            )
            window_id = self._store(kind=kind, request=request, requester=requester)
        except (RightMissing, WindowsChanged) as exc:
            told = (
                dataclasses.replace(requester, response_url=None) if refusal_raises else requester
            )
            self._refuse(action=CREATE, target=target, requester=told, why=str(exc))
            if refusal_raises:
                raise MaintenanceError(str(exc)) from exc
            return None
        log.info(
            "maintenance window %s made by %s",
            window_id,
            requester.slack_user_id,
            extra={"window": window_id, "slack_user": requester.slack_user_id},
        )
        return window_id

    def _store(self, *, kind: str, request: WindowRequest, requester: Requester) -> int:
        """The run checked and the window stored in one transaction that holds the lock of
        window making, so that what is checked is what is there at the insert.

        A run longer than the window itself is checked against the rights outside any
        transaction (it may ask Slack, and on SQLite a transaction holds every writer),
        then the transaction starts over: the run may have grown meanwhile.
        """
        assert requester.slack_user_id is not None
        granted = request.minutes
        for _ in range(ATTEMPTS):
            with self.sessions() as db_session:
                locks.serialize(db_session, CREATE)
                now = self.clock.now()
                run = self.run(db_session, kind=kind, request=request, now=now)
                if run is None or run.seconds <= granted * 60:
                    return self._insert(
                        db_session, kind=kind, request=request, requester=requester, now=now
                    )
            granted = self.require_run(requester.slack_user_id, kind=kind, request=request, run=run)
        log.warning(
            "maintenance window over %s for %s not made: its run grew %s times while checked",
            request.target,
            requester.slack_user_id,
            ATTEMPTS,
            extra={"slack_user": requester.slack_user_id},
        )
        raise WindowsChanged(
            "Other maintenance windows over these alarms were made while this one was being "
            "checked, again and again; nothing was done. Try again."
        )

    def _insert(
        self,
        db_session: Session,
        *,
        kind: str,
        request: WindowRequest,
        requester: Requester,
        now: datetime,
    ) -> int:
        """Store the window, schedule its end, audit and answer; commit; its id."""
        assert requester.slack_user_id is not None
        window = windows.create(
            db_session,
            kind=kind,
            pattern=request.target,
            reason=request.reason,
            created_by=requester.slack_user_id,
            starts_at=request.starts_at,
            ends_at=request.ends_at,
            now=now,
        )
        flows.schedule_end(db_session, window=window)
        audit.record(
            db_session,
            at=now,
            actor=requester.audit_actor,
            action=CREATE,
            target=window.target,
            outcome="ok",
            detail={
                "via": requester.via,
                "kind": kind,
                "pattern": request.target,
                "starts_at": request.starts_at.isoformat(),
                "minutes": request.minutes,
                "reason": request.reason,
            },
        )
        starts = "from now" if request.starts_at <= now else f"from {slack_date(window.starts_at)}"
        respond(
            db_session,
            requester=requester,
            text=(
                f":construction: Maintenance window #{window.id}: {render.target_text(window)} "
                f"{starts} until {slack_date(window.ends_at)}. Matching alarms are posted and "
                "recorded but not paged; any still firing when it ends is paged then. "
                f"End it early with `/incident silence end {window.id}`."
            ),
            now=now,
        )
        db_session.commit()
        return window.id

    def end(self, *, window_id: int, requester: Requester) -> bool:
        """End a window now (a planned one is cancelled); False when refused (told why)."""
        assert requester.slack_user_id is not None
        target = f"maintenance:{window_id}"
        with self.sessions() as db_session:
            seen = windows.get(db_session, window_id=window_id)
        if seen is None:
            why = f"There is no maintenance window #{window_id}."
            self._refuse(action=END, target=target, requester=requester, why=why)
            return False
        try:
            self.require(
                requester.slack_user_id, kind=seen.kind, pattern=seen.pattern, minutes=None
            )
        except RightMissing as exc:
            self._refuse(action=END, target=target, requester=requester, why=str(exc))
            return False
        now = self.clock.now()
        with self.sessions() as db_session:
            window = windows.lock(db_session, window_id=window_id)
            assert window is not None
            # Only a closed window is over: one past its end whose end job is late or gave
            # up still keeps the pages it held, and ending it by hand pages them.
            if window.ended_at is not None:
                db_session.rollback()
                why = f"Maintenance window #{window_id} is already over."
                self._refuse(action=END, target=target, requester=requester, why=why)
                return False
            planned = window.is_planned(now)
            overdue = render.is_overdue(window, now)
            paged = flows.close(db_session, window=window, by=requester.slack_user_id, now=now)
            audit.record(
                db_session,
                at=now,
                actor=requester.audit_actor,
                action=END,
                target=window.target,
                outcome="ok",
                detail={
                    "via": requester.via,
                    "paged": paged,
                    "planned": planned,
                    "overdue": overdue,
                },
            )
            said = "cancelled" if planned else "ended"
            more = f" {paged} alarm(s) still firing were paged." if paged else ""
            if overdue:
                said = f"closed (it was due to end {slack_date(window.ends_at)})"
                more = f" {paged} alarm(s) it held still firing were paged."
            respond(
                db_session,
                requester=requester,
                text=f":bell: Maintenance window #{window_id} {said}.{more}",
                now=now,
            )
            db_session.commit()
        log.info(
            "maintenance window %s ended by %s, %s paged",
            window_id,
            requester.slack_user_id,
            paged,
            extra={"window": window_id, "slack_user": requester.slack_user_id},
        )
        return True

    # -- reading ------------------------------------------------------------------------

    def current(self) -> list[MaintenanceWindow]:
        with self.sessions() as db_session:
            return windows.current_and_planned(db_session)

    def listing(self, requester: Requester) -> dict[str, Any]:
        """`/incident silences` for `requester`: End buttons only where they may end."""
        user = requester.slack_user_id or ""
        with self.sessions() as db_session:
            found = windows.current_and_planned(db_session)
            total = windows.count_not_closed(db_session)
        return render.listing(
            found, now=self.clock.now(), may_end=lambda w: self.may_end(user, w), total=total
        )

    def send_listing(self, requester: Requester) -> None:
        message = self.listing(requester)
        with self.sessions() as db_session:
            respond(
                db_session,
                requester=requester,
                text=message["text"],
                blocks=message["blocks"],
                now=self.clock.now(),
            )
            db_session.commit()


__all__ = ["BadWindow", "MaintenanceError", "MaintenanceWindows"]
