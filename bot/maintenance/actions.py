"""What people do with maintenance windows: make one, list them, end one early.

Every entry checks its right here (bot/rights), whatever door it came through
(a command, a button on the listing or on App Home): the `silence` right of
incidents, per route, with its `max_min`. A route's window needs that right on
the route; an alarm-name glob may reach any route, so it needs the right on
every route that pages; a glob that matches every alarm (`*`) needs `admin` as
well, and so does a window over a route no longer in the config (there is no
right on it left to check). `max_min` bounds how long the target is held in one
run: the new window together with the target's windows it overlaps or touches,
so that windows end to end cannot hold it longer than one may. A refusal is an
answer and an audit line, nothing else.
"""

from __future__ import annotations

import dataclasses
import logging
import math
from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from bot.audit import service as audit
from bot.clock import Clock
from bot.config import AlarmRoute, Config
from bot.incidents.actions import Requester, record_refusal, respond
from bot.maintenance import flows, render
from bot.maintenance import service as windows
from bot.maintenance.errors import BadWindow, MaintenanceError
from bot.maintenance.models import ALARMS, ROUTE, MaintenanceWindow
from bot.maintenance.requests import WindowRequest, is_catch_all
from bot.rights.errors import RightMissing, SlackFactsUnavailable
from bot.rights.service import SILENCE_RIGHT, Rights
from bot.slack_dates import slack_date
from bot.slack_text import code

log = logging.getLogger(__name__)

CREATE = "maintenance.create"
END = "maintenance.end"
SHOWN_IN_RUN = 3  # windows named in a refusal for a run too long (a modal shows a line or two)


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

    def require_run(self, user_id: str, *, kind: str, request: WindowRequest) -> None:
        """RightMissing if the window, with the target's windows it overlaps or touches,
        would hold the target longer in one run than `user_id` may hold it (`max_min`).
        """
        now = self.clock.now()
        with self.sessions() as db_session:
            chain = windows.chained(
                db_session,
                kind=kind,
                pattern=request.target,
                starts_at=request.starts_at,
                ends_at=request.ends_at,
                now=now,
            )
        if not chain:
            return
        start = max(now, min(request.starts_at, *(w.starts_at for w in chain)))
        end = max(request.ends_at, *(w.ends_at for w in chain))
        seconds = (end - start).total_seconds()
        if seconds <= request.minutes * 60:
            return
        minutes = math.ceil(seconds / 60)
        try:
            self.require(user_id, kind=kind, pattern=request.target, minutes=minutes)
        except RightMissing as exc:
            ids = ", ".join(f"#{w.id}" for w in chain[:SHOWN_IN_RUN])
            if len(chain) > SHOWN_IN_RUN:
                ids += f" and {len(chain) - SHOWN_IN_RUN} more"
            raise RightMissing(
                f"With maintenance window(s) {ids}, this one would hold "
                f"{'route' if kind == ROUTE else 'alarms'} {code(request.target)} for "
                f"{minutes} minutes in a row, until {slack_date(end)}. {exc}",
                right=exc.right,
            ) from exc

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
            self.require_run(requester.slack_user_id, kind=kind, request=request)
        except RightMissing as exc:
            told = (
                dataclasses.replace(requester, response_url=None) if refusal_raises else requester
            )
            self._refuse(action=CREATE, target=target, requester=told, why=str(exc))
            if refusal_raises:
                raise MaintenanceError(str(exc)) from exc
            return None
        now = self.clock.now()
        with self.sessions() as db_session:
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
            starts = (
                "from now" if request.starts_at <= now else f"from {slack_date(window.starts_at)}"
            )
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
            window_id = window.id
        log.info(
            "maintenance window %s made by %s",
            window_id,
            requester.slack_user_id,
            extra={"window": window_id, "slack_user": requester.slack_user_id},
        )
        return window_id

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
            if window.ended_at is not None or window.ends_at <= now:
                db_session.rollback()
                why = f"Maintenance window #{window_id} is already over."
                self._refuse(action=END, target=target, requester=requester, why=why)
                return False
            planned = window.is_planned(now)
            paged = flows.close(db_session, window=window, by=requester.slack_user_id, now=now)
            audit.record(
                db_session,
                at=now,
                actor=requester.audit_actor,
                action=END,
                target=window.target,
                outcome="ok",
                detail={"via": requester.via, "paged": paged, "planned": planned},
            )
            said = "cancelled" if planned else "ended"
            more = f" {paged} alarm(s) still firing were paged." if paged else ""
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
            return windows.current_and_planned(db_session, now=self.clock.now())

    def listing(self, requester: Requester) -> dict[str, Any]:
        """`/incident silences` for `requester`: End buttons only where they may end."""
        user = requester.slack_user_id or ""
        return render.listing(
            self.current(), now=self.clock.now(), may_end=lambda w: self.may_end(user, w)
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
