"""Building and publishing each person's App Home (views.publish).

A view shows only what its viewer may see (incidents of channels they can
read; today's deploys and flag changes announced where they can read, or made
by them, and none to a guest) and buttons only for what they may do (respond
on the incident's route, end a window); every click is authorized again where
it acts. A view is published when its owner opens Home, after they click one
of its buttons, and refreshed by bot/home/jobs.py. A click on Home has no
response_url, so the view is its answer: a refusal (its audit line, `via`
home) shows at the top of the clicker's Home for ten minutes, saying which
right is missing.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
import time
from datetime import UTC, datetime, timedelta
from typing import Any

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError, SlackClientError
from sqlalchemy.orm import Session, sessionmaker

from bot.clock import Clock
from bot.commands import SEPARATE, Naming
from bot.home import render
from bot.home import service as home
from bot.incidents.models import Incident
from bot.maintenance.actions import MaintenanceWindows
from bot.observability.metrics import Metrics
from bot.oncall.flows import OnCallAnswers
from bot.outbox.slack_sender import answers_later
from bot.people.directory import PeopleDirectory
from bot.rights.errors import RightMissing
from bot.rights.service import RESPOND_RIGHT, Rights
from bot.slack_text import code, inert

log = logging.getLogger(__name__)

INCIDENTS_READ = 200  # open incidents read to find those a viewer can see
ROWS_READ = 100  # today's deploys, and flag changes, read to find those a viewer can see
ONCALL_CACHE_S = 60.0  # one PagerDuty on-call lookup serves every view for this long
# A click on Home has no response_url: its refusal is shown on the viewer's Home for this long.
REFUSAL_SHOWN = timedelta(minutes=10)
REFUSALS_SHOWN = 3


def start_of_day(now: datetime) -> datetime:
    return now.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)


def digest(view: dict[str, Any]) -> str:
    """What identifies a view's content, its "as of" line left out."""
    blocks = [b for i, b in enumerate(view.get("blocks", [])) if i != 1]
    return hashlib.sha256(json.dumps(blocks, sort_keys=True).encode()).hexdigest()


class HomeViews:
    def __init__(
        self,
        *,
        sessions: sessionmaker[Session],
        rights: Rights,
        people: PeopleDirectory,
        oncall: OnCallAnswers | None,
        maintenance: MaintenanceWindows,
        slack: WebClient | None,
        clock: Clock,
        metrics: Metrics,
        naming: Naming = SEPARATE,
    ) -> None:
        self.sessions = sessions
        self.naming = naming  # what the workspace calls the commands the view mentions
        self.rights = rights
        self.people = people
        self.oncall = oncall
        self.maintenance = maintenance
        self.slack = slack
        self.clock = clock
        self.metrics = metrics
        self._oncall_lock = threading.Lock()
        self._oncall_cached: tuple[float, list[dict[str, Any]]] | None = None

    def _oncall_blocks(self) -> list[dict[str, Any]]:
        if self.oncall is None:
            return []
        with self._oncall_lock:
            cached = self._oncall_cached
            if cached is not None and time.monotonic() - cached[0] < ONCALL_CACHE_S:
                return cached[1]
            message = self.oncall.message(None)
            blocks = message.get("blocks") or [
                {"type": "section", "text": {"type": "mrkdwn", "text": message["text"]}}
            ]
            self._oncall_cached = (time.monotonic(), blocks)
            return blocks

    def _may_respond(self, user_id: str, incident: Incident) -> bool:
        try:
            self.rights.require_incident(
                user_id,
                right=RESPOND_RIGHT,
                route_name=incident.route_name,
                channel=incident.channel,
                doing="respond",
                own_channel=incident.slack_channel_id,
            )
        except RightMissing:
            return False
        return True

    def content(self, user_id: str) -> render.HomeContent:
        """What `user_id` may see on Home now."""
        now = self.clock.now()
        today = start_of_day(now)
        content = render.HomeContent(viewer=user_id, now=now)
        # Each channel is asked about once per view (Rights reads Slack through a cache).
        reads: dict[tuple[str | None, ...], bool] = {}

        def sees(*channels: str | None) -> bool:
            if channels not in reads:
                reads[channels] = self.rights.may_see(user_id, *channels)
            return reads[channels]

        content.shows_today = self.rights.workspace.full_member(user_id) is not None
        with self.sessions() as db_session:
            incidents = home.open_incidents(db_session, limit=INCIDENTS_READ)
            seen = [i for i in incidents if sees(i.channel, i.slack_channel_id)]
            messages = home.messages_of(db_session, keys=[i.message_key for i in seen])
            if content.shows_today:
                # Each as it was announced: in its channel, or to its actor alone.
                deploys = home.deploys_since(db_session, since=today, limit=ROWS_READ)
                shown = [d for d in deploys if d.actor == user_id or sees(d.channel)]
                content.deploys = shown[: render.ROWS_SHOWN]
                flag_changes = home.flag_changes_since(db_session, since=today, limit=ROWS_READ)
                where = home.announced_in(db_session, flag_changes)
                content.flag_changes = [
                    r for r in flag_changes if r.actor == user_id or sees(where[r.id])
                ][: render.ROWS_SHOWN]
            content.refusals = home.not_done_from_home(
                db_session, user_id=user_id, since=now - REFUSAL_SHOWN, limit=REFUSALS_SHOWN
            )
        for incident in seen[: render.INCIDENTS_SHOWN]:
            message = messages.get(incident.message_key)
            link = None
            if message is not None and message.channel_id and message.ts:
                ts = message.ts.replace(".", "")
                link = f"https://slack.com/archives/{message.channel_id}/p{ts}"
            content.incidents.append(
                render.HomeIncident(
                    incident=incident,
                    link=link,
                    may_respond=self._may_respond(user_id, incident),
                )
            )
        content.more_incidents = max(0, len(seen) - render.INCIDENTS_SHOWN)
        content.windows = [
            render.HomeWindow(window=w, may_end=self.maintenance.may_end(user_id, w))
            for w in self.maintenance.current()
        ]
        try:
            content.oncall = self._oncall_blocks()
        except Exception:
            log.warning("App Home: on-call lookup failed", exc_info=True)
        linked = self.people.current_link(user_id)
        if linked is not None:
            user, by_hand = linked
            # Whoever linked it (the person or an admin) is in the audit, not in the row.
            how = "linked by hand" if by_hand else "found by your Slack email"
            content.pagerduty = (
                f"{inert(user.name, 200)} ({inert(user.email, 200)}, {code(user.id)}), {how}."
            )
        return content

    def publish(self, user_id: str, *, why: str, force: bool) -> str:
        """Publish `user_id`'s Home; unless `force`, only when it changed. The outcome.

        `ok`, `unchanged`, `no slack`; `error` when Slack refused the view, `unanswered`
        when it may take it later (no answer, a rate limit, its own trouble): both
        count as errors in opsbot_home_publishes.
        """
        if self.slack is None:
            return "no slack"
        view = self.naming.named_body(render.home_view(self.content(user_id)))
        state = digest(view)
        with self.sessions() as db_session:
            if not force and home.last_state(db_session, user_id=user_id) == state:
                self.metrics.home_publishes.labels(why, "unchanged").inc()
                return "unchanged"
        try:
            self.slack.views_publish(user_id=user_id, view=view)
        except (SlackClientError, OSError) as exc:
            # A kept-alive connection reset or timed out raises OSError (URLError, TimeoutError).
            self.metrics.home_publishes.labels(why, "error").inc()
            if isinstance(exc, SlackApiError):
                error, later = str(exc.response.get("error")), answers_later(exc)
            else:
                error, later = type(exc).__name__, True
            log.warning(
                "App Home of %s not published: %s",
                user_id,
                error,
                extra={"slack_user": user_id, "error": error},
            )
            return "unanswered" if later else "error"
        with self.sessions() as db_session:
            home.published(db_session, user_id=user_id, state=state, now=self.clock.now())
            db_session.commit()
        self.metrics.home_publishes.labels(why, "ok").inc()
        log.info("App Home of %s published (%s)", user_id, why, extra={"slack_user": user_id})
        return "ok"

    def opened(self, user_id: str) -> str:
        """`user_id` opened App Home: note it (for refreshes) and publish their view."""
        with self.sessions() as db_session:
            home.opened(db_session, user_id=user_id, now=self.clock.now())
            db_session.commit()
        return self.publish(user_id, why="opened", force=True)

    def clicked(self, user_id: str) -> str:
        """`user_id` clicked a button on Home: show them what it did, or why it was refused."""
        return self.publish(user_id, why="clicked", force=False)

    def recent_viewers(self, *, since: datetime, limit: int) -> list[str]:
        with self.sessions() as db_session:
            return home.recent_viewers(db_session, since=since, limit=limit)

    def fingerprint(self, *, now: datetime) -> str:
        with self.sessions() as db_session:
            return home.fingerprint(db_session, since=start_of_day(now), now=now)
